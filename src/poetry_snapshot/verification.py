"""`poetry snapshot --check`: decide whether the project's environment is exactly its lock.

Reads, never writes: no virtualenv is created, nothing is installed, no network is touched
(Poetry's repositories are never queried; the lock and the env are all we read).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from poetry_snapshot import lockstate
from poetry_snapshot.drift import DeepSummary
from poetry_snapshot.drift import Drift
from poetry_snapshot.drift import DriftKind
from poetry_snapshot.drift import DriftReport
from poetry_snapshot.drift import interpreter_drift
from poetry_snapshot.drift import operation_drifts
from poetry_snapshot.drift import root_drifts
from poetry_snapshot.environment import Interpreter
from poetry_snapshot.environment import find_project_env
from poetry_snapshot.record import InstalledDistribution
from poetry_snapshot.record import check_records

if TYPE_CHECKING:
    from poetry.core.packages.package import Package
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_snapshot.lockstate import InstallSelection
    from poetry_snapshot.lockstate import LockPlan
    from poetry_snapshot.record import RecordCheck


@dataclass(frozen=True)
class CheckRequest:
    selection: InstallSelection
    deep: bool = False
    allow_extra: bool = False


@dataclass(frozen=True)
class Inspection:
    """A verification's verdict and what it looked at, for callers that need both."""

    report: DriftReport
    env: Env | None
    installed: tuple[Package, ...]


def verify(poetry: Poetry, request: CheckRequest) -> DriftReport:
    """Compare the project's environment with its lock; raises only for configuration errors."""
    return inspect(poetry, request).report


def inspect(poetry: Poetry, request: CheckRequest) -> Inspection:
    """verify(), also returning the env and the packages found in it."""
    selection = request.selection
    locker = lockstate.read_lock(poetry)
    lockstate.validate_extras(poetry, selection.extras)
    root = poetry.package
    sync = "poetry sync" + lockstate.install_flags(
        selection,
        default_groups=lockstate.default_groups(poetry),
        all_extras=set(root.extras),
    )
    drifts: list[Drift] = []
    fresh = lockstate.is_fresh(locker)
    if not fresh:
        drifts.append(
            Drift(
                DriftKind.STALE_LOCK,
                None,
                "poetry.lock matches pyproject.toml",
                "pyproject.toml changed since poetry.lock was written",
                "poetry lock",
            )
        )
    make_report = functools.partial(
        DriftReport,
        project=root.pretty_name,
        project_dir=str(poetry.pyproject_path.parent),
        lock_file=str(locker.lock),
        groups=tuple(sorted(selection.groups)),
        extras=tuple(sorted(selection.extras)),
    )
    env = find_project_env(poetry)
    if env is None:
        drifts.append(
            Drift(
                DriftKind.NO_ENVIRONMENT,
                None,
                "a virtualenv holding the locked packages",
                "none (poetry run would create one)",
                sync,
            )
        )
        report = make_report(
            environment=None, interpreter=None, packages_checked=0, drifts=tuple(drifts)
        )
        return Inspection(report, None, ())

    interpreter = Interpreter.of(env)
    wrong_python = interpreter_drift(root, interpreter)
    if wrong_python is not None:
        drifts.append(wrong_python)

    try:
        plan = lockstate.plan(poetry, env, selection)
    except lockstate.LockUnsolvable:
        if fresh:
            raise
        # With installer.re-resolve (Poetry 2.0's default) a stale lock may not even solve:
        # `poetry sync` would refuse too. The stale lock is the drift to fix first.
        report = make_report(
            environment=str(env.path),
            interpreter=interpreter,
            packages_checked=0,
            drifts=tuple(drifts),
        )
        return Inspection(report, env, ())
    locked_names = {canonicalize_name(p["name"]) for p in locker.lock_data.get("package", [])}
    installed: dict[str, Package] = {package.name: package for package in plan.installed}
    found = operation_drifts(plan.operations, sync, locked_names, installed)
    tolerated = [d for d in found if request.allow_extra and d.kind is DriftKind.EXTRANEOUS]
    drifts.extend(d for d in found if d not in tolerated)
    if selection.with_root and poetry.is_package_mode:
        drifts.extend(root_drifts(root, poetry.pyproject_path.parent, plan.installed))

    deep = None
    if request.deep:
        check = check_records(_verified_distributions(env, plan), env.script_dirs[0], env.path)
        drifts.extend(_file_drifts(check))
        deep = DeepSummary(check.distributions, check.files, check.bytes, check.unchecked)

    drifts.sort(key=lambda d: (list(DriftKind).index(d.kind), d.package or "", d.path or ""))
    report = make_report(
        environment=str(env.path),
        interpreter=interpreter,
        packages_checked=_relevant_count(plan),
        drifts=tuple(drifts),
        tolerated=tuple(tolerated),
        deep=deep,
    )
    return Inspection(report, env, plan.installed)


def _relevant_count(plan: LockPlan) -> int:
    return sum(
        1
        for op in plan.operations
        if op.job_type in ("install", "update") and op.skip_reason != "Not required"
    )


def _verified_distributions(env: Env, plan: LockPlan) -> list[InstalledDistribution]:
    """Distributions `poetry sync` found already installed: their files are the ones to check."""
    wanted = {
        op.package.name
        for op in plan.operations
        if op.job_type == "install" and op.skip_reason == "Already installed"
    }
    found: dict[str, Path] = {}
    for directory in env.site_packages.candidates:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in sorted(names):
            if not name.endswith(".dist-info"):
                continue
            # "{escaped name}-{version}.dist-info": the name is all before the last dash.
            dist_name = canonicalize_name(name[: -len(".dist-info")].rpartition("-")[0])
            if dist_name in wanted and dist_name not in found:
                found[dist_name] = Path(directory, name)
    return [InstalledDistribution(name, path) for name, path in sorted(found.items())]


def _file_drifts(check: RecordCheck) -> list[Drift]:
    drifts = []
    for problem in check.problems:
        kind = DriftKind.MISSING_FILE if problem.problem == "missing" else DriftKind.MODIFIED_FILE
        drifts.append(
            Drift(
                kind,
                problem.package,
                problem.expected,
                problem.found,
                f"poetry run python -m pip uninstall -y {problem.package} && poetry sync",
                path=problem.path,
            )
        )
    return drifts
