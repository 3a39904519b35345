"""`--format requirements.txt` and `--format pylock.toml`, written by poetry-plugin-export.

Both formats come from poetry-plugin-export's `Exporter`, so they are byte for byte what
`poetry export` writes for the same groups and extras (the only addition is our header comment).
What differs is which groups are selected: `poetry env-export` selects them like
`poetry install` (non-optional groups by default), where `poetry export` takes only `main`.

The Exporter API used here (`Exporter(poetry, io)`, `only_groups`, `with_extras`,
`with_hashes`, `with_urls`, `export(fmt, cwd, output)`, `is_format_supported`) is the same in
poetry-plugin-export 1.9 and 1.10; pylock.toml exists from 1.10.0 (Python >= 3.10) and, by the
plugin's own check, needs Poetry >= 2.3 and a lock file of format 2.1 or later.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from cleo.formatters.formatter import Formatter

from poetry_snapshot.check import lock
from poetry_snapshot.errors import ConfigurationError
from poetry_snapshot.errors import ExportUnsupportedError
from poetry_snapshot.errors import IndexUnavailableError
from poetry_snapshot.errors import UnhashableRequirementsError
from poetry_snapshot.errors import UsageError
from poetry_snapshot.errors import first_line
from poetry_snapshot.errors import quoted
from poetry_snapshot.export.request import PYLOCK_TOML
from poetry_snapshot.export.request import REQUIREMENTS_TXT
from poetry_snapshot.export.request import ExportRequest
from poetry_snapshot.export.request import ExportResult
from poetry_snapshot.export.request import header_lines

if TYPE_CHECKING:
    from cleo.io.io import IO
    from poetry.poetry import Poetry
    from poetry_plugin_export.exporter import Exporter  # type: ignore[import-untyped]


_PYLOCK_MIN_POETRY = (2, 3)


def export_requirements_txt(poetry: Poetry, request: ExportRequest, io: IO) -> ExportResult:
    return _with_header(poetry, request, requirements_txt(poetry, request, io))


def export_pylock_toml(poetry: Poetry, request: ExportRequest, io: IO) -> ExportResult:
    return _with_header(poetry, request, pylock_toml(poetry, request, io))


def _with_header(poetry: Poetry, request: ExportRequest, text: str) -> ExportResult:
    return ExportResult("".join(f"# {line}\n" for line in header_lines(poetry, request)) + text)


def requirements_txt(poetry: Poetry, request: ExportRequest, io: IO) -> str:
    """The Exporter's requirements.txt for the request's groups and extras; with hashes, the
    local dependencies moved after the hashed ones, into a block of comments
    (`local_dependencies_block`), and a warning saying so on stderr."""
    pins = hashed_and_local(poetry, request, io)
    if not pins.local:
        return pins.hashed
    name = output_name(request, REQUIREMENTS_TXT)
    io.write_error_line(f"<warning>Warning: {Formatter.escape(pins.warning(name))}</warning>")
    return pins.hashed + local_dependencies_block(
        pins.local, f"After `pip install -r {name}`:", name
    )


@dataclass(frozen=True)
class SplitRequirements:
    """The Exporter's requirements.txt, with hashes, in the two parts pip installs apart."""

    hashed: str  # the requirements file, every requirement in it hashed
    local: tuple[str, ...]  # requirement lines of directory, editable and VCS dependencies

    def warning(self, file_name: str) -> str:
        names = ", ".join(_local_name(line) for line in self.local)
        return (
            f"{len(self.local)} local dependencies ({names}) have no file hash, so pip's"
            f" hash-checking mode cannot install them with the others: {file_name} lists them"
            " in comments at its end, with the command that installs them afterwards."
        )


def _local_name(line: str) -> str:
    # `name @ url` names itself; `-e file:///path/to/lib` is named by its directory.
    head = line.split(";", 1)[0].strip()
    if head.startswith("-"):
        return head.split(None, 1)[-1].rstrip("/").rsplit("/", 1)[-1]
    return head.split("@", 1)[0].strip()


def hashed_and_local(poetry: Poetry, request: ExportRequest, io: IO) -> SplitRequirements:
    """The Exporter's requirements.txt; with hashes, its local dependencies taken out.

    pip turns on hash-checking mode for a whole install as soon as one requirement has a hash,
    and then refuses every requirement without one: a directory (editable or not) or a VCS
    checkout, which the lock has no file hash for, cannot be installed in the same run as the
    hashed packages (nor from a file the hashed one includes with `-r`: that is the same run).
    So they are taken out for a second run. Any other requirement without a hash (an index
    package the lock holds no hash for) is refused, with the packages named: such a file would
    only fail later, at install time.
    """
    exporter = _exporter(poetry, request, io)
    exporter.with_hashes(request.with_hashes).with_urls(request.with_urls)
    text = _run(exporter, REQUIREMENTS_TXT, Path.cwd())
    if not request.with_hashes:
        return SplitRequirements(text, ())
    requirements = [
        line for line in logical_lines(text) if not line.startswith("--") and "--hash=" not in line
    ]
    local = tuple(line for line in requirements if is_local(line))
    unhashed = [line for line in requirements if not is_local(line)]
    if unhashed:
        listed = "; ".join(_short(line) for line in unhashed)
        raise UnhashableRequirementsError(
            f"pip's --require-hashes mode cannot install {len(unhashed)} selected"
            f" package(s) that have no file hash in poetry.lock: {listed}.",
            "Export with --without-hashes, or leave out the groups that hold them.",
        )
    if not local:
        return SplitRequirements(text, ())
    # The Exporter writes one logical line per requirement (continuations only before
    # --hash options, which local lines never have), so these are whole physical lines.
    kept = [line for line in text.splitlines(keepends=True) if line.strip() not in local]
    return SplitRequirements("".join(kept), local)


def output_name(request: ExportRequest, default: str) -> str:
    """The output file's name as the comments and the second run's command give it."""
    name = request.output.as_posix() if request.output is not None else default
    # The name goes into comment lines: a line break would end the comment and make the rest
    # of the name a requirement pip reads.
    if not name.isprintable():
        raise UsageError(
            f"The output file name {quoted(name)} holds control characters, and the export"
            " names it in the comments that say how to install the local dependencies.",
            "Choose a name without them.",
        )
    return name


# How poetry-plugin-export writes what has no file hash (as `poetry export` does): directories
# as `-e file:///abs/path` (develop = true) or `name @ file:///abs/path`, VCS dependencies as
# `name @ git+https://...@<commit>`. A file or URL archive dependency has its hash in the lock.
_LOCAL_URL = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._\-]*(\[[^\]]*\])?\s*@\s*(file:|(git|hg|svn|bzr)\+)"
)

# The marker of the lines a second pip run reads back: `sed -n 's/^#local //p' FILE`.
LOCAL_PREFIX = "#local "


def is_local(line: str) -> bool:
    """A requirement line of a directory, editable or VCS dependency."""
    return line.startswith(("-e ", "--editable ")) or bool(_LOCAL_URL.match(line))


def local_dependencies_block(local: tuple[str, ...], after: str, file_name: str) -> str:
    """Comment lines that keep the local dependencies out of pip's hashed run and say how to
    install them in a second one. `--no-deps`: their dependencies are all in the hashed part
    (the lock's closure), so the second run fetches nothing unhashed but the local packages
    themselves (and, for a directory, its build backend, as any build from source does)."""
    lines = [
        "#",
        "# Local dependencies (directories, editable installs, VCS checkouts) have no file hash,",
        "# and pip's hash-checking mode, on for the hashed requirements above, refuses any",
        "# requirement without one in the same run. So they are listed here, for a second run",
        "# without hashes and without dependencies (those are all above, hashed).",
        f"# {after}",
        f"#   sed -n 's/^{LOCAL_PREFIX}//p' {shlex.quote(file_name)}"
        " | pip install --no-deps -r /dev/stdin",
        *(LOCAL_PREFIX + line for line in local),
    ]
    return "".join(line + "\n" for line in lines)


def pylock_toml(poetry: Poetry, request: ExportRequest, io: IO) -> str:
    """The Exporter's PEP 751 pylock.toml; paths in it are relative to the output's directory."""
    from poetry_plugin_export.exporter import Exporter

    if not Exporter.is_format_supported(PYLOCK_TOML):
        raise ExportUnsupportedError(
            "pylock.toml export needs poetry-plugin-export 1.10 or later"
            f" (installed: {_version('poetry-plugin-export')}).",
            "Upgrade it: `poetry self add 'poetry-plugin-export>=1.10'` (it needs Python 3.10+).",
        )
    poetry_version = _version("poetry")
    if _release(poetry_version) < _PYLOCK_MIN_POETRY:
        raise ExportUnsupportedError(
            f"pylock.toml export needs Poetry 2.3 or later (running {poetry_version}).",
            "Upgrade Poetry: `poetry self update`.",
        )
    exporter = _exporter(poetry, request, io)
    if not poetry.locker.is_locked_groups_and_markers():
        raise ExportUnsupportedError(
            f"{poetry.locker.lock} predates lock format 2.1, which pylock.toml export needs.",
            "Regenerate it with `poetry lock` (Poetry 2.1 or later).",
        )
    out_dir = request.output.parent if request.output is not None else Path.cwd()
    return _run(exporter, PYLOCK_TOML, out_dir)


def logical_lines(text: str) -> tuple[str, ...]:
    """A requirements file's lines with `\\` continuations joined and comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.endswith("\\"):
            current += stripped[:-1].strip() + " "
            continue
        current += stripped
        if current and not current.startswith("#"):
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return tuple(lines)


def _exporter(poetry: Poetry, request: ExportRequest, io: IO) -> Exporter:
    from poetry_plugin_export.exporter import Exporter

    locker = lock.read_lock(poetry)
    if not lock.is_fresh(locker):
        # `poetry export` refuses a stale lock too: its pins no longer describe pyproject.toml.
        raise ConfigurationError(
            f"{locker.lock} is out of date: pyproject.toml changed since it was written.",
            "Run `poetry lock`, then export again.",
        )
    exporter = Exporter(poetry, io)
    exporter.only_groups(sorted(request.scope.groups))
    exporter.with_extras(sorted(request.scope.extras))
    return exporter


def _run(exporter: Exporter, fmt: str, cwd: Path) -> str:
    from cleo.io.buffered_io import BufferedIO

    buffer = BufferedIO()
    try:
        exporter.export(fmt, cwd, buffer)
    except Exception as e:
        if fmt == PYLOCK_TOML and _is_network_error(e):
            # pylock.toml records each file's URL (and size and upload time when the index
            # has them); the lock has only names and hashes, so the Exporter asks the index.
            raise IndexUnavailableError(
                "pylock.toml needs file data from the package index, and asking it failed:"
                f" {first_line(e)}",
                "Export where the project's package sources are reachable, or use"
                " --format requirements.txt.",
            ) from None
        raise
    return buffer.fetch_output()


def _is_network_error(error: BaseException) -> bool:
    # Poetry's authenticator turns exhausted connection retries into a PoetryRuntimeError
    # (a cleo error), others raise RepositoryError or requests' own exceptions.
    from cleo.exceptions import CleoError
    from poetry.repositories.exceptions import PackageNotFoundError
    from poetry.repositories.exceptions import RepositoryError
    from requests.exceptions import RequestException

    return isinstance(
        error, (RequestException, RepositoryError, PackageNotFoundError, OSError, CleoError)
    )


def _short(line: str) -> str:
    head = line.split(" --hash=", 1)[0]
    return head if len(head) <= 120 else head[:117] + "..."


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
