"""`--deep`: the chain lock -> artifact -> installed bytes, one locked distribution at a time.

RECORD proves that the installed files are what *some* wheel wrote; the lock pins *which*
files are allowed. A distribution's build is proven when one of the lock's files for it (see
check.artifacts) is on this machine, its sha256 is the lock's, and the installed RECORD is that
wheel's RECORD entry by entry: same paths, same hashes and sizes. (The installed files are
compared with the installed RECORD by check.installed_files, so the chain closes on the bytes.)
An sdist Poetry installs is built into a wheel in Poetry's cache; that wheel is what the
installed RECORD is compared with, its sdist's hash being the lock's.

What an installer adds, and is therefore not in the wheel, is left out of the comparison:

- in the `.dist-info`: RECORD itself (and the wheel's own RECORD, RECORD.jws, RECORD.p7s),
  INSTALLER, REQUESTED and `direct_url.json` (PEP 376, PEP 610);
- bytecode `__pycache__/<mod>.<tag>.pyc` of a module the wheel ships: Poetry (`installer`'s
  bytecode option) and pip compile what they install and list it in RECORD;
- a wheel's own `__pycache__` members may be absent: `installer` 1.x skips them;
- scripts: launchers of the wheel's `[console_scripts]`/`[gui_scripts]` and its
  `.data/scripts/` files are judged by their body (check.scripts), whatever their `#!` line.

A wheel's RECORD is what its author wrote; Poetry's installer does not check it against the
members (installer's content validation is off), so where a wheel's RECORD and the installed
RECORD disagree, the member itself is hashed before the difference is reported.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import posixpath
import stat
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import NamedTuple

from installer.exceptions import InstallerError

from poetry_snapshot.check import scripts as script_rules
from poetry_snapshot.check.drift import ProvenBuild
from poetry_snapshot.check.drift import UncheckedFile
from poetry_snapshot.check.drift import UnprovenBuild
from poetry_snapshot.check.installed_files import FileProblem
from poetry_snapshot.check.installed_files import NotARegularFile
from poetry_snapshot.check.installed_files import describe_mode
from poetry_snapshot.check.installed_files import judge_entry
from poetry_snapshot.check.installed_files import read_installed
from poetry_snapshot.check.installed_files import read_regular_file
from poetry_snapshot.check.installed_files import record_digest
from poetry_snapshot.check.ownership import bytecode_source
from poetry_snapshot.hashing import CHUNK
from poetry_snapshot.hashing import hash_chunks

if TYPE_CHECKING:
    from collections.abc import Iterator
    from collections.abc import Mapping
    from collections.abc import Sequence

    from installer.sources import WheelFile
    from poetry.utils.env import Env

    from poetry_snapshot.check.artifacts import Candidate
    from poetry_snapshot.check.artifacts import Expectation
    from poetry_snapshot.check.env_layout import EnvLayout
    from poetry_snapshot.check.env_layout import RealDirectories
    from poetry_snapshot.check.installed_files import Record
    from poetry_snapshot.check.installed_files import RecordRow

_OPEN = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_MEMBER_LIMIT = 256 << 20  # a RECORD or script read into memory: larger is not a real wheel's
# What an installer writes into the `.dist-info` besides the wheel's files.
_INSTALLER_FILES = frozenset({"RECORD", "RECORD.jws", "RECORD.p7s", "INSTALLER", "REQUESTED"})
_INSTALLER_FILES_ANY = frozenset({*_INSTALLER_FILES, "direct_url.json"})
_SCHEMES = ("purelib", "platlib", "headers", "scripts", "data")


@dataclass(frozen=True)
class Schemes:
    """Where `installer` puts each part of a wheel in this env: Poetry's WheelInstaller passes
    the env's scheme dict (`scheme_dict` from Poetry 2.1, `paths` before), with `headers` set to
    `include/<distribution>`."""

    dirs: Mapping[str, str]

    @classmethod
    def of(cls, env: Env) -> Schemes:
        paths = getattr(env, "scheme_dict", None) or env.paths
        return cls({name: str(path) for name, path in paths.items()})

    def relative(self, scheme: str, root: str, distribution: str) -> str | None:
        """The directory of `scheme` relative to the root scheme's (what installer's
        finalize_installation prefixes RECORD paths with), or None when it is unknown."""
        if scheme == "headers":
            include = self.dirs.get("include")
            target = None if include is None else os.path.join(include, distribution)
        else:
            target = self.dirs.get(scheme)
        base = self.dirs.get(root)
        if target is None or base is None:
            return None
        return os.path.relpath(target, base)


@dataclass(frozen=True)
class BuildContext:
    layout: EnvLayout
    directories: RealDirectories
    schemes: Schemes
    own_shebangs: tuple[bytes, ...]


@dataclass(frozen=True)
class BuildVerdict:
    package: str
    proof: ProvenBuild | None = None
    unverified: UnprovenBuild | None = None
    fetchable: bool = False  # unverified, and --fetch can download what is missing
    problems: tuple[FileProblem, ...] = ()  # "wrong-build" differences; the scripts' problems
    unchecked: tuple[UncheckedFile, ...] = ()
    files: int = 0  # installed scripts read
    bytes: int = 0
    artifact_bytes: int = 0  # locked files hashed


class WheelRow(NamedTuple):
    name: str  # as the wheel's RECORD writes it
    path: str  # where installer writes it in this env (real)
    hash: str
    size: str
    scheme: str


class _Artifact(NamedTuple):
    wheel: _Wheel | None
    error: str | None
    bytes: int


def prove(record: Record, expectation: Expectation, context: BuildContext) -> BuildVerdict:
    """Whether `record`'s distribution is one of `expectation`'s locked files, and its scripts
    judged by their body (against that file when it is proven, else by what is installed)."""
    package = expectation.package
    name, version = package.name, package.pretty_version
    artifact_bytes = 0
    if expectation.unpinned is not None:
        unverified = UnprovenBuild(name, version, expectation.unpinned)
        return _with_scripts(record, context, None, BuildVerdict(name, unverified=unverified))

    installer = _installer(record)
    if installer == "conda":
        # conda's own build (conda-meta lists it): not any file poetry.lock allows, and not
        # Poetry's to replace in a conda prefix.
        reason = "installed by conda: its build is conda's, not a file poetry.lock lists"
        unverified = UnprovenBuild(name, version, reason)
        return _with_scripts(record, context, None, BuildVerdict(name, unverified=unverified))

    compared = 0
    wrong: tuple[Candidate, list[FileProblem]] | None = None
    unavailable: list[str] = []
    for candidate in expectation.candidates:
        if candidate.path is None:
            unavailable.append(f"{candidate.locked.name} is not in Poetry's artifact cache")
            continue
        with _open_artifact(candidate) as artifact:
            artifact_bytes += artifact.bytes
            if artifact.wheel is None:
                unavailable.append(artifact.error or candidate.locked.name)
                continue
            compared += 1
            rows = artifact.wheel.installed_rows(record, context)
            differences = _differences(record, artifact.wheel, rows, context)
            if not differences:
                proof = ProvenBuild(
                    name,
                    version,
                    candidate.locked.name,
                    None if candidate.built is None else os.path.basename(candidate.built),
                )
                verdict = BuildVerdict(name, proof=proof, artifact_bytes=artifact_bytes)
                return _with_scripts(record, context, (artifact.wheel, rows), verdict)
            if wrong is None:
                wrong = (candidate, differences)

    if wrong is not None and not unavailable:
        verdict = BuildVerdict(name, problems=tuple(wrong[1]), artifact_bytes=artifact_bytes)
        return _with_scripts(record, context, None, verdict)
    fetchable = bool(expectation.missing)
    if not expectation.candidates:
        reason = "poetry.lock lists no file Poetry installs in this environment"
    elif compared:
        reason = (
            f"it is none of the {compared} locked file{'s' if compared > 1 else ''} found here;"
            f" {'; '.join(unavailable)}"
        )
    else:
        reason = "; ".join(unavailable)
    if fetchable:
        reason += " (--fetch downloads it)"
    unverified = UnprovenBuild(name, version, reason)
    verdict = BuildVerdict(
        name, unverified=unverified, fetchable=fetchable, artifact_bytes=artifact_bytes
    )
    return _with_scripts(record, context, None, verdict)


# --- the artifact ----------------------------------------------------------------------------


class _Wheel:
    """A wheel opened with installer's WheelFile (what Poetry installs from), read on demand."""

    def __init__(self, archive: zipfile.ZipFile, label: str) -> None:
        from installer.sources import WheelFile
        from installer.utils import parse_metadata_file

        self.label = label
        self._archive = archive
        self.source: WheelFile = WheelFile(archive)
        self.dist_info = self.source.dist_info_dir  # raises for a wheel installer refuses
        wheel = parse_metadata_file(self.read_text(f"{self.dist_info}/WHEEL"))
        self.root = "purelib" if wheel["Root-Is-Purelib"] == "true" else "platlib"
        text = self.read_text(f"{self.dist_info}/RECORD")
        # installer.records.parse_record_file: Windows separators read as "/"
        self.rows = [
            (
                row[0].replace("\\", "/"),
                row[1] if len(row) > 1 else "",
                row[2] if len(row) > 2 else "",
            )
            for row in csv.reader(io.StringIO(text, newline=""))
            if row and row[0]
        ]
        self.names = set(archive.namelist())

    def read(self, name: str) -> bytes:
        info = self._archive.getinfo(name)
        if info.file_size > _MEMBER_LIMIT:
            raise ValueError(f"{name} is {info.file_size} bytes")
        return self._archive.read(info)

    def read_text(self, name: str) -> str:
        return self.read(name).decode("utf-8")

    def digest(self, name: str, algorithm: str) -> str | None:
        """The RECORD-style digest of a member, read from the archive itself."""
        if name not in self.names:
            return None
        hasher = hashlib.new(algorithm)
        with self._archive.open(name) as stream:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                hasher.update(chunk)
        return record_digest(hasher)

    def entry_points(self) -> dict[str, script_rules.EntryPoint]:
        name = f"{self.dist_info}/entry_points.txt"
        if name not in self.names:
            return {}
        return script_rules.entry_point_scripts(self.read_text(name))

    def installed_rows(self, record: Record, context: BuildContext) -> list[WheelRow]:
        """Each wheel RECORD line with where installer writes it in this env."""
        base = os.path.dirname(record.directory)
        data_dir = self.source.data_dir
        distribution = self.source.distribution
        rows = []
        for name, hash_field, size in self.rows:
            scheme, destination = _scheme_of(name, data_dir, self.root)
            if scheme == self.root:
                relative: str | None = ""
            else:
                relative = context.schemes.relative(scheme, self.root, distribution)
            if relative is None:
                path = "\0" + name  # no such scheme here: installed nowhere
            else:
                path = context.directories.real_path(
                    os.path.normpath(os.path.join(base, relative, *destination.split("/")))
                )
            rows.append(WheelRow(name, path, hash_field, size, scheme))
        return rows


def _scheme_of(name: str, data_dir: str, root: str) -> tuple[str, str]:
    """installer._core._determine_scheme: `{data_dir}/<scheme>/<path>` goes to that scheme,
    everything else to the root scheme. An unknown scheme maps to itself (installed nowhere)."""
    if posixpath.commonpath([data_dir, name]) != data_dir or name == data_dir:
        return root, name
    scheme, _, rest = name[len(data_dir) + 1 :].partition("/")
    return (scheme, rest) if scheme in _SCHEMES else ("?" + scheme, rest)


@contextlib.contextmanager
def _open_artifact(candidate: Candidate) -> Iterator[_Artifact]:
    """The candidate's wheel once its file's hash is the lock's (for an sdist, the wheel Poetry
    built from it), kept open while it is compared."""
    locked = candidate.locked
    assert candidate.path is not None
    try:
        hashlib.new(locked.algorithm)
    except ValueError:
        yield _Artifact(None, f"poetry.lock's hash {locked.algorithm!r} is unknown", 0)
        return
    with contextlib.ExitStack() as stack:
        fd, error, hashed = _locked_copy(candidate, stack)
        if fd is None:
            yield _Artifact(None, error, hashed)
            return
        wheel_path, wheel_fd = candidate.path, fd
        if not locked.is_wheel:
            if candidate.built is None:
                yield _Artifact(
                    None,
                    f"Poetry's build of {locked.name} is no longer in its artifact cache",
                    hashed,
                )
                return
            wheel_path = candidate.built
            try:
                wheel_fd = _open_file(wheel_path)
            except OSError as e:
                yield _Artifact(None, f"{wheel_path} cannot be read ({_why(e)})", hashed)
                return
            stack.callback(os.close, wheel_fd)
        try:
            stream = stack.enter_context(open(wheel_fd, "rb", closefd=False))
            archive = stack.enter_context(zipfile.ZipFile(stream))
            archive.filename = os.path.basename(wheel_path)  # WheelFile parses the name
            wheel = _Wheel(archive, os.path.basename(wheel_path))
        except (
            OSError,
            ValueError,
            KeyError,
            UnicodeDecodeError,
            zipfile.BadZipFile,
            InstallerError,
        ) as e:
            reason = f"{wheel_path} is not a wheel Poetry could install ({_why(e)})"
            yield _Artifact(None, reason, hashed)
            return
        yield _Artifact(wheel, None, hashed)


def _locked_copy(candidate: Candidate, stack: contextlib.ExitStack) -> tuple[int | None, str, int]:
    """(an open descriptor on a copy of the candidate's file whose hash is the lock's, or None;
    why not; bytes hashed). The descriptor is closed with `stack`."""
    locked = candidate.locked
    error = ""
    hashed = 0
    for path in (candidate.path, *candidate.others):
        assert path is not None
        try:
            fd = _open_file(path)
        except OSError as e:
            error = error or f"{path} cannot be read ({_why(e)})"
            continue
        hasher = hashlib.new(locked.algorithm)
        try:
            hashed += hash_chunks(fd, hasher, memoryview(bytearray(CHUNK)))
        except OSError as e:
            os.close(fd)
            error = error or f"{path} cannot be read ({_why(e)})"
            continue
        if hasher.hexdigest() == locked.digest:
            stack.callback(os.close, fd)
            return fd, "", hashed
        os.close(fd)
        error = error or f"{path} does not have poetry.lock's {locked.algorithm}"
    return None, error, hashed


def _open_file(path: str) -> int:
    """An open descriptor on a regular file: never a FIFO, a device or a symlink."""
    fd = os.open(path, _OPEN)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotARegularFile(describe_mode(mode))
    return fd


def _why(error: Exception) -> str:
    if isinstance(error, NotARegularFile):
        return error.what
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__


# --- the comparison ----------------------------------------------------------------------------


def _differences(
    record: Record, wheel: _Wheel, wheel_rows: Sequence[WheelRow], context: BuildContext
) -> list[FileProblem]:
    """How the installed RECORD differs from the wheel's (empty when it is the wheel's)."""
    package = record.distribution.name
    base = os.path.dirname(record.directory)
    scripts = _scripts_prefix(context.layout)
    launchers = wheel.entry_points()
    installed: dict[str, RecordRow] = {row.path: row for row in record.rows}
    from_wheel: set[str] = set()
    problems = []
    own_dist_info = os.path.basename(record.directory)
    for row in wheel_rows:
        directory, _, file_name = row.name.rpartition("/")
        if directory == wheel.dist_info and file_name in _INSTALLER_FILES_ANY:
            continue  # what the installer writes there replaces what a wheel may hold
        found = installed.get(row.path)
        if found is None:
            if "__pycache__" in row.name.split("/")[:-1]:
                continue  # installer >= 1.0 does not install a wheel's bytecode
            problems.append(
                FileProblem(
                    package,
                    _shown(row.path, base),
                    "wrong-build",
                    f"{_entry(row.hash, row.size)} in {wheel.label}",
                    "not in the installed RECORD",
                )
            )
            continue
        from_wheel.add(row.path)
        if row.scheme == "scripts":
            continue  # judged by its body: its `#!` line is the env's
        if _same(row, found, wheel):
            continue
        problems.append(
            FileProblem(
                package,
                found.record_path,
                "wrong-build",
                f"{_entry(row.hash, row.size)} in {wheel.label}",
                f"{_entry(found.hash, found.size)} in the installed RECORD",
            )
        )
    for found in record.rows:
        if found.path in from_wheel:
            continue
        directory, file_name = os.path.split(found.path)
        if os.path.basename(directory) == own_dist_info and file_name in _INSTALLER_FILES_ANY:
            continue
        source = bytecode_source(found.path)
        if source is not None and source in from_wheel:
            continue  # compiled by the installer from a module of the wheel
        if scripts is not None and directory + os.sep == scripts and file_name in launchers:
            continue  # written by the installer for an entry point of the wheel
        problems.append(
            FileProblem(
                package,
                found.record_path,
                "wrong-build",
                f"absent ({wheel.label} has no such file)",
                f"{_entry(found.hash, found.size)} in the installed RECORD",
            )
        )
    if scripts is not None:
        listed = {os.path.basename(p) for p in installed if os.path.dirname(p) + os.sep == scripts}
        for script, entry_point in sorted(launchers.items()):
            if script not in listed:
                problems.append(
                    FileProblem(
                        package,
                        _shown(os.path.join(scripts, script), base),
                        "wrong-build",
                        f"the launcher of entry point {script} = {entry_point} ({wheel.label})",
                        "not in the installed RECORD",
                    )
                )
    return problems


def _same(row: WheelRow, found: RecordRow, wheel: _Wheel) -> bool:
    algorithm, _, digest = found.hash.partition("=")
    wheel_algorithm, _, wheel_digest = row.hash.partition("=")
    if row.size and found.size and row.size != found.size:
        return False
    if algorithm == wheel_algorithm and digest and digest.rstrip("=") == wheel_digest.rstrip("="):
        return True
    if not digest or algorithm not in hashlib.algorithms_guaranteed:
        return False
    # The installer copies the member, not the wheel's RECORD: a wrong or missing hash there
    # (or another algorithm) is settled by the member's own bytes.
    try:
        return wheel.digest(row.name, algorithm) == digest.rstrip("=")
    except (OSError, ValueError, zipfile.BadZipFile):
        return False


def _entry(hash_field: str, size: str) -> str:
    text = hash_field or "no hash"
    return f"{text}, {size} bytes" if size else text


def _shown(path: str, base: str) -> str:
    """A path as RECORD would list it: relative to the directory holding `.dist-info`."""
    return path[1:] if path.startswith("\0") else os.path.relpath(path, base)


def _scripts_prefix(layout: EnvLayout) -> str | None:
    return layout.scripts_dir + os.sep if layout.scripts_dir else None


# --- the scripts ------------------------------------------------------------------------------


def _with_scripts(
    record: Record,
    context: BuildContext,
    proven: tuple[_Wheel, Sequence[WheelRow]] | None,
    verdict: BuildVerdict,
) -> BuildVerdict:
    """`verdict` with the distribution's installed scripts judged: against the wheel's scripts
    and entry points when its build is proven, else against the installed entry points."""
    scripts = _scripts_prefix(context.layout)
    if scripts is None:
        return verdict
    package = record.distribution.name
    rows = [row for row in record.rows if row.path.startswith(scripts)]
    if not rows:
        return verdict
    wheel = None
    copied: dict[str, str] = {}
    if proven is not None:
        wheel, wheel_rows = proven
        launchers = wheel.entry_points()
        copied = {row.path: row.name for row in wheel_rows if row.scheme == "scripts"}
    else:
        launchers = _installed_entry_points(record, context)
    poetry_installed = _installer(record).startswith("Poetry")
    entries = {entry.path: entry for entry in record.entries}
    problems = list(verdict.problems)
    unchecked = list(verdict.unchecked)
    files = read = 0
    for row in rows:
        name = os.path.basename(row.path)
        entry_point = None
        if row.path not in copied and os.path.dirname(row.path) + os.sep == scripts:
            # installer writes the launchers first: a wheel's script of the same name wins
            entry_point = launchers.get(name)
        if entry_point is None and row.path not in copied:
            entry = entries.get(row.path)
            if entry is None:
                continue  # no hash in RECORD: counted as unchecked already
            outcome, size = judge_entry(entry, context.layout, context.own_shebangs)
            files, read = files + 1, read + size
            if isinstance(outcome, FileProblem):
                problems.append(outcome)
            elif outcome is not None:
                unchecked.append(outcome)
            continue
        state, found, data = read_installed(row.path, context.layout.contains)
        files, read = files + 1, read + len(data)
        if state != "ok":
            problem = "missing" if state == "missing" else "refused"
            problems.append(FileProblem(package, row.record_path, problem, "a script", found))
            continue
        if entry_point is not None:
            body = script_rules.split_shebang(data)
            expected = script_rules.launcher_body(name, entry_point)
            if body is not None and body[1] == expected:
                continue
            if not poetry_installed:
                # Another installer's launcher template (pip's distlib, uv): RECORD vouches for
                # it while its `#!` line is the env's own.
                entry = entries.get(row.path)
                if entry is not None:
                    outcome, _ = judge_entry(entry, context.layout, context.own_shebangs)
                    if isinstance(outcome, FileProblem):
                        problems.append(outcome)
                    elif outcome is not None:
                        writer = _installer(record) or "an unknown installer"
                        unchecked.append(
                            UncheckedFile(
                                package,
                                row.record_path,
                                f"launcher written by {writer}; shebang rewritten",
                            )
                        )
                continue
            problems.append(
                FileProblem(
                    package,
                    row.record_path,
                    "modified",
                    f"the launcher of entry point {name} = {entry_point}, below any #! line",
                    f"another body below its #! line ({_digest_of(data)}, {len(data)} bytes)",
                )
            )
            continue
        assert wheel is not None
        try:
            member = wheel.read(copied[row.path])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            unchecked.append(
                UncheckedFile(package, row.record_path, f"unreadable in {wheel.label}: {_why(e)}")
            )
            continue
        if not script_rules.copied_script_matches(data, member):
            problems.append(
                FileProblem(
                    package,
                    row.record_path,
                    "modified",
                    f"{copied[row.path]} of {wheel.label}, below any #! line",
                    f"another body ({_digest_of(data)}, {len(data)} bytes)",
                )
            )
    return BuildVerdict(
        verdict.package,
        verdict.proof,
        verdict.unverified,
        verdict.fetchable,
        tuple(problems),
        tuple(unchecked),
        verdict.files + files,
        verdict.bytes + read,
        verdict.artifact_bytes,
    )


def _installed_entry_points(
    record: Record, context: BuildContext
) -> dict[str, script_rules.EntryPoint]:
    """The entry points of the installed `.dist-info` (its RECORD entry is hashed with the
    distribution's other files)."""
    path = os.path.join(record.directory, "entry_points.txt")
    try:
        text = read_regular_file(path).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return script_rules.entry_point_scripts(text)


def _installer(record: Record) -> str:
    try:
        data = read_regular_file(os.path.join(record.directory, "INSTALLER"))
    except OSError:
        return ""
    return data.decode("utf-8", "replace").strip()


def _digest_of(data: bytes) -> str:
    return "sha256=" + record_digest(hashlib.sha256(data))
