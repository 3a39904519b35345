"""`--deep`: the files in site-packages and the scripts directory that nothing installed.

Python runs code from these directories without being asked: the `import` lines of every `.pth`
file at start-up, `sitecustomize` and `usercustomize`, a module dropped into an installed package.
A file (or symlink, FIFO...) there is owned when:

- a distribution Poetry sees installed lists it: in its RECORD (the wheel spec), its `.egg-info`'s
  installed-files.txt, or, in a conda prefix, its `conda-meta/*.json` "files";
- it is RECORD, RECORD.jws or RECORD.p7s of such a `.dist-info` (the spec keeps the signatures out
  of RECORD), or the INSTALLER, REQUESTED or direct_url.json an installer adds to it;
- it is bytecode Python wrote for an owned module: a regular file `__pycache__/<mod>.<tag>.pyc` or
  `<mod>.<tag>.opt-N.pyc` beside an owned `<mod>.py`, for any interpreter tag. Such bytecode
  whose `<mod>.py` no longer exists is not drift either: Python never loads it;
- the env's creator wrote it (virtualenv, or the standard library's venv): the activation scripts
  and the interpreter's names in the scripts directory, by exact name and file type, and
  virtualenv's `_virtualenv.pth` / `_virtualenv.py` in purelib, byte for byte as the installed
  virtualenv writes them (older virtualenvs wrote other bytes: recreating the env fixes that).

Everything else is unowned. Directories are never drift themselves: an empty one runs nothing.
The walk is one `os.scandir` pass with a set lookup per file; the rules above run only on the few
files the lookup does not find.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

from poetry_snapshot.check.installed_files import describe_mode
from poetry_snapshot.check.installed_files import read_regular_file

if TYPE_CHECKING:
    from collections.abc import Collection
    from collections.abc import Iterable

    from poetry_snapshot.check.env_layout import EnvLayout

# What an installer may add to a `.dist-info` besides what RECORD lists (the wheel spec, PEP 376,
# PEP 610); RECORD itself is listed by every installer, but it is what ownership comes from.
_DIST_INFO_FILES = (
    "RECORD",
    "RECORD.jws",
    "RECORD.p7s",
    "INSTALLER",
    "REQUESTED",
    "direct_url.json",
)
# The activation scripts virtualenv (20.x, 21.x) and the standard library's venv write.
_ACTIVATION_SCRIPTS = frozenset(
    {
        "activate",
        "activate.bat",
        "activate.csh",
        "activate.fish",
        "activate.nu",
        "activate.ps1",
        "activate.xsh",
        "activate_this.py",
        "Activate.ps1",
        "deactivate.bat",
        "deactivate.csh",
        "deactivate.nu",
        "pydoc.bat",
    }
)
_VIRTUALENV_PTH = b"import _virtualenv"  # virtualenv's create/via_global_ref/api.py
_CACHE_TAG = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")

# How an unowned file goes away.
REMOVE = "remove"  # nothing installed it: delete it
RECREATE = "recreate"  # named like a file of the env's creator, but not its bytes
MAKE_READABLE = "make-readable"  # a directory that cannot be listed


@dataclass(frozen=True)
class Owner:
    """What one installed distribution (or conda package) says is its."""

    package: str
    paths: Collection[str]  # absolute, normalized
    dist_info: str | None = None  # its `.dist-info` directory (real path)


@dataclass(frozen=True)
class UnownedFile:
    path: str  # real path
    package: str | None  # the one distribution owning files in the directory holding it
    found: str
    remedy: str  # REMOVE, RECREATE or MAKE_READABLE


@dataclass(frozen=True)
class OwnershipScan:
    files: int  # files and symlinks looked at
    unowned: tuple[UnownedFile, ...]


def find_unowned(layout: EnvLayout, owners: Iterable[Owner]) -> OwnershipScan:
    """Every file in the env's site-packages directories and scripts directory nothing owns."""
    owners = list(owners)
    owned: set[str] = set()
    for owner in owners:
        owned.update(owner.paths)
        if owner.dist_info is not None:
            owned.update(os.path.join(owner.dist_info, name) for name in _DIST_INFO_FILES)
    roots = tuple(dict.fromkeys((*layout.site_dirs, *filter(None, [layout.scripts_dir]))))
    files, suspects, unlisted = _walk(roots, owned)
    if not suspects and not unlisted:
        return OwnershipScan(files, ())

    creator = _Creator(layout)
    found: list[UnownedFile] = []
    remaining = []
    for entry in suspects:
        verdict = creator.judge(entry)
        if verdict is None:
            remaining.append(entry)
        elif verdict == "":
            owned.add(entry.path)
        else:
            found.append(UnownedFile(entry.path, None, _describe(entry, layout, verdict), RECREATE))
    for entry in remaining:
        source = _bytecode_source(entry)
        # Bytecode whose module is gone never runs: pip uninstalls only the interpreter's own
        # plain `.pyc`, so upgrading a package that dropped a module leaves its -O/-OO bytecode.
        if source is not None and (source in owned or not os.path.lexists(source)):
            continue
        found.append(UnownedFile(entry.path, None, _describe(entry, layout), REMOVE))
    for directory, error in unlisted:
        found.append(
            UnownedFile(
                directory,
                None,
                f"a directory that cannot be listed ({error.strerror}); its files were not checked",
                MAKE_READABLE,
            )
        )
    attribute = _Attribution(owners, roots)
    unowned = [
        UnownedFile(u.path, attribute(u.path), u.found, u.remedy)
        for u in sorted(found, key=lambda u: u.path)
    ]
    return OwnershipScan(files, tuple(unowned))


def _walk(
    roots: tuple[str, ...], owned: set[str]
) -> tuple[int, list[os.DirEntry[str]], list[tuple[str, OSError]]]:
    """(files seen, the entries `owned` lacks, directories that could not be listed)."""
    files = 0
    suspects: list[os.DirEntry[str]] = []
    unlisted: list[tuple[str, OSError]] = []
    root_set = set(roots)
    stack = list(roots)
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.path not in root_set:  # a root inside a root: walked on its own
                            stack.append(entry.path)
                        continue
                    files += 1
                    if entry.path not in owned:
                        suspects.append(entry)
        except FileNotFoundError:
            continue  # removed while walking
        except OSError as e:
            unlisted.append((directory, e))
    return files, suspects, unlisted


def _bytecode_source(entry: os.DirEntry[str]) -> str | None:
    """`<dir>/<mod>.py` for a regular file `<dir>/__pycache__/<mod>.<tag>[.opt-N].pyc`."""
    if not entry.name.endswith(".pyc") or not entry.is_file(follow_symlinks=False):
        return None
    return bytecode_source(entry.path)


def bytecode_source(path: str) -> str | None:
    """`<dir>/<mod>.py` for a path `<dir>/__pycache__/<mod>.<tag>[.opt-N].pyc` (importlib's
    cache_from_source, any interpreter tag), else None."""
    cache_dir, name = os.path.split(path)
    if not name.endswith(".pyc") or os.path.basename(cache_dir) != "__pycache__":
        return None
    stem = name[: -len(".pyc")]
    rest, _, last = stem.rpartition(".")
    if last.startswith("opt-") and last[len("opt-") :].isdigit():
        stem = rest  # -O / -OO bytecode (importlib's cache_from_source)
    module, dot, tag = stem.rpartition(".")
    if not dot or not module or not _CACHE_TAG.fullmatch(tag):
        return None
    return os.path.join(os.path.dirname(cache_dir), module + ".py")


class _Creator:
    """The files the env's creator (virtualenv, venv) writes, recognised narrowly."""

    def __init__(self, layout: EnvLayout) -> None:
        self._layout = layout
        major, minor = layout.python
        names = {"pythonw.exe", "pypyw.exe", "\U0001d70bthon"}  # 𝜋thon: venv since 3.14
        for base in ("python", "pypy", "graalpy"):
            for suffix in ("", f"{major}", f"{major}.{minor}", f"{major}.{minor}t"):
                names.update((base + suffix, base + suffix + ".exe"))
        self._interpreters = frozenset(names)

    def judge(self, entry: os.DirEntry[str]) -> str | None:
        """None: not a creator's file name here; "": the creator's file; else why it is not."""
        directory = os.path.dirname(entry.path)
        name = entry.name
        if directory == self._layout.scripts_dir:
            if name in _ACTIVATION_SCRIPTS:
                regular = entry.is_file(follow_symlinks=False)
                return "" if regular else "named like an activation script, not a regular file"
            if name in self._interpreters:
                interpreter = entry.is_symlink() or entry.is_file(follow_symlinks=False)
                return "" if interpreter else "named like the interpreter, not a file or symlink"
            return None
        if directory != self._layout.purelib or name not in ("_virtualenv.pth", "_virtualenv.py"):
            return None
        expected, writer = (
            (_VIRTUALENV_PTH, "virtualenv")
            if name == "_virtualenv.pth"
            else _virtualenv_patch(self._layout)
        )
        try:
            data = read_regular_file(entry.path)
        except OSError:
            data = None
        if data is not None and expected is not None and data in _line_ending_forms(expected):
            return ""
        return f"not what {writer} writes there"


def _line_ending_forms(data: bytes) -> tuple[bytes, bytes]:
    # virtualenv < 20.27 wrote these in text mode: a copy made on Windows has \r\n.
    return data, data.replace(b"\n", b"\r\n")


def _virtualenv_patch(layout: EnvLayout) -> tuple[bytes | None, str]:
    """The `_virtualenv.py` the installed virtualenv (Poetry's) writes into this env, and who."""
    import importlib.util
    from importlib import metadata

    try:
        spec = importlib.util.find_spec("virtualenv")
        version = metadata.version("virtualenv")
    except (ImportError, ValueError, metadata.PackageNotFoundError):
        return None, "virtualenv (not installed beside Poetry)"
    writer = f"virtualenv {version}"
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        return None, writer
    template = os.path.join(locations[0], "create", "via_global_ref", "_virtualenv.py")
    try:
        text = read_regular_file(template).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None, writer
    if '"__SCRIPT_DIR__"' in text and layout.scripts_dir and layout.purelib:
        # virtualenv < 20.27 filled in where the scripts are (ViaGlobalRefApi.env_patch_text).
        relative = os.path.relpath(layout.scripts_dir, layout.purelib)
        text = text.replace('"__SCRIPT_DIR__"', repr(relative))
    return text.encode("utf-8"), writer


def _describe(entry: os.DirEntry[str], layout: EnvLayout, why: str = "") -> str:
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if stat.S_ISLNK(st.st_mode):
        try:
            what = f"a symlink to {os.readlink(entry.path)}"
        except OSError:
            what = "a symlink"
    elif stat.S_ISREG(st.st_mode):
        what = f"a file of {st.st_size} bytes"
    else:
        what = describe_mode(st.st_mode)
    notes = [why] if why else []
    if os.path.dirname(entry.path) in layout.site_dirs:
        if entry.name.endswith(".pth"):
            notes.append("Python runs its import lines at every start")
        elif entry.name in ("sitecustomize.py", "usercustomize.py"):
            notes.append("Python imports it at every start")
    return "; ".join([what, *notes])


class _Attribution:
    """The distribution whose files share a directory with an unowned file, if only one does."""

    def __init__(self, owners: list[Owner], roots: tuple[str, ...]) -> None:
        self._owners: dict[str, set[str]] = {}
        for owner in owners:
            for path in owner.paths:
                self._owners.setdefault(os.path.dirname(path), set()).add(owner.package)
            if owner.dist_info is not None:
                self._owners.setdefault(owner.dist_info, set()).add(owner.package)
        self._roots = set(roots)

    def __call__(self, path: str) -> str | None:
        directory = os.path.dirname(path)
        while directory not in self._roots and os.path.dirname(directory) != directory:
            packages = self._owners.get(directory)
            if packages is not None:
                return next(iter(packages)) if len(packages) == 1 else None
            directory = os.path.dirname(directory)
        return None
