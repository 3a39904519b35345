"""The dulwich backend, for when there is no git binary: dulwich (Poetry ships it) reads the
index, the config and the repository; a walk that never enters an ignored directory finds the
untracked files, deciding git's ignore rules with `gitignore` as git does.

dulwich's own ignore matching is not used: it changed across the releases Poetry 2.x brings.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from poetry_snapshot.errors import SelectionError
from poetry_snapshot.snapshot.selection.collector import shown
from poetry_snapshot.snapshot.selection.gitignore import read_lines
from poetry_snapshot.snapshot.selection.repository import GITLINK
from poetry_snapshot.snapshot.selection.repository import is_repository
from poetry_snapshot.snapshot.selection.rules import PatternFile

if TYPE_CHECKING:
    from typing import Callable

    from dulwich.config import Config
    from dulwich.repo import Repo

    from poetry_snapshot.snapshot.selection.collector import Collector
    from poetry_snapshot.snapshot.selection.rules import Rules


def list_with_dulwich(
    top: bytes, start: bytes, prefix: bytes, rules: Rules, collector: Collector
) -> None:
    """Select what git would list under `top/start`, reading the repository with dulwich.

    `top` is the work tree, `start` the top-relative directory to list ("" for all of it) and
    `prefix` its root-relative path. Tracked files come from the index; a walk that never
    enters an ignored directory finds untracked ones, as `git ls-files --others` does.
    """
    from dulwich.errors import NotGitRepository
    from dulwich.repo import Repo

    try:
        repo = Repo(os.fsdecode(top))
        if not Path(repo.controldir()).is_dir():  # a .git file pointing nowhere
            raise NotGitRepository(f"no repository at {repo.controldir()}")
    except (NotGitRepository, OSError) as e:
        raise SelectionError(
            f"Cannot read the git repository at {shown(top)}: {e}.",
            "Fix the repository, or snapshot without git.",
        ) from None
    try:
        tracked = _read_index(repo)
        config = repo.get_config_stack()
        ignores = _RepositoryIgnores(top, repo, config)
    finally:
        repo.close()
    gitlinks = sorted(path for path, mode in tracked.items() if mode == GITLINK)
    start_slash = start + b"/" if start else b""
    join = prefix + b"/" if prefix else b""

    def to_root(rel: bytes) -> bytes:
        return join + rel[len(start_slash) :]

    walk = _DulwichWalk(top, ignores, tracked, rules, collector, to_root)
    stack = ignores.stack_for(start)
    if stack is not None:
        walk.run(start, stack)
    for path, mode in tracked.items():
        if mode == GITLINK or not path.startswith(start_slash) or path in walk.seen:
            continue
        if rules.selects(to_root(path), True):
            collector.add_listed(to_root(path))  # in an ignored directory, or deleted
    for path in gitlinks:
        if not path.startswith(start_slash) or not rules.enters(to_root(path)):
            continue
        inner = top + b"/" + path
        if is_repository(inner):
            list_with_dulwich(inner, b"", to_root(path), rules, collector)


def _read_index(repo: Repo) -> dict[bytes, int]:
    """Top-relative path -> mode of every index entry (a conflict counts once)."""
    from dulwich.errors import NoIndexPresent
    from dulwich.index import ConflictedIndexEntry

    try:
        index = repo.open_index()
    except NoIndexPresent:
        return {}  # a repository nothing was ever added to
    except Exception as e:  # an index format this dulwich cannot read
        raise SelectionError(
            f"dulwich cannot read the git index of {repo.path}: {e}.",
            "Install git, or snapshot without git.",
        ) from None
    tracked = {}
    for path, entry in index.items():
        if isinstance(entry, ConflictedIndexEntry):
            side = entry.this or entry.other or entry.ancestor
            if side is None:
                continue
            entry = side
        if not stat.S_ISDIR(entry.mode):  # sparse-index directory entries hold no file
            tracked[path] = entry.mode
    return tracked


# Ignore files that apply to a directory, deepest last, each with the length of the
# top-relative prefix its patterns are relative to.
_IgnoreStack = tuple[tuple[int, PatternFile], ...]


class _RepositoryIgnores:
    """git's ignore rules for one work tree: per-directory `.gitignore`, then info/exclude,
    then core.excludesFile (`$XDG_CONFIG_HOME/git/ignore` by default).

    dulwich's IgnoreFilterManager reads the same files but asks core.excludesFile before
    info/exclude (git asks info/exclude first), and re-decides every parent directory for every
    path; here each directory is decided once, on the way down.
    """

    def __init__(self, top: bytes, repo: Repo, config: Config) -> None:
        from dulwich.ignore import default_user_ignore_filter_path

        self.top = top
        self.ignorecase = _git_boolean(config, b"core", b"ignorecase")
        info_exclude = Path(repo.commondir(), "info", "exclude")  # shared by linked worktrees
        user = Path(default_user_ignore_filter_path(config)).expanduser()
        self.global_files = [
            f
            for f in (
                self._read(os.fsencode(info_exclude), gitignore=False),
                self._read(os.fsencode(user), gitignore=False),
            )
            if f is not None
        ]

    def _read(self, path: bytes, *, gitignore: bool) -> PatternFile | None:
        # git does not follow a symlinked .gitignore (O_NOFOLLOW refuses it the same way), but
        # follows info/exclude and core.excludesFile, which dotfile managers often link.
        flags = os.O_RDONLY | (getattr(os, "O_NOFOLLOW", 0) if gitignore else 0)
        try:
            fd = os.open(path, flags)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                data = f.read()
        except OSError as e:  # a directory: git skips it as .gitignore, fails on the others
            if gitignore:
                return None
            raise SelectionError(
                f"Cannot use {shown(path)} as an exclude file: {e.strerror}.",
                "Fix core.excludesFile or .git/info/exclude.",
            ) from None
        return PatternFile(read_lines(data), ignorecase=self.ignorecase, strict=None)

    def extend(self, stack: _IgnoreStack, directory: bytes) -> _IgnoreStack:
        """The stack for `directory`'s entries: its parent's plus its own .gitignore."""
        directory_path = self.top + (b"/" + directory if directory else b"")
        found = self._read(directory_path + b"/.gitignore", gitignore=True)
        if found is None:
            return stack
        return (*stack, (len(directory) + 1 if directory else 0, found))

    def is_ignored(self, stack: _IgnoreStack, rel: bytes, is_dir: bool) -> bool:
        """git's verdict on `rel`, whose parent directories are known not to be ignored."""
        for offset, patterns in reversed(stack):
            pattern = patterns.last_match(rel[offset:], is_dir)
            if pattern is not None:
                return not pattern.negated
        for patterns in self.global_files:
            pattern = patterns.last_match(rel, is_dir)
            if pattern is not None:
                return not pattern.negated
        return False

    def stack_for(self, start: bytes) -> _IgnoreStack | None:
        """The ignore files of `start`'s ancestors (the walk adds `start`'s own), or None when
        `start` or an ancestor is ignored: git then lists nothing untracked below it."""
        stack: _IgnoreStack = ()
        current = b""
        for part in start.split(b"/") if start else ():
            stack = self.extend(stack, current)
            current = current + b"/" + part if current else part
            if self.is_ignored(stack, current, True):
                return None
        return stack


class _DulwichWalk:
    """The untracked half of `git ls-files --others --exclude-standard`, plus tracked files
    met on the way (stat'ed from the walk instead of once more later)."""

    def __init__(
        self,
        top: bytes,
        ignores: _RepositoryIgnores,
        tracked: dict[bytes, int],
        rules: Rules,
        collector: Collector,
        to_root: Callable[[bytes], bytes],
    ) -> None:
        self.top = top
        self.ignores = ignores
        self.tracked = tracked
        self.rules = rules
        self.collector = collector
        self.to_root = to_root
        self.seen: set[bytes] = set()
        self._tracked_dirs: set[bytes] | None = None

    def run(self, start: bytes, stack: _IgnoreStack) -> None:
        selects = self.rules.selects
        todo = [(start, stack)]
        while todo:
            directory, parent_stack = todo.pop()
            entries = self.collector.scan_absolute(
                self.top + b"/" + directory if directory else self.top
            )
            stack = (
                self.ignores.extend(parent_stack, directory)
                if any(e.name == b".gitignore" for e in entries)
                else parent_stack
            )
            for entry in entries:
                name = entry.name
                if name == b".git":
                    continue
                rel = directory + b"/" + name if directory else name
                if entry.is_dir(follow_symlinks=False):
                    if self._enters(rel, stack):
                        todo.append((rel, stack))
                    continue
                mode = self.tracked.get(rel)
                if mode is None:
                    if not (entry.is_file(follow_symlinks=False) or entry.is_symlink()):
                        continue  # git lists no untracked fifo, socket or device
                    if self.ignores.is_ignored(stack, rel, False):
                        continue
                elif mode == GITLINK:
                    continue  # a submodule whose directory became a file
                else:
                    self.seen.add(rel)
                if selects(self.to_root(rel), True):
                    self.collector.add_dir_entry(self.to_root(rel), entry)

    def _enters(self, rel: bytes, stack: _IgnoreStack) -> bool:
        if self.tracked.get(rel) == GITLINK:
            return False  # listed on its own, as a repository
        if not self.rules.enters(self.to_root(rel)) or self.ignores.is_ignored(stack, rel, True):
            return False
        if is_repository(self.top + b"/" + rel) and not self._holds_tracked(rel):
            # git lists a nested repository as "dir/" and does not enter it: list it on its own.
            self.collector.note_nested_repository(self.to_root(rel))
            inner = self.top + b"/" + rel
            list_with_dulwich(inner, b"", self.to_root(rel), self.rules, self.collector)
            return False
        return True

    def _holds_tracked(self, rel: bytes) -> bool:
        # git enters a directory with tracked files even when it holds a .git of its own.
        if self._tracked_dirs is None:
            dirs: set[bytes] = set()
            for path in self.tracked:
                cut = path.rfind(b"/")
                while cut > 0 and path[:cut] not in dirs:
                    dirs.add(path[:cut])
                    cut = path.rfind(b"/", 0, cut)
            self._tracked_dirs = dirs
        return rel in self._tracked_dirs


def _git_boolean(config: Config, section: bytes, name: bytes) -> bool:
    """A boolean as git reads it: dulwich's get_boolean knows only true/false and raises on
    yes/on/1 (and their negations), which git accepts."""
    try:
        raw = config.get(section, name)
    except KeyError:
        return False
    value = raw.strip().lower()
    if value in (b"true", b"yes", b"on", b"1", b""):
        return True
    if value in (b"false", b"no", b"off", b"0"):
        return False
    raise SelectionError(
        f"Invalid boolean in git config {section.decode()}.{name.decode()}:"
        f" {raw.decode(errors='replace')!r}.",
        "Fix the git configuration.",
    )
