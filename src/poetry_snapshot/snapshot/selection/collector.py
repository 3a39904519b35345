"""Entries from stat results: every file stat'ed once, special files skipped, warnings gathered.

Every backend hands its files here, from the walk's DirEntry or as a path git listed, after
asking rules.py whether they are selected; `Collector.finish` turns what it gathered into the
Selection.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from poetry_snapshot.display import file_kind
from poetry_snapshot.errors import SelectionError
from poetry_snapshot.errors import quoted
from poetry_snapshot.snapshot.selection.rules import RESERVED
from poetry_snapshot.snapshot.selection.types import SelectedEntry
from poetry_snapshot.snapshot.selection.types import Selection
from poetry_snapshot.snapshot.selection.types import SkippedEntry

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Sequence


class Collector:
    """Turns stat results into entries and gathers what is skipped or worth a warning."""

    def __init__(self, root_b: bytes) -> None:
        self.root_b = root_b
        self.entries: list[SelectedEntry] = []
        self.skipped: list[SkippedEntry] = []
        self.warnings: list[str] = []
        self._ints: dict[int, int] = {}  # one int object per distinct device and mode
        self._real_dirs: dict[bytes, bool] = {b"": True}

    def scan(self, rel_dir: bytes, *, required: bool) -> list[os.DirEntry[bytes]]:
        path = self.root_b + b"/" + rel_dir if rel_dir else self.root_b
        if required:
            return self.scan_absolute(path)
        try:
            with os.scandir(path) as it:
                return list(it)
        except FileNotFoundError:
            return []
        except OSError as e:
            self.warnings.append(
                f"{shown_dir(rel_dir)}: not searched for include patterns ({e.strerror})"
            )
            return []

    def scan_absolute(self, path: bytes) -> list[os.DirEntry[bytes]]:
        try:
            with os.scandir(path) as it:
                return list(it)
        except (FileNotFoundError, NotADirectoryError):
            return []  # removed while we walked
        except OSError as e:
            raise unreadable_directory(path, e.strerror or str(e)) from None

    def add_dir_entry(self, rel: bytes, entry: os.DirEntry[bytes]) -> None:
        try:
            st = entry.stat(follow_symlinks=False)  # cached by the scan where the OS allows
        except FileNotFoundError:
            return
        self._add(rel, st)

    def add_listed(self, rel: bytes) -> None:
        """A path git listed: tracked files may be gone, or hide behind a symlinked directory."""
        cut = rel.rfind(b"/")
        if cut > 0 and not self._real_directory(rel[:cut]):
            return  # git reports such a file as deleted; following the link would leave the tree
        try:
            st = os.lstat(self.root_b + b"/" + rel)
        except (FileNotFoundError, NotADirectoryError):
            return  # tracked but deleted from disk: not in git's view of the work tree
        except OSError as e:
            where = shown(self.root_b + b"/" + rel)
            raise SelectionError(f"Cannot read {where}: {e.strerror}.") from None
        if not stat.S_ISDIR(st.st_mode):
            self._add(rel, st)

    def note_nested_repository(self, rel: bytes) -> None:
        self.warnings.append(
            f"{shown_dir(rel)} is a git repository but not a submodule;"
            " its files are selected by its own rules"
        )

    def _real_directory(self, rel: bytes) -> bool:
        known = self._real_dirs.get(rel)
        if known is None:
            cut = rel.rfind(b"/")
            known = self._real_directory(rel[:cut] if cut > 0 else b"")
            if known:
                try:
                    known = stat.S_ISDIR(os.lstat(self.root_b + b"/" + rel).st_mode)
                except OSError:
                    known = False
            self._real_dirs[rel] = known
        return known

    def _add(self, rel: bytes, st: os.stat_result) -> None:
        path = os.fsdecode(rel)
        mode = st.st_mode
        if stat.S_ISREG(mode):
            kind, target = "file", None
        elif stat.S_ISLNK(mode):
            # bytes in, bytes out: the target may not be UTF-8 either
            target = os.fsdecode(os.readlink(self.root_b + b"/" + rel))
            kind = "symlink"
        else:
            what = file_kind(mode)
            self.skipped.append(SkippedEntry(path, what))
            self.warnings.append(f"{shown(rel)}: skipped, a {what} cannot be copied")
            return
        ints = self._ints
        permissions = stat.S_IMODE(mode)
        mtime = st.st_mtime_ns
        ctime = st.st_ctime_ns
        self.entries.append(
            SelectedEntry(
                path,
                kind,
                st.st_size,
                ints.setdefault(permissions, permissions),
                mtime,
                mtime if ctime == mtime else ctime,  # one int object: 3 MB per 100,000 files
                st.st_ino,
                ints.setdefault(st.st_dev, st.st_dev),
                target,
                ints.setdefault(st.st_blocks, st.st_blocks),
            )
        )

    def finish(
        self, root: Path, source: str, backend: str | None, excluded: Iterable[bytes]
    ) -> Selection:
        """The Selection, `excluded` (the rules' excluded directories) reported where present."""
        self.entries.sort(key=lambda e: e.path)
        unique: list[SelectedEntry] = []
        for entry in self.entries:  # git lists a conflicted path once per stage
            if not unique or unique[-1].path != entry.path:
                unique.append(entry)
        for path in sorted(excluded):
            if os.path.lexists(self.root_b + b"/" + path):
                reserved = path == RESERVED
                reason = "reserved for snapshot metadata" if reserved else "excluded directory"
                self.skipped.append(SkippedEntry(os.fsdecode(path), reason))
                if reserved:
                    self.warnings.append(
                        f"{shown(path)} at the project root is not copied: the snapshot keeps"
                        " its metadata there; rename it"
                    )
        self.warnings.extend(_link_warnings(os.fsdecode(self.root_b), unique))
        self.warnings.extend(_virtualenv_warnings(unique))
        return Selection(
            root=root,
            source=source,
            entries=tuple(unique),
            skipped=tuple(sorted(set(self.skipped), key=lambda s: (s.path, s.reason))),
            warnings=tuple(sorted(set(self.warnings))),
            git_backend=backend,
        )


def shown(path: bytes) -> str:
    """A path for messages, quoted as every message quotes names (errors.quoted): bytes that
    are not UTF-8 as \\xNN, control characters escaped, so the message stays one line."""
    return quoted(os.fsdecode(path))


def shown_dir(path: bytes) -> str:
    """shown() of a directory, its trailing slash inside the quotes."""
    return quoted(os.fsdecode(path) + "/")


def unreadable_directory(path: bytes, reason: str) -> SelectionError:
    return SelectionError(
        f"Cannot read directory {shown(path)}: {reason}.",
        "Make it readable, or exclude it from the snapshot.",
    )


def _link_warnings(root: str, entries: Sequence[SelectedEntry]) -> list[str]:
    """One line per symlink that will not resolve inside the snapshot as it does here."""
    warnings = []
    selected: set[str] | None = None
    for entry in entries:
        if entry.kind != "symlink" or entry.link_target is None:
            continue
        name = shown(os.fsencode(entry.path))
        target = shown(os.fsencode(entry.link_target))
        link = Path(root, entry.path)
        try:
            link.stat()
        except OSError as e:
            problem = "is part of a symlink loop" if e.errno == errno.ELOOP else "is dangling"
            warnings.append(f"symlink {name} -> {target} {problem}; it is copied as is")
            continue
        resolved = os.path.realpath(link)
        if resolved != root and not resolved.startswith(root + os.sep):
            warnings.append(
                f"symlink {name} -> {target} points outside the project; the snapshot"
                " will read whatever is there when it runs"
            )
            continue
        if entry.link_target.startswith("/"):
            warnings.append(
                f"symlink {name} -> {target} is absolute; in the snapshot it still points"
                " into the project, not into the snapshot"
            )
            continue
        if selected is None:
            selected = _selected_paths(entries)
        inside = os.path.relpath(resolved, root).replace(os.sep, "/")
        if inside != "." and inside not in selected:
            warnings.append(
                f"symlink {name} -> {target} points to {shown(os.fsencode(inside))},"
                " which is not selected; it dangles in the snapshot"
            )
    return warnings


def _selected_paths(entries: Sequence[SelectedEntry]) -> set[str]:
    """Selected paths and the directories they imply."""
    paths: set[str] = set()
    for entry in entries:
        paths.add(entry.path)
        cut = entry.path.rfind("/")
        while cut > 0 and entry.path[:cut] not in paths:
            paths.add(entry.path[:cut])
            cut = entry.path.rfind("/", 0, cut)
    return paths


def _virtualenv_warnings(entries: Sequence[SelectedEntry]) -> list[str]:
    return [
        f"{shown_dir(os.fsencode(e.path[: -len('/pyvenv.cfg')]))} is a virtualenv and is"
        " selected; ignore it in .gitignore or exclude it"
        for e in entries
        if e.path.endswith("/pyvenv.cfg")
    ]
