"""`--deep`: what installers say they wrote (RECORD, installed-files.txt), read safely, and every
installed file of a distribution checked against its RECORD (hash and size).

RECORD (the wheel spec's installed-files list) holds `path,algorithm=urlsafe-b64-digest,size`
for each file the installer wrote; paths are relative to the directory holding `.dist-info`
(Poetry writes absolute ones for the project's own editable install). Lines without a hash
(RECORD itself, `.pyc`, files Poetry or pip append such as `direct_url.json` and `INSTALLER`)
cannot be verified: they are counted, never drift.

Only regular files inside the environment are ever opened: an entry naming a path outside the
env (absolute, through `..`, through a symlink), a FIFO, a socket, a device or a directory is
reported and left alone. Each file is lstat'ed first, then opened with O_NONBLOCK|O_NOFOLLOW and
fstat'ed before it is read, because it can change in between: a FIFO never blocks the check and
a device is never read.

Hashing runs in a thread pool (hashlib releases the GIL), in batches to keep the pool's
per-task cost off small files; each file is read once, and not at all when its size is
already wrong. A file several distributions list (a pkgutil-style namespace `__init__.py` that
two wheels ship with different bytes: the installer writes one over the other, Poetry warning
"Installing ... over existing file") is read once and judged against all of its owners' entries:
it is intact when it holds what one of them wrote.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import functools
import hashlib
import io
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import NamedTuple

from packaging.utils import canonicalize_name

from poetry_snapshot.check.drift import UncheckedFile
from poetry_snapshot.check.env_layout import RealDirectories
from poetry_snapshot.display import file_kind
from poetry_snapshot.hashing import CHUNK
from poetry_snapshot.hashing import hash_chunks
from poetry_snapshot.hashing import read_whole

if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable
    from collections.abc import Iterator
    from collections.abc import Sequence
    from concurrent.futures import Executor

    from packaging.utils import NormalizedName

    from poetry_snapshot.check.env_layout import EnvLayout

_SMALL_FILE = 1 << 20  # read in one call below this size
_BATCH = 64
_HEAD = 512  # enough for a `#!` line
_OPEN = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_RECORD = "a UTF-8 CSV file listing the installed files (the wheel spec's RECORD)"


@dataclass(frozen=True)
class InstalledDistribution:
    """An installed distribution: its name and its `.dist-info` (or `.egg-info`) directory."""

    name: str
    dist_info: Path


class MetadataDirectory(NamedTuple):
    """A `.dist-info` or `.egg-info` directory, with what its name says (not its METADATA)."""

    path: Path
    name: NormalizedName  # canonicalized
    version: str  # "" for a develop install's bare "{name}.egg-info"
    kind: str  # "dist-info" or "egg-info"


def metadata_directories(directories: Iterable[str]) -> Iterator[MetadataDirectory]:
    """The distributions' metadata directories in `directories`, in order, each sorted by name,
    as importlib.metadata and Poetry's InstalledRepository walk them (unreadable or missing
    directories and zip files are skipped). The names are parsed as the specs write them:
    "{escaped name}-{version}.dist-info" (the name is all before the last dash), and
    "{name}-{version}-py{X.Y}.egg-info" or a develop install's "{name}.egg-info"."""
    for directory in directories:
        if not directory.strip():
            continue
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            stem, _, suffix = name.rpartition(".")
            if suffix == "dist-info":
                dist_name, _, version = stem.rpartition("-")
            elif suffix == "egg-info":
                dist_name, _, rest = stem.partition("-")
                version = rest.partition("-")[0]
            else:
                continue
            yield MetadataDirectory(
                Path(directory, name), canonicalize_name(dist_name), version, suffix
            )


@dataclass(frozen=True)
class FileProblem:
    package: str
    path: str
    problem: str  # "modified", "missing", "refused" (not opened) or "record" (RECORD unreadable)
    expected: str
    found: str
    owners: tuple[str, ...] = ()  # every distribution listing the file, when several do


class RecordRow(NamedTuple):
    """One line of an installed RECORD, hashed or not."""

    path: str  # absolute, normalized, directories resolved
    record_path: str  # as RECORD writes it
    hash: str  # "algorithm=digest", or "" when RECORD gives none
    size: str  # as written ("" when none)


class RecordEntry(NamedTuple):  # one per installed file: a tuple is built fastest
    package: str
    record_path: str  # as RECORD writes it
    path: str  # real path of the file to open
    algorithm: str
    digest: str
    size: int | None


@dataclass(frozen=True)
class Record:
    """A distribution's RECORD as read: every path it lists, and the entries that can be checked."""

    distribution: InstalledDistribution
    directory: str  # real path of the `.dist-info` directory
    paths: tuple[str, ...]  # every listed path, absolute and normalized
    entries: tuple[RecordEntry, ...]  # the ones with a hash, when the RECORD is readable
    unchecked: tuple[UncheckedFile, ...]
    problems: tuple[FileProblem, ...]
    rows: tuple[RecordRow, ...] = ()  # every line inside the env, when the RECORD is readable

    @property
    def readable(self) -> bool:
        return not any(p.problem == "record" for p in self.problems)


@dataclass(frozen=True)
class SharedFile:
    """A file several distributions' RECORDs list, and whose entry its bytes are."""

    path: str  # real path
    packages: tuple[str, ...]  # its owners, sorted
    matches: str  # the owner whose entry the file holds


@dataclass(frozen=True)
class RecordCheck:
    distributions: int
    files: int
    bytes: int
    problems: tuple[FileProblem, ...]
    unchecked: tuple[UncheckedFile, ...]
    shared: tuple[SharedFile, ...] = ()


class NotARegularFile(OSError):
    """What `read_regular_file` raises instead of opening a FIFO, socket, device or symlink."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def describe_mode(mode: int) -> str:
    """What a non-regular file is, for reports ("a fifo")."""
    kind = file_kind(mode)
    return "not a regular file" if kind == "special file" else f"a {kind}"


def read_regular_file(path: str) -> bytes:
    """The bytes of `path`, if it is a regular file: never follows its last component, never
    blocks on a FIFO, never reads a device. Raises OSError (NotARegularFile for the refusals)."""
    mode = os.lstat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotARegularFile(describe_mode(mode))
    fd = os.open(path, _OPEN)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced since the lstat
            raise NotARegularFile(describe_mode(st.st_mode))
        return read_whole(fd, st.st_size)
    finally:
        os.close(fd)


def read_record(
    dist: InstalledDistribution, layout: EnvLayout, directories: RealDirectories | None = None
) -> Record:
    """Read `dist`'s RECORD. Never raises: an unreadable RECORD is a problem of the distribution.

    A RECORD that is not UTF-8 or not CSV is reported and none of its files is checked, but its
    paths (decoded as the filesystem decodes names) still say which files are the
    distribution's. An entry outside the environment is reported, never opened.
    """
    directories = directories or RealDirectories(layout.roots)
    directory = directories.real_path(os.path.abspath(dist.dist_info))
    record_name = f"{dist.dist_info.name}/RECORD"

    def record_problem(found: str) -> FileProblem:
        return FileProblem(dist.name, record_name, "record", _RECORD, found)

    try:
        data = read_regular_file(os.path.join(directory, "RECORD"))
    except FileNotFoundError:
        no_record = UncheckedFile(dist.name, dist.dist_info.name, "no RECORD")
        return Record(dist, directory, (), (), (no_record,), ())
    except OSError as e:
        found = f"RECORD is {_refusal(e)}; its files were not checked"
        return Record(dist, directory, (), (), (), (record_problem(found),))

    problems: list[FileProblem] = []
    unreadable: FileProblem | None = None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        # os.scandir decodes file names the same way: the paths still match the files.
        text = data.decode("utf-8", "surrogateescape")
        unreadable = record_problem(
            f"not UTF-8 (byte {e.start}); unreadable, its files were not checked"
        )
    base = os.path.dirname(directory) + os.sep
    name = dist.name
    contains = layout.contains
    real_path = directories.real_path
    posix = os.name == "posix"
    paths: list[str] = []
    entries: list[RecordEntry] = []
    unchecked: list[UncheckedFile] = []
    lines: list[RecordRow] = []
    rows = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            # One line per installed file: this loop runs for every file of the env.
            for row in rows:
                if not row or not row[0]:
                    continue
                rel = row[0]
                if rel.startswith("/") if posix else os.path.isabs(rel):
                    path = real_path(os.path.normpath(rel))
                else:
                    path = os.path.normpath(base + rel)
                paths.append(path)
                hash_field = row[1] if len(row) > 1 else ""
                if not contains(path):
                    problems.append(_outside(name, rel, hash_field, path))
                    continue
                size_field = row[2] if len(row) > 2 else ""
                real = real_path(path)
                lines.append(RecordRow(real, rel, hash_field, size_field))
                if not hash_field:
                    unchecked.append(UncheckedFile(name, rel, "no hash in RECORD"))
                    continue
                algorithm, _, digest = hash_field.partition("=")
                if algorithm not in hashlib.algorithms_guaranteed or not digest:
                    unchecked.append(UncheckedFile(name, rel, f"unsupported hash {algorithm!r}"))
                    continue
                size = int(size_field) if size_field.isascii() and size_field.isdigit() else None
                if real is not path and not contains(real):
                    # a directory on the way is a symlink leading out of the env
                    problems.append(_outside(name, rel, hash_field, real))
                    continue
                entries.append(RecordEntry(name, rel, real, algorithm, digest, size))
            break
        except csv.Error as e:  # the reader goes on with the next line
            unreadable = unreadable or record_problem(
                f"not parseable as CSV (line {rows.line_num}: {e}); unreadable,"
                " its files were not checked"
            )
    if unreadable is not None:
        problems.insert(0, unreadable)
        entries = []
        unchecked = []
        lines = []
    return Record(
        dist,
        directory,
        tuple(paths),
        tuple(entries),
        tuple(unchecked),
        tuple(problems),
        tuple(lines),
    )


def read_installed_files(
    egg_info: Path, layout: EnvLayout, directories: RealDirectories | None = None
) -> tuple[str, ...]:
    """The files an `.egg-info` directory's installed-files.txt lists (plus itself), if any.

    Legacy `setup.py install` and pip's legacy installs write it, one path per line, relative
    to the `.egg-info` directory. It has no hashes: it only says which files are whose.
    """
    directories = directories or RealDirectories(layout.roots)
    directory = directories.real_path(os.path.abspath(egg_info))
    listing = os.path.join(directory, "installed-files.txt")
    try:
        text = read_regular_file(listing).decode("utf-8", "surrogateescape")
    except OSError:
        return ()
    paths = [listing]
    for line in text.splitlines():
        line = line.strip()
        if line:
            paths.append(os.path.normpath(os.path.join(directory, line)))
    return tuple(paths)


def check_records(
    records: Iterable[Record],
    layout: EnvLayout,
    workers: int | None = None,
    *,
    shared_with: Iterable[Record] = (),
    pool: Executor | None = None,
) -> RecordCheck:
    """Verify the installed files of `records` against them.

    A file listed by several distributions (of `records`, or of `shared_with`: the installed
    distributions that are not themselves checked) is read once and intact when it holds what
    one of them wrote; it is reported once, naming every owner, when it holds none of it.

    A script in the env's scripts directory whose `#!` line no longer points into the env was
    rewritten after installation (conda and venv relocation tools do this): its RECORD hash
    cannot be checked. A script whose `#!` line is still this env's is checked like any other.
    """
    records = list(records)
    by_path: dict[str, list[RecordEntry]] = {}
    for record in records:
        for entry in record.entries:
            same = by_path.get(entry.path)
            if same is None:
                by_path[entry.path] = [entry]
            else:
                same.append(entry)
    for record in shared_with:
        for entry in record.entries:
            same = by_path.get(entry.path)
            if same is not None:
                same.append(entry)
    groups = list(by_path.values())
    unchecked = [item for record in records for item in record.unchecked]
    problems = [problem for record in records for problem in record.problems]
    shared: list[SharedFile] = []

    batches = [groups[i : i + _BATCH] for i in range(0, len(groups), _BATCH)]
    hashed = 0
    scripts = layout.scripts_dir + os.sep if layout.scripts_dir else None
    own_shebangs = own_shebang_lines(layout)
    check_batch = functools.partial(_check_batch, contains=layout.contains)
    with contextlib.ExitStack() as stack:
        if pool is None:
            workers = workers or default_workers()
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers))
        for results in pool.map(check_batch, batches):
            for group, (state, found, size, head, matched) in results:
                hashed += size
                entry = group[0]
                if len(group) > 1 and len({e.package for e in group}) > 1:
                    owners = tuple(sorted({e.package for e in group}))
                    if matched is not None:
                        shared.append(SharedFile(entry.path, owners, matched.package))
                        continue
                else:
                    owners = ()
                if state == "ok":
                    continue
                if (
                    state == "modified"
                    and scripts is not None
                    and entry.path.startswith(scripts)
                    and foreign_shebang(head, own_shebangs)
                ):
                    # Installers write the env's interpreter into `#!` and hash the result;
                    # relocation tools rewrite that line later, so RECORD cannot vouch for it.
                    unchecked.append(
                        UncheckedFile(entry.package, entry.record_path, "script shebang rewritten")
                    )
                    continue
                problem = state if state in ("missing", "refused") else "modified"
                if owners:
                    first = min(group, key=lambda e: e.package)
                    expected = " or ".join(
                        f"{_expect(e)} ({e.package})" for e in sorted(group, key=_by_package)
                    )
                    problems.append(
                        FileProblem(
                            first.package, first.record_path, problem, expected, found, owners
                        )
                    )
                else:
                    problems.append(
                        FileProblem(
                            entry.package, entry.record_path, problem, _expect(entry), found
                        )
                    )
    problems.sort(key=lambda p: (p.package, p.path))
    shared.sort(key=lambda f: f.path)
    return RecordCheck(
        len(records), len(groups), hashed, tuple(problems), tuple(unchecked), tuple(shared)
    )


def default_workers() -> int:
    """Threads for hashing: hashlib releases the GIL, and a few more than the cores keep the
    disk busy while others hash."""
    return min(32, (os.cpu_count() or 1) + 2)


def own_shebang_lines(layout: EnvLayout) -> tuple[bytes, ...]:
    """How `#!` lines pointing into this env begin, under its real and its shown name."""
    return tuple(
        b"#!" + os.fsencode(prefix) + os.sep.encode()
        for prefix in {layout.shown_prefix, layout.prefix}
    )


def _by_package(entry: RecordEntry) -> str:
    return entry.package


def judge_entry(
    entry: RecordEntry, layout: EnvLayout, own_shebangs: tuple[bytes, ...]
) -> tuple[FileProblem | UncheckedFile | None, int]:
    """One RECORD entry checked as check_records checks it: (its problem, or why it cannot be
    checked, or None when intact; bytes read)."""
    buffer = memoryview(bytearray(CHUNK))
    state, found, size, head, _ = _check_file([entry], buffer, layout.contains)
    if state == "ok":
        return None, size
    scripts = layout.scripts_dir + os.sep if layout.scripts_dir else None
    if (
        state == "modified"
        and scripts is not None
        and entry.path.startswith(scripts)
        and foreign_shebang(head, own_shebangs)
    ):
        return UncheckedFile(entry.package, entry.record_path, "script shebang rewritten"), size
    problem = state if state in ("missing", "refused") else "modified"
    return FileProblem(entry.package, entry.record_path, problem, _expect(entry), found), size


def read_installed(path: str, contains: Callable[[str], bool]) -> tuple[str, str, bytes]:
    """(state, what was found, the bytes) of an installed file, opened as check_records opens
    files: a symlink is followed only inside the env, a FIFO or device never opened. state is
    "ok", "missing", "refused" or "unreadable"."""
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            target = os.path.realpath(path)
            if not contains(target):
                return "refused", f"a symlink to {target}, outside the environment; not opened", b""
            path = target
    except (FileNotFoundError, NotADirectoryError):
        return "missing", "missing", b""
    except OSError as e:
        return "unreadable", f"unreadable ({e.strerror})", b""
    try:
        return "ok", "", read_regular_file(path)
    except NotARegularFile as e:
        return "refused", f"{e.what}; not opened", b""
    except (FileNotFoundError, NotADirectoryError):
        return "missing", "missing", b""
    except OSError as e:
        return "unreadable", f"unreadable ({e.strerror})", b""


def _outside(package: str, rel: str, hash_field: str, path: str) -> FileProblem:
    expected = f"{hash_field} (inside the environment)" if hash_field else "inside the environment"
    return FileProblem(
        package, rel, "refused", expected, f"outside the environment: {path}; not opened"
    )


def _refusal(error: OSError) -> str:
    if isinstance(error, NotARegularFile):
        return f"{error.what}; not opened"
    return f"unreadable ({error.strerror or error})"


def foreign_shebang(head: bytes, own_shebangs: tuple[bytes, ...]) -> bool:
    first_line = head.split(b"\n", 1)[0]
    return (
        first_line.startswith(b"#!")
        and not first_line.startswith(own_shebangs)
        # installer's form for long or spaced interpreter paths: a /bin/sh trampoline
        and first_line != b"#!/bin/sh"
    )


def _check_batch(
    batch: Sequence[list[RecordEntry]], contains: Callable[[str], bool]
) -> list[tuple[list[RecordEntry], tuple[str, str, int, bytes, RecordEntry | None]]]:
    buffer = memoryview(bytearray(CHUNK))
    return [(group, _check_file(group, buffer, contains)) for group in batch]


def _check_file(
    group: list[RecordEntry], buffer: memoryview, contains: Callable[[str], bool]
) -> tuple[str, str, int, bytes, RecordEntry | None]:
    """(state, what was found, bytes read, the file's first bytes, the entry it matches) for
    the RECORD entries naming one file (normally one; more for a file several wheels ship)."""
    path = group[0].path
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            target = os.path.realpath(path)
            if not contains(target):
                found = f"a symlink to {target}, outside the environment; not opened"
                return "refused", found, 0, b"", None
            path = target
            mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing", "missing", 0, b"", None
    except OSError as e:
        return "unreadable", f"unreadable ({e.strerror})", 0, b"", None
    if not stat.S_ISREG(mode):
        return "refused", f"{describe_mode(mode)}; not opened", 0, b"", None
    try:
        fd = os.open(path, _OPEN)
    except OSError as e:
        return "unreadable", f"unreadable ({e.strerror})", 0, b"", None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced since the lstat
            return "refused", f"{describe_mode(st.st_mode)}; not opened", 0, b"", None
        size = st.st_size
        sized = [e for e in group if e.size is None or e.size == size]
        if not sized:
            return "modified", f"{size} bytes", 0, os.read(fd, _HEAD), None
        algorithms = {e.algorithm for e in sized}
        if len(algorithms) == 1:
            digests, head = _digest(fd, sized[0].algorithm, size, buffer)
        else:
            digests, head = _digests(fd, sorted(algorithms), size, buffer)
    except OSError as e:
        return "unreadable", f"unreadable ({e.strerror})", 0, b"", None
    finally:
        os.close(fd)
    for entry in sized:
        if digests.get(entry.algorithm) == entry.digest:
            return "ok", "", size, b"", entry
    entry = sized[0]
    return (
        "modified",
        f"{entry.algorithm}={digests[entry.algorithm]}, {size} bytes",
        size,
        head,
        None,
    )


def _digest(fd: int, algorithm: str, size: int, buffer: memoryview) -> tuple[dict[str, str], bytes]:
    hasher = hashlib.new(algorithm)
    if size < _SMALL_FILE:
        data = read_whole(fd, size)
        hasher.update(data)
        head = data[:_HEAD]
    else:
        hash_chunks(fd, hasher, buffer)
        head = os.pread(fd, _HEAD, 0)  # a `#!` line matters for small scripts only
    return {algorithm: record_digest(hasher)}, head


def _digests(
    fd: int, algorithms: list[str], size: int, buffer: memoryview
) -> tuple[dict[str, str], bytes]:
    """Owners that hash with different algorithms: every digest from one read."""
    data = read_whole(fd, size) if size < _SMALL_FILE else None
    found = {}
    for algorithm in algorithms:
        hasher = hashlib.new(algorithm)
        if data is not None:
            hasher.update(data)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            hash_chunks(fd, hasher, buffer)
        found[algorithm] = record_digest(hasher)
    head = data[:_HEAD] if data is not None else os.pread(fd, _HEAD, 0)
    return found, head


def record_digest(hasher: hashlib._Hash) -> str:
    """A digest as RECORD writes it: urlsafe base64 without padding (the wheel spec)."""
    return base64.urlsafe_b64encode(hasher.digest()).rstrip(b"=").decode("ascii")


def _expect(entry: RecordEntry) -> str:
    size = f", {entry.size} bytes" if entry.size is not None else ""
    return f"{entry.algorithm}={entry.digest}{size}"
