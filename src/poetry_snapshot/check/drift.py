"""Drift: every way an environment can differ from its lock, and the report that lists them.

The decisions come from Poetry (see check.lock): an `Install` that `poetry sync` would not skip
is a missing package, an `Update` is a wrong version, source or editable mode, an `Uninstall`
is an extraneous package. This module only names those differences and says how to fix them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import cast

if TYPE_CHECKING:
    from collections.abc import Collection
    from collections.abc import Iterable
    from collections.abc import Mapping

    from poetry.core.packages.package import Package
    from poetry.core.packages.project_package import ProjectPackage
    from poetry.installation.operations import Update
    from poetry.installation.operations.operation import Operation

    from poetry_snapshot.check.environment import Interpreter

# Bump when a field changes meaning or disappears; adding fields keeps the version.
SCHEMA_VERSION = 1


class DriftKind(Enum):
    """The kinds of drift, in the order reports list them."""

    NO_ENVIRONMENT = "no-environment"
    STALE_LOCK = "stale-lock"
    INTERPRETER = "interpreter"
    MISSING = "missing"
    WRONG_VERSION = "wrong-version"
    WRONG_SOURCE = "wrong-source"
    EDITABLE_MISMATCH = "editable-mismatch"
    EXTRANEOUS = "extraneous"
    ROOT_NOT_INSTALLED = "root-not-installed"
    ROOT_ELSEWHERE = "root-elsewhere"
    WRONG_BUILD = "wrong-build"
    MODIFIED_FILE = "modified-file"
    MISSING_FILE = "missing-file"
    UNOWNED_FILE = "unowned-file"

    @property
    def title(self) -> str:
        return _TITLES[self]


_TITLES = {
    DriftKind.NO_ENVIRONMENT: "No environment",
    DriftKind.STALE_LOCK: "Lock file out of date",
    DriftKind.INTERPRETER: "Interpreter outside requires-python",
    DriftKind.MISSING: "Missing packages",
    DriftKind.WRONG_VERSION: "Wrong versions",
    DriftKind.WRONG_SOURCE: "Wrong sources",
    DriftKind.EDITABLE_MISMATCH: "Editable mode differs",
    DriftKind.EXTRANEOUS: "Extraneous packages",
    DriftKind.ROOT_NOT_INSTALLED: "Project not installed",
    DriftKind.ROOT_ELSEWHERE: "Project installed from elsewhere",
    DriftKind.WRONG_BUILD: "Wrong builds",
    DriftKind.MODIFIED_FILE: "Modified files",
    DriftKind.MISSING_FILE: "Missing files",
    DriftKind.UNOWNED_FILE: "Unowned files",
}


@dataclass(frozen=True)
class Drift:
    """One difference between the environment and the lock, with the command that fixes it."""

    kind: DriftKind
    package: str | None
    expected: str
    found: str
    fix: str
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "package": self.package,
            "expected": self.expected,
            "found": self.found,
            "fix": self.fix,
            "path": self.path,
        }


@dataclass(frozen=True)
class UncheckedFile:
    """A RECORD entry `--deep` cannot verify; counted and listed, never drift."""

    package: str
    path: str
    reason: str


@dataclass(frozen=True)
class ProvenBuild:
    """`--deep`: a distribution whose installed RECORD is that of a file poetry.lock allows."""

    package: str
    version: str
    artifact: str  # the locked file's name
    built: str | None = None  # for a locked sdist: the wheel Poetry built from it

    def to_json(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": self.version,
            "artifact": self.artifact,
            "built": self.built,
        }


@dataclass(frozen=True)
class UnprovenBuild:
    """`--deep`: a locked distribution whose build could not be compared with a locked file."""

    package: str
    version: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"package": self.package, "version": self.version, "reason": self.reason}


@dataclass(frozen=True)
class SharedPath:
    """`--deep`: a file several distributions install, holding what one of them wrote."""

    path: str  # relative to the env
    packages: tuple[str, ...]
    matches: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "packages": list(self.packages), "matches": self.matches}


@dataclass(frozen=True)
class DeepSummary:
    distributions: int
    files: int
    bytes: int
    unchecked: tuple[UncheckedFile, ...] = ()
    scanned: int = 0  # files in site-packages and the scripts directory checked for an owner
    proven: tuple[ProvenBuild, ...] = ()
    unproven: tuple[UnprovenBuild, ...] = ()
    shared: tuple[SharedPath, ...] = ()
    artifact_bytes: int = 0  # locked files hashed

    def to_json(self) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for entry in self.unchecked:
            reasons[entry.reason] = reasons.get(entry.reason, 0) + 1
        return {
            "distributions": self.distributions,
            "files_checked": self.files,
            "bytes_hashed": self.bytes,
            "files_scanned": self.scanned,
            "unchecked": [
                {"package": e.package, "path": e.path, "reason": e.reason} for e in self.unchecked
            ],
            "unchecked_by_reason": dict(sorted(reasons.items())),
            "builds_verified": [b.to_json() for b in self.proven],
            "builds_unverified": [b.to_json() for b in self.unproven],
            "artifact_bytes_hashed": self.artifact_bytes,
            "shared_files": [f.to_json() for f in self.shared],
        }


@dataclass(frozen=True)
class DriftReport:
    """The verdict of `poetry snapshot --check`; also embedded in every snapshot's manifest."""

    project: str
    project_dir: str
    lock_file: str
    environment: str | None
    interpreter: Interpreter | None
    groups: tuple[str, ...]
    extras: tuple[str, ...]
    packages_checked: int
    drifts: tuple[Drift, ...]
    tolerated: tuple[Drift, ...] = ()
    deep: DeepSummary | None = None
    verified: bool = True

    @property
    def ok(self) -> bool:
        return not self.drifts

    def to_json(self) -> dict[str, Any]:
        interpreter = self.interpreter
        return {
            "schema_version": SCHEMA_VERSION,
            "ok": self.ok,
            "verified": self.verified,
            "project": self.project,
            "project_dir": self.project_dir,
            "lock_file": self.lock_file,
            "environment": self.environment,
            "interpreter": None if interpreter is None else interpreter.to_json(),
            "groups": list(self.groups),
            "extras": list(self.extras),
            "packages_checked": self.packages_checked,
            "drift_count": len(self.drifts),
            "drifts": [d.to_json() for d in self.drifts],
            "tolerated": [d.to_json() for d in self.tolerated],
            "deep": None if self.deep is None else self.deep.to_json(),
        }


def describe_source(package: Package) -> str:
    """A short, human-readable form of where a package comes from."""
    kind = package.source_type
    if kind in (None, "", "legacy", "pypi"):
        name = package.source_reference if kind == "legacy" else None
        return f"index {name}" if name else "index"
    if kind == "git":
        commit = package.source_resolved_reference or package.source_reference or "?"
        return f"git {package.source_url}@{commit[:12]}"
    text = f"{kind} {package.source_url}"
    if package.source_subdirectory:
        text += f"#{package.source_subdirectory}"
    return text + (" (editable)" if package.develop else "")


def operation_drifts(
    operations: Iterable[Operation],
    sync_command: str,
    locked_names: Collection[str],
    installed: Mapping[str, Package],
) -> list[Drift]:
    """Name what each operation `poetry sync` would run says about the environment."""
    drifts: list[Drift] = []
    for op in operations:
        if op.skipped:
            # Poetry < 2.1's Transaction ignores the editable flag; later ones turn a mismatch
            # into an Update. Apply the later rule everywhere.
            found = installed.get(op.package.name)
            if (
                op.skip_reason == "Already installed"
                and found is not None
                and (
                    op.package.source_type in ("directory", "git")
                    and found.develop != op.package.develop
                )
            ):
                drifts.append(_update_drift(found, op.package, sync_command))
            continue
        if op.job_type == "install":
            target = op.package
            drifts.append(
                Drift(
                    DriftKind.MISSING,
                    target.pretty_name,
                    _version_and_source(target),
                    "not installed",
                    sync_command,
                )
            )
        elif op.job_type == "update":
            update = cast("Update", op)
            drifts.append(
                _update_drift(update.initial_package, update.target_package, sync_command)
            )
        elif op.job_type == "uninstall":
            found = op.package
            expected = (
                "absent (locked only for other groups, extras or platforms)"
                if found.name in locked_names
                else "absent (not in poetry.lock)"
            )
            drifts.append(
                Drift(
                    DriftKind.EXTRANEOUS,
                    found.pretty_name,
                    expected,
                    _version_and_source(found),
                    f"{sync_command}  (or --allow-extra to tolerate it)",
                )
            )
    return drifts


def _update_drift(installed: Package, target: Package, sync_command: str) -> Drift:
    name = target.pretty_name
    if installed.version != target.version:
        return Drift(
            DriftKind.WRONG_VERSION,
            name,
            target.pretty_version,
            installed.pretty_version,
            sync_command,
        )
    if target.source_type in ("directory", "git") and installed.develop != target.develop:
        return Drift(
            DriftKind.EDITABLE_MISMATCH,
            name,
            "editable" if target.develop else "not editable",
            "editable" if installed.develop else "not editable",
            sync_command,
        )
    return Drift(
        DriftKind.WRONG_SOURCE,
        name,
        describe_source(target),
        describe_source(installed),
        sync_command,
    )


def _version_and_source(package: Package) -> str:
    source = describe_source(package)
    return package.pretty_version + ("" if source == "index" else f" from {source}")


def root_drifts(
    root: ProjectPackage, project_dir: Path, installed: Iterable[Package]
) -> list[Drift]:
    """The project itself: installed, from this directory, editable, at its current version."""
    fix = "poetry install --only-root"
    found = next((p for p in installed if p.name == root.name), None)
    if found is None:
        return [
            Drift(DriftKind.ROOT_NOT_INSTALLED, root.pretty_name, "installed", "not installed", fix)
        ]
    here = project_dir.resolve()
    if found.source_type != "directory" or found.source_url is None:
        return [
            Drift(
                DriftKind.ROOT_ELSEWHERE,
                root.pretty_name,
                f"directory {here} (editable)",
                _version_and_source(found),
                fix,
            )
        ]
    if Path(found.source_url).resolve() != here:
        return [
            Drift(
                DriftKind.ROOT_ELSEWHERE,
                root.pretty_name,
                f"directory {here}",
                f"directory {found.source_url}",
                fix,
            )
        ]
    if not found.develop:
        # Poetry installs the project editable; a plain install is a frozen copy of old code.
        return [
            Drift(DriftKind.EDITABLE_MISMATCH, root.pretty_name, "editable", "not editable", fix)
        ]
    if found.version != root.version:
        return [
            Drift(
                DriftKind.WRONG_VERSION,
                root.pretty_name,
                root.pretty_version,
                found.pretty_version,
                fix,
            )
        ]
    return []


def dynamic_version(pyproject: Mapping[str, Any], version: str) -> str | None:
    """Why the project's version is not a literal of pyproject.toml, or None when it is.

    Poetry itself never compares the installed project's version: `poetry install` and
    `poetry sync` reinstall the project at every run, at the version it has at that moment
    (`poetry sync --dry-run` plans "Installing the current project" whatever is installed). A
    literal version bump is still drift here (the installed metadata is stale until the next
    install); a version a plugin computes (poetry-dynamic-versioning: from the last git tag and
    the commits since) changes with every commit, and is left to Poetry's view.
    """
    from poetry.core.constraints.version import Version
    from poetry.core.constraints.version.exceptions import ParseConstraintError

    project = pyproject.get("project")
    project = project if isinstance(project, dict) else {}
    tool = pyproject.get("tool")
    tool = tool if isinstance(tool, dict) else {}
    dynamic = project.get("dynamic")
    if isinstance(dynamic, list) and "version" in dynamic:
        return 'pyproject.toml lists "version" in [project] dynamic'
    versioning = tool.get("poetry-dynamic-versioning")
    if isinstance(versioning, dict) and versioning.get("enable") is True:
        return "poetry-dynamic-versioning computes it"
    poetry_table = tool.get("poetry")
    literal = project.get("version")
    if literal is None and isinstance(poetry_table, dict):
        literal = poetry_table.get("version")
    if isinstance(literal, str):
        try:
            if Version.parse(literal) != Version.parse(version):
                return f"a plugin set it (pyproject.toml says {literal})"
        except (ParseConstraintError, ValueError):
            return None
    return None


def interpreter_drift(
    root: ProjectPackage, interpreter: Interpreter, sync_command: str = "poetry sync"
) -> Drift | None:
    """The env's Python must satisfy the project's requires-python, as Poetry demands on install."""
    from poetry.core.constraints.version import Version

    if root.python_constraint.allows(Version.parse(interpreter.version)):
        return None
    return Drift(
        DriftKind.INTERPRETER,
        "python",
        root.python_versions,
        interpreter.version,
        f"poetry env use <a Python matching requires-python> && {sync_command}",
    )
