"""`--format json`: the project environment as it is really installed, and its verdict.

Unlike the other formats, nothing here comes from the lock: the interpreter describes itself
(marker environment, supported wheel tags) and every distribution is read from the
environment's own `sys.path`, in order, the first of a name winning as it does for imports
(and for Poetry's InstalledRepository). The lock appears only through the embedded
`poetry snapshot --check` verdict.

The snapshot manifest's `packages` are what Poetry's InstalledRepository sees (name, version,
source); this document lists what is importable, with its installer and RECORD digest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from dataclasses import field
from importlib.metadata import PathDistribution
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import canonicalize_name

from poetry_snapshot.check.installed_files import metadata_directories
from poetry_snapshot.check.installed_files import read_regular_file
from poetry_snapshot.export.request import ExportResult

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping

    from cleo.io.io import IO
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_snapshot.check.drift import DriftReport
    from poetry_snapshot.check.environment import Interpreter
    from poetry_snapshot.check.lock import InstallScope
    from poetry_snapshot.export.request import ExportRequest

# Bump when a field changes meaning or disappears; adding fields keeps the version.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Distribution:
    """One installed distribution: what it is, where it came from, and who installed it."""

    name: str  # canonical (PEP 503)
    version: str
    location: str  # the .dist-info directory, relative to the environment when inside it
    installer: str | None  # the INSTALLER file: "Poetry", "pip", "uv"...
    source: str  # "index", "directory", "editable", "vcs", "archive" or "unknown"
    direct_url: Mapping[str, Any] | None = field(default=None, compare=False)  # PEP 610
    record_sha256: str | None = None  # hex digest of the RECORD file's bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "location": self.location,
            "installer": self.installer,
            "source": self.source,
            "direct_url": None if self.direct_url is None else dict(self.direct_url),
            "record_sha256": self.record_sha256,
        }


@dataclass(frozen=True)
class EnvironmentManifest:
    project: str
    project_dir: str
    environment: str | None
    interpreter: Interpreter | None
    distributions: tuple[Distribution, ...]
    verification: DriftReport
    generated_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "project": self.project,
            "project_dir": self.project_dir,
            "environment": self.environment,
            "interpreter": None if self.interpreter is None else self.interpreter.to_json(),
            "distributions": [d.to_json() for d in self.distributions],
            "verification": self.verification.to_json(),
        }
        if self.generated_at is not None:
            data["generated_at"] = self.generated_at
        return data


def export_json(poetry: Poetry, request: ExportRequest, io: IO) -> ExportResult:
    manifest = build_manifest(poetry, request.scope, request.timestamp)
    return ExportResult(render_manifest(manifest))


def render_manifest(manifest: EnvironmentManifest) -> str:
    return json.dumps(manifest.to_json(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def build_manifest(
    poetry: Poetry, scope: InstallScope, generated_at: str | None = None
) -> EnvironmentManifest:
    from poetry_snapshot.check.verdict import CheckRequest
    from poetry_snapshot.check.verdict import examine

    # The verification's own env and interpreter: the env's Python is started once.
    examination = examine(poetry, CheckRequest(scope=scope))
    env, report = examination.env, examination.report
    return EnvironmentManifest(
        project=poetry.package.pretty_name,
        project_dir=str(poetry.pyproject_path.parent),
        environment=None if env is None else str(env.path),
        interpreter=report.interpreter,
        distributions=() if env is None else installed_distributions(env),
        verification=report,
        generated_at=generated_at,
    )


def installed_distributions(env: Env) -> tuple[Distribution, ...]:
    """Every distribution importable from the env, sorted by name; the first on sys.path wins."""
    return distributions_on_path(env.sys_path, Path(env.path))


def distributions_on_path(entries: Iterable[str], prefix: Path) -> tuple[Distribution, ...]:
    found: dict[str, Distribution] = {}
    for directory in metadata_directories(entries):
        dist = _read_distribution(directory.path, prefix)
        if dist is not None and dist.name not in found:
            found[dist.name] = dist
    return tuple(found[name] for name in sorted(found))


def _read_distribution(path: Path, prefix: Path) -> Distribution | None:
    dist = PathDistribution(path)
    try:
        metadata = dist.metadata
    except OSError:
        return None
    name = metadata["Name"] if metadata is not None else None
    if not name:
        return None  # Poetry warns about these and skips them too
    direct_url_text = dist.read_text("direct_url.json")
    direct_url = _direct_url(direct_url_text)
    try:
        record = read_regular_file(str(path / "RECORD"))
        record_sha256: str | None = hashlib.sha256(record).hexdigest()
    except OSError:
        record_sha256 = None  # egg-info, a RECORD-less install, or no regular file
    installer = dist.read_text("INSTALLER")
    return Distribution(
        name=canonicalize_name(name),
        version=str(metadata["Version"] or ""),
        location=_location(path, prefix),
        installer=(installer.strip() or None) if installer is not None else None,
        source=_source_kind(direct_url, has_direct_url=direct_url_text is not None),
        direct_url=direct_url,
        record_sha256=record_sha256,
    )


def _direct_url(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return _sorted(data) if isinstance(data, dict) else None


def _sorted(value: Any) -> Any:
    # Installers write keys in any order; the manifest must not change when they do.
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _source_kind(direct_url: Mapping[str, Any] | None, *, has_direct_url: bool) -> str:
    """PEP 610: no direct_url.json means the distribution was not installed from a direct URL."""
    if direct_url is None:
        return "unknown" if has_direct_url else "index"
    if "vcs_info" in direct_url:
        return "vcs"
    if "dir_info" in direct_url:
        dir_info = direct_url["dir_info"]
        editable = isinstance(dir_info, dict) and dir_info.get("editable") is True
        return "editable" if editable else "directory"
    if "archive_info" in direct_url:
        return "archive"
    return "unknown"


def _location(path: Path, prefix: Path) -> str:
    try:
        return path.relative_to(prefix).as_posix()
    except ValueError:
        return path.as_posix()
