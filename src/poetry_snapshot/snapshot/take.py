"""Take a snapshot and run a command from it: decide first (verify, select), act second.

`plan()` only reads: it verifies the environment and selects the files. `take()` copies them
into a staging directory under the store, writes the manifest there and publishes the
snapshot under its id with one atomic rename. `run()` records the start, runs the command
from the snapshot, and records how it ended, each time rewriting the manifest atomically.
"""

from __future__ import annotations

import getpass
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from typing import Callable

from poetry_snapshot import __version__
from poetry_snapshot.check.environment import Interpreter
from poetry_snapshot.check.environment import find_project_env
from poetry_snapshot.errors import NoEnvironmentError
from poetry_snapshot.errors import SnapshotError
from poetry_snapshot.errors import first_line
from poetry_snapshot.hashing import sha256_file
from poetry_snapshot.snapshot.layout import DIFF_NAME
from poetry_snapshot.snapshot.layout import METADATA_DIR
from poetry_snapshot.snapshot.layout import RUNS_DIR
from poetry_snapshot.snapshot.manifest import CopySummary
from poetry_snapshot.snapshot.manifest import InstalledPackage
from poetry_snapshot.snapshot.manifest import LockInfo
from poetry_snapshot.snapshot.manifest import Manifest
from poetry_snapshot.snapshot.manifest import ProjectInfo
from poetry_snapshot.snapshot.manifest import Verification
from poetry_snapshot.snapshot.manifest import allowed_environment
from poetry_snapshot.snapshot.manifest import now
from poetry_snapshot.snapshot.manifest import read_files
from poetry_snapshot.snapshot.manifest import read_header
from poetry_snapshot.snapshot.manifest import tree_digest
from poetry_snapshot.snapshot.selection import Selection
from poetry_snapshot.snapshot.selection import SelectionRules
from poetry_snapshot.snapshot.selection import select
from poetry_snapshot.snapshot.store import SnapshotStore

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from poetry.core.packages.package import Package
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_snapshot.check.drift import DriftReport
    from poetry_snapshot.check.verdict import CheckRequest
    from poetry_snapshot.snapshot.copier import CopyResult
    from poetry_snapshot.snapshot.copier import LinkBase
    from poetry_snapshot.snapshot.editables import Editables
    from poetry_snapshot.snapshot.git_facts import GitInfo
    from poetry_snapshot.snapshot.holds import SnapshotHold
    from poetry_snapshot.snapshot.runner import Outcome

VERIFY = "verified"
ALLOW_DRIFT = "drift-allowed"
SKIP = "skipped"


class DriftBlocksSnapshot(SnapshotError):
    """The environment drifted and neither --allow-drift nor --no-verify was given."""

    exit_code = 1

    def __init__(self, report: DriftReport) -> None:
        super().__init__(
            "The environment does not match poetry.lock; nothing was copied.",
            "Fix the drift above, or pass --allow-drift to snapshot anyway and record it.",
        )
        self.report = report


@dataclass(frozen=True)
class SnapshotRequest:
    check: CheckRequest
    verify_mode: str  # VERIFY, ALLOW_DRIFT or SKIP
    rules: SelectionRules
    base_dir: Path
    snapshot_id: str | None = None
    replace: bool = False
    link: bool = False


@dataclass(frozen=True)
class SnapshotPlan:
    """What a snapshot will hold, decided before anything is written."""

    request: SnapshotRequest
    project_dir: Path
    verification: Verification
    env: Env
    installed: tuple[Package, ...]
    selection: Selection
    editables: Editables  # the env's editable installs; in-project ones run from the snapshot


@dataclass(frozen=True)
class Snapshot:
    id: str
    path: Path
    manifest: Manifest
    # Held from before publication until the run ends (None when no command will run).
    hold: SnapshotHold | None = None
    python_path: tuple[str, ...] = ()  # relative to `path`: first on the command's PYTHONPATH
    warnings: tuple[str, ...] = ()  # one line each, for the command to print


def plan(poetry: Poetry, request: SnapshotRequest) -> SnapshotPlan:
    """Verify the environment (per the request) and select the files; writes nothing."""
    from poetry.repositories.installed_repository import InstalledRepository

    from poetry_snapshot.check.verdict import examine
    from poetry_snapshot.snapshot.editables import find_editables

    project_dir = poetry.pyproject_path.parent
    if request.verify_mode == SKIP:
        env = find_project_env(poetry)
        report = None
        installed: tuple[Package, ...] = ()
        if env is not None:
            installed = tuple(InstalledRepository.load(env).packages)
    else:
        examination = examine(poetry, request.check)
        env, report, installed = examination.env, examination.report, examination.installed
        if not report.ok and request.verify_mode == VERIFY:
            raise DriftBlocksSnapshot(report)
    if env is None:
        raise NoEnvironmentError(
            "The project has no environment to run in.", "Run `poetry sync` to create it."
        )
    rules = request.rules
    if _is_within(request.base_dir, project_dir):
        rules = SelectionRules(
            include=rules.include,
            exclude=rules.exclude,
            excluded_dirs=(*rules.excluded_dirs, request.base_dir),
        )
    return SnapshotPlan(
        request=request,
        project_dir=project_dir,
        verification=Verification(request.verify_mode, report),
        env=env,
        installed=installed,
        selection=select(project_dir, rules),
        editables=find_editables(env, installed, project_dir, package_roots(poetry)),
    )


def take(
    poetry: Poetry,
    planned: SnapshotPlan,
    cwd: Path,
    progress: Callable[[int, int], None] | None = None,
    *,
    argv: Sequence[str] = (),
) -> Snapshot:
    """Copy, describe and publish the planned snapshot under a new, never-reused id.

    With `argv`, the command the snapshot is taken to run: the manifest names it, and the
    snapshot is held for that run (see `run()`) from before it is published.
    """
    from poetry_snapshot.snapshot.copier import copy_selection
    from poetry_snapshot.snapshot.editables import lay_out
    from poetry_snapshot.snapshot.git_facts import read_git_info

    request = planned.request
    store = SnapshotStore(request.base_dir)
    store.ensure()
    store.reclaim()  # what crashed runs left, and the ids they held
    warnings: list[str] = []
    created = now()
    link_base = _link_base(store, warnings) if request.link else None
    reservation = (
        store.reserve(request.snapshot_id, replace=request.replace)
        if request.snapshot_id
        else store.reserve_new(created)
    )
    snapshot_id = reservation.id
    relative_cwd = _relative_cwd(cwd, planned.project_dir)
    env = planned.env
    held: SnapshotHold | None = None
    # git and the env's interpreter are asked in subprocesses: while the copy runs, not after.
    # The pool is the inner block: if the copy fails, the git thread (still writing git.diff
    # into staging) ends before staging is removed.
    try:
        with (
            store.staging(reservation) as staging,
            ThreadPoolExecutor(2, thread_name_prefix="snapshot-facts") as facts,
        ):
            metadata = staging / METADATA_DIR  # reserved: no selected file lives there
            metadata.mkdir()
            (metadata / RUNS_DIR).mkdir()
            if argv:
                held = store.hold(staging)
            # The base dir, when inside the project, is no change of it (nor is any snapshot).
            git = facts.submit(
                read_git_info,
                planned.project_dir,
                metadata / DIFF_NAME,
                excluded=(request.base_dir,),
            )
            # The verification described the interpreter already; without one, ask it now.
            report = planned.verification.report
            known = None if report is None else report.interpreter
            interpreter = facts.submit(lambda: known or Interpreter.of(env))
            result = copy_selection(
                planned.selection, staging, link_base=link_base, progress=progress
            )
            # The command runs where the user stood; that directory may hold no selected file
            # (empty, or ignored like results/), so make sure the snapshot has it.
            (staging / relative_cwd).mkdir(parents=True, exist_ok=True)
            layout = lay_out(planned.editables.redirect, staging)
            git_info = git.result()
            if git_info is not None:
                warnings.extend(git_info.warnings)
            manifest = _manifest(
                poetry,
                planned,
                snapshot_id,
                created,
                relative_cwd,
                result,
                linked_from=None if link_base is None else link_base.root.name,
                git=git_info,
                interpreter=interpreter.result(),
                argv=tuple(argv) or None,
            )
            manifest.write(staging)
            path = store.publish(staging, reservation)
    except BaseException:
        if held is not None:
            held.release(None)
        raise
    warnings.extend((*planned.editables.warnings, *layout.warnings))
    return Snapshot(snapshot_id, path, manifest, held, layout.python_path, tuple(warnings))


def _link_base(store: SnapshotStore, warnings: list[str]) -> LinkBase | None:
    """The newest snapshot to link against, or None (copy everything) when there is none or
    its manifest cannot be read."""
    from poetry_snapshot.snapshot.copier import LinkBase

    previous = store.latest()
    if previous is None:
        return None
    try:
        created = read_header(previous.path)["created"]
        created_at = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        files = read_files(previous.path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        warnings.append(
            f"Not linking against snapshot {previous.id}: its manifest cannot be read"
            f" ({first_line(e)}); copying every file instead."
        )
        return None
    return LinkBase(
        root=previous.path,
        files=files,
        created_ns=int(created_at.timestamp() * 1_000_000_000),
    )


def run(poetry: Poetry, snapshot: Snapshot, planned: SnapshotPlan, argv: Sequence[str]) -> Outcome:
    """Run `argv` from the snapshot; its run record says when it started and how it ended.

    The run writes only its own record, in its own snapshot: through a descriptor of the
    snapshot's metadata directory opened at the start, while the snapshot is held (nothing
    replaces a held snapshot). The hold ends with the run.
    """
    from poetry_snapshot.snapshot.run_record import RunRecord
    from poetry_snapshot.snapshot.runner import CommandNotRunnable
    from poetry_snapshot.snapshot.runner import command_environment
    from poetry_snapshot.snapshot.runner import run_command

    manifest = snapshot.manifest
    relative_cwd = manifest.project.relative_cwd
    workdir = snapshot.path / relative_cwd
    environ = command_environment(
        planned.env,
        os.environ,
        python_paths=[snapshot.path / entry for entry in snapshot.python_path],
        variables={
            "POETRY_SNAPSHOT_ID": snapshot.id,
            "POETRY_SNAPSHOT_DIR": str(snapshot.path),
            "POETRY_SNAPSHOT_SOURCE": manifest.project.source_dir,
        },
    )
    metadata = os.open(snapshot.path / METADATA_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        record = RunRecord.start(tuple(argv), relative_cwd)
        record.write_at(metadata)
        try:
            outcome = run_command(argv, workdir, environ)
        except CommandNotRunnable as e:
            record.ended(e.exit_code, None).write_at(metadata)
            raise
        record.ended(outcome.exit_code, outcome.signal).write_at(metadata)
        return outcome
    finally:
        os.close(metadata)
        if snapshot.hold is not None:
            snapshot.hold.release(snapshot.path / METADATA_DIR)


def package_roots(poetry: Poetry) -> list[str]:
    """Directories (relative to the project) that hold the project's own imports.

    Poetry-core's Module resolves `packages` (or finds the package in `.` or `src/`) exactly as
    the builder that made the editable install did. The project's `.pth` names the same
    directories when it is installed; these serve when it is not (package-mode = false,
    --no-root).
    """
    if not poetry.is_package_mode:
        return ["."]
    from poetry.core.masonry.utils.module import Module

    root = poetry.pyproject_path.parent
    package = poetry.package
    try:
        module = Module(package.name, str(root), packages=package.packages, includes=())
    except Exception:  # no importable package: fall back to the usual roots
        return ["src", "."] if (root / "src").is_dir() else ["."]
    roots: list[str] = []
    for include in module.includes:
        relative = os.path.relpath(include.base, root)
        if relative not in roots:
            roots.append(relative)
    return roots or ["."]


def _manifest(
    poetry: Poetry,
    planned: SnapshotPlan,
    snapshot_id: str,
    created: datetime,
    relative_cwd: str,
    result: CopyResult,
    *,
    linked_from: str | None,
    git: GitInfo | None,
    interpreter: Interpreter,
    argv: tuple[str, ...] | None,
) -> Manifest:
    from poetry.__version__ import __version__ as poetry_version
    from poetry.core import __version__ as core_version

    request = planned.request
    selection = planned.selection
    project_dir = planned.project_dir
    locker = poetry.locker
    content_hash = locker.lock_data.get("metadata", {}).get("content-hash")
    return Manifest(
        id=snapshot_id,
        created=created,
        snapshot_finished=now(),
        user=_user(),
        host=socket.gethostname(),
        project=ProjectInfo(
            name=poetry.package.pretty_name,
            version=poetry.package.pretty_version,
            source_dir=str(project_dir),
            relative_cwd=relative_cwd,
        ),
        tools={
            "poetry": poetry_version,
            "poetry-core": core_version,
            "poetry-snapshot": __version__,
        },
        interpreter=interpreter,
        lock=LockInfo(
            lock_sha256=sha256_file(locker.lock),
            pyproject_sha256=sha256_file(poetry.pyproject_path),
            content_hash=content_hash,
        ),
        groups=tuple(sorted(request.check.scope.groups)),
        extras=tuple(sorted(request.check.scope.extras)),
        with_root=request.check.scope.with_root,
        verification=planned.verification,
        packages=tuple(_installed(p) for p in sorted(planned.installed, key=lambda p: p.name)),
        git=git,
        environment=allowed_environment(os.environ),
        copy=CopySummary(
            selection=selection.source,
            files=len(result.files),
            bytes=sum(f.size for f in result.files),
            bytes_copied=result.bytes_copied,
            bytes_linked=result.bytes_linked,
            files_linked=result.files_linked,
            linked_from=linked_from,
            skipped=tuple((s.path, s.reason) for s in selection.skipped),
            warnings=selection.warnings,
        ),
        tree_sha256=tree_digest(result.files),
        files=result.files,
        argv=argv,
        editables=planned.editables.installs,
    )


def _installed(package: Package) -> InstalledPackage:
    return InstalledPackage(
        name=package.pretty_name,
        version=package.pretty_version,
        source_type=package.source_type,
        source_url=package.source_url,
        source_reference=package.source_resolved_reference or package.source_reference,
        editable=package.develop,
    )


def _relative_cwd(cwd: Path, project_dir: Path) -> str:
    try:
        relative = cwd.resolve().relative_to(project_dir.resolve())
    except ValueError:
        return "."  # standing outside the project (poetry -P elsewhere): run from its root
    return relative.as_posix() or "."


def _is_within(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid still identifies the account
        return str(os.getuid())
