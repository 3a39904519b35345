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

from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from poetry_snapshot.check import lock
from poetry_snapshot.errors import ConfigurationError
from poetry_snapshot.errors import ExportUnsupportedError
from poetry_snapshot.errors import IndexUnavailableError
from poetry_snapshot.errors import UnhashableRequirementsError
from poetry_snapshot.errors import first_line
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
    """The Exporter's requirements.txt for the request's groups and extras.

    With hashes, every package line must carry one: pip turns on `--require-hashes` mode as
    soon as one line has a hash, and then refuses the whole file if any requirement has none
    (directory and VCS dependencies, which the lock has no file hash for). That file would only
    fail later, at install time, so it is refused here with the packages named.
    """
    exporter = _exporter(poetry, request, io)
    exporter.with_hashes(request.with_hashes).with_urls(request.with_urls)
    text = _run(exporter, REQUIREMENTS_TXT, Path.cwd())
    if request.with_hashes:
        unhashed = [
            line
            for line in logical_lines(text)
            if not line.startswith("--") and "--hash=" not in line
        ]
        if unhashed:
            listed = "; ".join(_short(line) for line in unhashed)
            raise UnhashableRequirementsError(
                f"pip's --require-hashes mode cannot install {len(unhashed)} selected"
                f" package(s) that have no file hash in poetry.lock (directory or VCS"
                f" dependencies): {listed}.",
                "Export with --without-hashes, or leave out the groups that hold them.",
            )
    return text


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
