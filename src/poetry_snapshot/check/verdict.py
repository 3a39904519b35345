"""`poetry snapshot --check`: decide whether the project's environment is exactly its lock.

Reads, never writes: no virtualenv is created, nothing is installed, no network is touched
(Poetry's repositories are never queried; the lock and the env are all we read).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from poetry_snapshot.check import lock
from poetry_snapshot.check import ownership
from poetry_snapshot.check.drift import DeepSummary
from poetry_snapshot.check.drift import Drift
from poetry_snapshot.check.drift import DriftKind
from poetry_snapshot.check.drift import DriftReport
from poetry_snapshot.check.drift import SharedPath
from poetry_snapshot.check.drift import UnprovenBuild
from poetry_snapshot.check.drift import dynamic_version
from poetry_snapshot.check.drift import interpreter_drift
from poetry_snapshot.check.drift import operation_drifts
from poetry_snapshot.check.drift import root_drifts
from poetry_snapshot.check.env_layout import EnvLayout
from poetry_snapshot.check.env_layout import RealDirectories
from poetry_snapshot.check.environment import Interpreter
from poetry_snapshot.check.environment import find_project_env
from poetry_snapshot.check.installed_files import InstalledDistribution
from poetry_snapshot.check.installed_files import SharedFile
from poetry_snapshot.check.installed_files import check_records
from poetry_snapshot.check.installed_files import default_workers
from poetry_snapshot.check.installed_files import metadata_directories
from poetry_snapshot.check.installed_files import own_shebang_lines
from poetry_snapshot.check.installed_files import read_installed_files
from poetry_snapshot.check.installed_files import read_record

if TYPE_CHECKING:
    from collections.abc import Collection
    from collections.abc import Iterable
    from collections.abc import Mapping
    from collections.abc import Sequence
    from concurrent.futures import Executor
    from concurrent.futures import Future

    from poetry.core.packages.package import Package
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_snapshot.check import artifacts
    from poetry_snapshot.check import builds
    from poetry_snapshot.check.installed_files import FileProblem
    from poetry_snapshot.check.installed_files import Record
    from poetry_snapshot.check.lock import InstallScope
    from poetry_snapshot.check.lock import LockPlan
    from poetry_snapshot.check.ownership import OwnershipScan


@dataclass(frozen=True)
class CheckRequest:
    scope: InstallScope
    deep: bool = False
    allow_extra: bool = False
    fetch: bool = False  # --deep may download the locked files it cannot find offline


@dataclass(frozen=True)
class Examination:
    """A verification's verdict and what it looked at, for callers that need both."""

    report: DriftReport
    env: Env | None
    installed: tuple[Package, ...]


def verify(poetry: Poetry, request: CheckRequest) -> DriftReport:
    """Compare the project's environment with its lock; raises only for configuration errors."""
    return examine(poetry, request).report


def examine(poetry: Poetry, request: CheckRequest) -> Examination:
    """verify(), also returning the env and the packages found in it."""
    scope = request.scope
    locker = lock.read_lock(poetry)
    root = poetry.package
    sync = "poetry sync" + lock.install_flags(
        scope,
        default_groups=lock.default_groups(poetry),
        all_extras=set(root.extras),
    )
    drifts: list[Drift] = []
    fresh = lock.is_fresh(locker)
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
        groups=tuple(sorted(scope.groups)),
        extras=tuple(sorted(scope.extras)),
    )
    env = find_project_env(poetry, sync)
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
        return Examination(report, None, ())

    interpreter = Interpreter.of(env)
    wrong_python = interpreter_drift(root, interpreter, sync)
    if wrong_python is not None:
        drifts.append(wrong_python)

    try:
        plan = lock.plan(poetry, env, scope)
    except lock.LockUnsolvable:
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
        return Examination(report, env, ())
    locked_names = {canonicalize_name(p["name"]) for p in locker.lock_data.get("package", [])}
    installed: dict[str, Package] = {package.name: package for package in plan.installed}
    found = operation_drifts(plan.operations, sync, locked_names, installed)
    tolerated: list[Drift] = [
        d for d in found if request.allow_extra and d.kind is DriftKind.EXTRANEOUS
    ]
    drifts.extend(d for d in found if d not in tolerated)
    if scope.with_root and poetry.is_package_mode:
        dynamic = dynamic_version(poetry.pyproject.data, root.version.text)
        for drift in root_drifts(root, poetry.pyproject_path.parent, plan.installed):
            if drift.kind is DriftKind.WRONG_VERSION and dynamic is not None:
                # Poetry's view: the project is reinstalled at every `poetry install`, at the
                # version it has then; a computed version is never compared.
                tolerated.append(
                    replace(
                        drift,
                        expected=f"{drift.expected} (dynamic: {dynamic}; Poetry never"
                        " compares it, poetry sync reinstalls the project every time)",
                    )
                )
            else:
                drifts.append(drift)

    deep = None
    if request.deep:
        drifts_found, deep = _deep(poetry, env, plan, sync, fetch=request.fetch)
        drifts.extend(drifts_found)

    drifts.sort(key=lambda d: (list(DriftKind).index(d.kind), d.package or "", d.path or ""))
    report = make_report(
        environment=str(env.path),
        interpreter=interpreter,
        packages_checked=_relevant_count(plan),
        drifts=tuple(drifts),
        tolerated=tuple(tolerated),
        deep=deep,
    )
    return Examination(report, env, plan.installed)


def _relevant_count(plan: LockPlan) -> int:
    return sum(
        1
        for op in plan.operations
        if op.job_type in ("install", "update") and op.skip_reason != "Not required"
    )


def _deep(
    poetry: Poetry, env: Env, plan: LockPlan, sync: str, *, fetch: bool = False
) -> tuple[list[Drift], DeepSummary]:
    """Hash the files of the locked distributions, prove their builds are locked files, find
    the files nothing installed."""
    from poetry_snapshot.check import artifacts
    from poetry_snapshot.check import builds

    layout = EnvLayout.of(env)
    directories = RealDirectories(layout.roots)
    locked: dict[str, Package] = {
        op.package.name: op.package
        for op in plan.operations
        if op.job_type == "install" and op.skip_reason == "Already installed"
    }
    owners: list[ownership.Owner] = []
    records = []
    for dist in installed_distributions(layout, plan.installed):
        if dist.dist_info.name.endswith(".egg-info"):
            paths = read_installed_files(dist.dist_info, layout, directories)
            owners.append(ownership.Owner(dist.name, paths or (str(dist.dist_info),)))
            continue
        record = read_record(dist, layout, directories)
        records.append(record)
        owners.append(ownership.Owner(dist.name, record.paths, record.directory))
    owners.extend(_conda_owners(layout))

    locked_records = [r for r in records if r.distribution.name in locked]
    provable = [r for r in locked_records if r.readable and r.rows]
    scripts = layout.scripts_dir + os.sep if layout.scripts_dir else None
    # The scripts of the locked distributions are judged by their body (check.builds), never
    # by a RECORD hash that covers their `#!` line.
    hashed = [
        replace(r, entries=tuple(e for e in r.entries if not e.path.startswith(scripts)))
        if scripts is not None and r in provable
        else r
        for r in locked_records
    ]
    finder = artifacts.ArtifactFinder(env, poetry.config)
    context = builds.BuildContext(
        layout, directories, builds.Schemes.of(env), own_shebang_lines(layout)
    )

    def plan_and_prove(pool: Executor) -> list[Future[builds.BuildVerdict]]:
        expectations = finder.expect((locked[r.distribution.name] for r in provable), pool)
        return [
            pool.submit(builds.prove, r, expectations[r.distribution.name], context)
            for r in provable
        ]

    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=default_workers()))
        planner = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        # Finding the locked files walks Poetry's cache: that, and then hashing them, runs
        # beside the hashing of the env's files, in the same threads.
        planned = planner.submit(plan_and_prove, pool)
        check = check_records(
            hashed,
            layout,
            shared_with=[r for r in records if r.distribution.name not in locked],
            pool=pool,
        )
        verdicts = {v.package: v for v in (f.result() for f in planned.result())}
        if fetch:
            retry = [r for r in provable if verdicts[r.distribution.name].fetchable]
            verdicts.update(
                _fetch_and_prove(poetry, finder, verdicts, retry, locked, context, pool)
            )

    # The other installed distributions (the creator's pip, extraneous ones) are not hashed, but
    # their RECORDs say what they own: one that cannot be read is drift too.
    script_problems, shared_scripts = _shared_scripts(provable, verdicts, layout)
    problems = [
        *check.problems,
        *script_problems,
        *(p for r in records if r.distribution.name not in locked for p in r.problems),
    ]
    scan = ownership.find_unowned(layout, owners)
    dist_infos = {r.distribution.name: r.directory for r in records}
    drifts = _file_drifts(problems, locked, dist_infos, layout, sync)
    drifts.extend(_unowned_drifts(scan, layout, sync))
    unproven = [v.unverified for v in verdicts.values() if v.unverified is not None]
    unproven.extend(_unprovable(locked, locked_records, provable))
    summary = DeepSummary(
        check.distributions,
        check.files + sum(v.files for v in verdicts.values()),
        check.bytes + sum(v.bytes for v in verdicts.values()),
        (*check.unchecked, *(u for v in verdicts.values() for u in v.unchecked)),
        scanned=scan.files,
        proven=tuple(
            sorted(
                (v.proof for v in verdicts.values() if v.proof is not None),
                key=lambda b: b.package,
            )
        ),
        unproven=tuple(sorted(unproven, key=lambda b: b.package)),
        shared=tuple(
            SharedPath(layout.relative(f.path), f.packages, f.matches)
            for f in sorted((*check.shared, *shared_scripts), key=lambda f: f.path)
        ),
        artifact_bytes=sum(v.artifact_bytes for v in verdicts.values()),
    )
    return drifts, summary


def _shared_scripts(
    records: Sequence[Record], verdicts: Mapping[str, builds.BuildVerdict], layout: EnvLayout
) -> tuple[list[FileProblem], list[SharedFile]]:
    """The verdicts' problems, with a script several locked distributions install (the same
    console script name) judged against each of them: like any shared file, it is intact when
    it is what one of them writes."""
    problems = [p for v in verdicts.values() for p in v.problems]
    if layout.scripts_dir is None:
        return problems, []
    scripts = layout.scripts_dir + os.sep
    owners: dict[str, dict[str, str]] = {}
    for record in records:
        for row in record.rows:
            if row.path.startswith(scripts):
                owners.setdefault(row.path, {})[record.distribution.name] = row.record_path
    judged = {(p.package, p.path): p for p in problems if p.problem != "wrong-build"}
    dropped: set[tuple[str, str]] = set()
    kept: list[FileProblem] = []
    shared: list[SharedFile] = []
    for path, listing in owners.items():
        if len(listing) < 2:
            continue
        keys = [(package, record_path) for package, record_path in sorted(listing.items())]
        intact = [package for package, record_path in keys if (package, record_path) not in judged]
        dropped.update(keys)
        if intact:
            shared.append(SharedFile(path, tuple(sorted(listing)), intact[0]))
        else:
            first = judged[keys[0]]
            kept.append(replace(first, owners=tuple(sorted(listing))))
    if not dropped:
        return problems, []
    remaining = [
        p for p in problems if p.problem == "wrong-build" or (p.package, p.path) not in dropped
    ]
    return [*remaining, *kept], shared


def _fetch_and_prove(
    poetry: Poetry,
    finder: artifacts.ArtifactFinder,
    verdicts: Mapping[str, builds.BuildVerdict],
    retry: Sequence[Record],
    locked: Mapping[str, Package],
    context: builds.BuildContext,
    pool: Executor,
) -> dict[str, builds.BuildVerdict]:
    """--fetch: download the locked files the offline proof lacked, then prove those builds
    again."""
    from poetry_snapshot.check import builds
    from poetry_snapshot.check.fetch import fetch_missing

    if not retry:
        return {}
    before = finder.expect(locked[r.distribution.name] for r in retry)
    outcome = fetch_missing(poetry, before.values(), finder.cache)
    for path in outcome.paths:
        finder.add(path)
    after = finder.expect(locked[r.distribution.name] for r in retry)
    proved = {
        v.package: v
        for v in pool.map(lambda r: builds.prove(r, after[r.distribution.name], context), retry)
    }
    failures: dict[str, list[str]] = {}
    for name, reason in outcome.failures:
        failures.setdefault(name, []).append(reason)
    for name, verdict in proved.items():
        if verdict.unverified is not None and name in failures:
            unverified = replace(verdict.unverified, reason="; ".join(failures[name]))
            proved[name] = replace(verdict, unverified=unverified, fetchable=False)
    return proved


def _unprovable(
    locked: Mapping[str, Package], locked_records: Sequence[Record], provable: Sequence[Record]
) -> list[UnprovenBuild]:
    """Locked distributions whose installed RECORD cannot be compared with anything."""
    found = {r.distribution.name: r for r in locked_records}
    proving = {r.distribution.name for r in provable}
    unproven = []
    for name, package in locked.items():
        if name in proving:
            continue
        record = found.get(name)
        if record is None:
            reason = "installed without a .dist-info (an .egg-info): no RECORD to compare"
        elif not record.readable:
            reason = "its RECORD cannot be read"
        else:
            reason = "it has no RECORD"
        unproven.append(UnprovenBuild(name, package.pretty_version, reason))
    return unproven


def installed_distributions(
    layout: EnvLayout, installed: Iterable[Package]
) -> list[InstalledDistribution]:
    """The `.dist-info` and `.egg-info` directories of the distributions Poetry sees installed.

    Like Poetry's InstalledRepository: the first per name, site dirs in order, entries sorted by
    path. A metadata directory whose name or version is not the installed one's (a stray
    duplicate, a leftover) owns nothing, so its files show up as unowned.
    """
    from poetry.core.constraints.version import Version
    from poetry.core.constraints.version.exceptions import ParseConstraintError

    versions = {package.name: package.version for package in installed}
    found: dict[str, InstalledDistribution] = {}
    for directory in metadata_directories(layout.site_dirs):
        name = directory.name
        if name not in versions or name in found:
            continue
        if directory.version or directory.kind == "dist-info":
            try:
                if Version.parse(directory.version) != versions[name]:
                    continue
            except (ParseConstraintError, ValueError):
                continue
        found[name] = InstalledDistribution(name, directory.path)
    return [found[name] for name in sorted(found)]


def _conda_owners(layout: EnvLayout) -> list[ownership.Owner]:
    """In a conda prefix, the files each conda package installed (`conda-meta/*.json`)."""
    from poetry_snapshot.check.conda_meta import find_conda_prefix
    from poetry_snapshot.check.conda_meta import read_conda_prefix

    prefix = find_conda_prefix([Path(layout.prefix)])
    if prefix is None:
        return []
    return [
        ownership.Owner(
            package.name,
            tuple(os.path.normpath(os.path.join(layout.prefix, f)) for f in package.files),
        )
        for package in read_conda_prefix(prefix).packages
    ]


_RECREATE = "poetry env remove --all && {sync}"
_FILE_KINDS = {"missing": DriftKind.MISSING_FILE, "wrong-build": DriftKind.WRONG_BUILD}


def _file_drifts(
    problems: Iterable[FileProblem],
    locked: Collection[str],
    dist_infos: Mapping[str, str],
    layout: EnvLayout,
    sync: str,
) -> list[Drift]:
    drifts = []
    for problem in problems:
        kind = _FILE_KINDS.get(problem.problem, DriftKind.MODIFIED_FILE)
        # A file several distributions install: reinstalling all of them puts back what one
        # of them wrote.
        packages = problem.owners or (problem.package,)
        if not any(package in locked for package in packages):
            # Not Poetry's to reinstall (the env creator's pip, an extraneous package), and pip
            # cannot uninstall what it cannot read: a new env is what is certain to be clean.
            fix = _RECREATE.format(sync=sync)
        elif problem.problem == "record":
            # pip reads RECORD to uninstall; without the .dist-info Poetry reinstalls over it.
            dist_info = layout.shown(dist_infos[problem.package])
            fix = f"rm -r -- {shlex.quote(dist_info)} && {sync}"
        else:
            # `poetry sync` skips what is installed at the locked version: uninstall it first.
            names = " ".join(packages)
            fix = f"poetry run python -m pip uninstall -y {names} && {sync}"
        drifts.append(
            Drift(kind, problem.package, problem.expected, problem.found, fix, path=problem.path)
        )
    return drifts


def _unowned_drifts(scan: OwnershipScan, layout: EnvLayout, sync: str) -> list[Drift]:
    drifts = []
    for unowned in scan.unowned:
        shown = layout.shown(unowned.path)
        if unowned.remedy == ownership.RECREATE:
            fix = _RECREATE.format(sync=sync)
        elif unowned.remedy == ownership.MAKE_READABLE:
            fix = f"chmod u+rx -- {shlex.quote(shown)}"
        else:
            # Nothing removes it for you: pip and Poetry uninstall only what RECORD lists.
            fix = f"rm -- {shlex.quote(shown)}"
        drifts.append(
            Drift(
                DriftKind.UNOWNED_FILE,
                unowned.package,
                "absent (no installed distribution lists it)",
                unowned.found,
                fix,
                path=layout.relative(unowned.path),
            )
        )
    return drifts
