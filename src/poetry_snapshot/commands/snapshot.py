"""`poetry snapshot`: verify the env, snapshot the project, run a command from the snapshot."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.helpers import argument
from cleo.helpers import option
from cleo.io.outputs.output import Type
from cleo.io.outputs.output import Verbosity

from poetry_snapshot.commands.install_options import InstallOptionsCommand
from poetry_snapshot.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from cleo.ui.progress_bar import ProgressBar

    from poetry_snapshot.check.drift import DriftReport
    from poetry_snapshot.check.verdict import CheckRequest


class SnapshotCommand(InstallOptionsCommand):
    name = "snapshot"
    description = (
        "Verify the environment against poetry.lock, snapshot the project and run a command from"
        " the snapshot."
    )

    arguments: ClassVar = [
        argument(
            "cmd",
            "The command to run from the snapshot, after --. Without one, print the path.",
            optional=True,
            multiple=True,
        )
    ]
    options: ClassVar = [
        option("check", None, "Only verify the environment against poetry.lock; exit 1 on drift."),
        option(
            "deep",
            None,
            "Also hash every installed file, and prove each build is a file poetry.lock allows.",
        ),
        option(
            "fetch",
            None,
            "With --deep: download the locked files not in Poetry's cache (checked against the"
            " lock).",
        ),
        option("allow-extra", None, "Tolerate installed packages that the lock does not select."),
        option("format", None, "Output format of --check: text or json.", flag=False),
        option("allow-drift", None, "Snapshot even if the environment drifted; record the drift."),
        option(
            "no-verify", None, "Do not verify the environment; record that it was not verified."
        ),
        option("dry-run", None, "Show what would be copied; write nothing."),
        option("base-dir", None, "Where snapshots are stored.", flag=False),
        option("id", None, "The snapshot's id (letters, digits, '._-').", flag=False),
        option("replace", None, "Replace an existing snapshot with this --id."),
        option(
            "include",
            None,
            "Copy paths git or the defaults ignore (gitignore syntax).",
            flag=False,
            multiple=True,
        ),
        option(
            "exclude",
            None,
            "Do not copy these paths (gitignore syntax).",
            flag=False,
            multiple=True,
        ),
        option("link", None, "Hard-link files unchanged since the previous snapshot (read-only)."),
        option("no-link", None, "Copy every file even if [tool.poetry-snapshot] sets link = true."),
        *InstallOptionsCommand.install_options,
    ]

    help = """\
<info>poetry snapshot -- python train.py</info> verifies that the environment matches
<comment>poetry.lock</comment>, copies the project (git's view of it) to a new snapshot
directory, records everything needed to reproduce the run in
<comment>.snapshot/manifest.json</comment>, runs the command there inside the project's
environment, and exits with the command's exit code.

<info>poetry snapshot</info> without a command creates the snapshot and prints only its path:
  <comment>sbatch --chdir "$(poetry snapshot)" job.sh</comment>

<info>poetry snapshot --check</info> only verifies: exit 0 when the environment matches the lock,
1 on drift, 2 on usage or configuration errors. It changes nothing and touches no network
(<comment>--deep --fetch</comment> downloads locked files into Poetry's cache).

Put the command after <comment>--</comment> so that its options are not read as Poetry's.
"""

    def handle_command(self) -> int:
        if self.option("check"):
            return self._check()
        return self._snapshot()

    def _check(self) -> int:
        from poetry_snapshot.check import rendering
        from poetry_snapshot.check.verdict import verify

        fmt = self.option("format") or "text"
        if fmt not in ("text", "json"):
            raise UsageError(f"Unknown --format {fmt!r}.", "Use --format text or --format json.")
        if self.argument("cmd"):
            raise UsageError("--check takes no command.", "Drop the command after --, or --check.")
        self._reject_with_check()
        report = verify(self.load_poetry(), self._check_request())

        annotations = (
            rendering.github_annotations(report)
            if os.environ.get("GITHUB_ACTIONS") == "true"
            else []
        )
        if fmt == "json":
            # Raw: JSON must reach stdout byte for byte, even with -q.
            self.io.output.write_line(rendering.drift_json(report), Verbosity.QUIET, Type.RAW)
            for line in annotations:
                self.io.error_output.write_line(line, Verbosity.QUIET, Type.RAW)
        else:
            for line in rendering.drift_table(report, self._verbosity()):
                self.line(line)
            for line in annotations:
                self.io.output.write_line(line, Verbosity.QUIET, Type.RAW)
        return 0 if report.ok else 1

    def _snapshot(self) -> int:
        from poetry_snapshot.config import SnapshotConfig
        from poetry_snapshot.snapshot import summary
        from poetry_snapshot.snapshot import take
        from poetry_snapshot.snapshot.selection import SelectionRules
        from poetry_snapshot.snapshot.store import resolve_base_dir
        from poetry_snapshot.snapshot.store import validate_snapshot_id

        if self.option("format"):
            raise UsageError("--format applies to --check only.", "Add --check, or drop --format.")
        if self.option("allow-drift") and self.option("no-verify"):
            raise UsageError("--allow-drift and --no-verify cannot be used together.", "Pick one.")
        if self.option("link") and self.option("no-link"):
            raise UsageError("--link and --no-link cannot be used together.", "Pick one.")
        if self.option("replace") and self.option("id") is None:
            raise UsageError("--replace needs --id.", "Name the snapshot to replace with --id.")
        argv = tuple(self.argument("cmd") or ())
        poetry = self.load_poetry()
        config = SnapshotConfig.from_pyproject(poetry.pyproject.data)
        snapshot_id = self.option("id")
        mode = (
            take.SKIP
            if self.option("no-verify")
            else take.ALLOW_DRIFT
            if self.option("allow-drift")
            else take.VERIFY
        )
        request = take.SnapshotRequest(
            check=self._check_request(),
            verify_mode=mode,
            rules=SelectionRules(
                include=(*config.include, *self.option("include")),
                exclude=(*config.exclude, *self.option("exclude")),
            ),
            base_dir=resolve_base_dir(
                self.option("base-dir"),
                config.base_dir,
                os.environ,
                Path(poetry.config.get("cache-dir")),
                poetry.package.name,
                project_dir=poetry.pyproject_path.parent,
            ),
            snapshot_id=None if snapshot_id is None else validate_snapshot_id(snapshot_id),
            replace=self.option("replace"),
            link=(config.link or self.option("link")) and not self.option("no-link"),
        )

        try:
            planned = take.plan(poetry, request)
        except take.DriftBlocksSnapshot as blocked:
            self._report_drift(blocked.report)
            raise
        report = planned.verification.report
        if report is not None and not report.ok:
            self._report_drift(report)
            self.line_error(
                "<warning>Snapshotting anyway (--allow-drift); the drift is recorded.</>"
            )
        selection = planned.selection
        self._warn(selection.warnings)
        if selection.too_big():
            for line in summary.selection_too_big(selection):
                self.line_error(line)
        if self.option("dry-run"):
            for line in summary.selection_summary(selection, request.base_dir):
                self.line(line)
            return 0

        progress = _CopyProgress(self)
        snap = take.take(poetry, planned, cwd=Path.cwd(), progress=progress.update, argv=argv)
        progress.finish()
        self._warn(snap.warnings)
        copy = snap.manifest.copy
        self.line_error(summary.snapshot_line(snap.id, snap.path, copy))
        if not argv:
            # Only the path on stdout: `sbatch --chdir "$(poetry snapshot)" job.sh`.
            self.io.output.write_line(str(snap.path), Verbosity.QUIET, Type.RAW)
            return 0
        outcome = take.run(poetry, snap, planned, argv)
        return outcome.exit_code

    def _check_request(self) -> CheckRequest:
        from poetry_snapshot.check.verdict import CheckRequest

        if self.option("fetch") and not self.option("deep"):
            raise UsageError("--fetch needs --deep.", "Add --deep, or drop --fetch.")
        return CheckRequest(
            scope=self.install_scope(),
            deep=self.option("deep"),
            allow_extra=self.option("allow-extra"),
            fetch=self.option("fetch"),
        )

    def _reject_with_check(self) -> None:
        for name in ("allow-drift", "no-verify", "dry-run", "replace", "link", "no-link"):
            if self.option(name):
                raise UsageError(f"--{name} does not apply to --check.", f"Drop --{name}.")
        for name in ("base-dir", "id"):
            if self.option(name) is not None:
                raise UsageError(f"--{name} does not apply to --check.", f"Drop --{name}.")
        if self.option("include") or self.option("exclude"):
            raise UsageError("--include/--exclude do not apply to --check.", "Drop them.")

    def _report_drift(self, report: DriftReport) -> None:
        from poetry_snapshot.check import rendering

        for line in rendering.drift_table(report, self._verbosity()):
            self.line_error(line)

    def _verbosity(self) -> int:
        return 2 if self.io.is_very_verbose() else 1 if self.io.is_verbose() else 0

    def _warn(self, warnings: Iterable[str]) -> None:
        from cleo.formatters.formatter import Formatter

        for warning in warnings:
            self.line_error(f"<warning>{Formatter.escape(warning)}</>")


class _CopyProgress:
    """A progress bar on stderr, shown only once a copy has taken more than a moment."""

    DELAY = 0.5

    def __init__(self, command: SnapshotCommand) -> None:
        self._command = command
        self._started = time.monotonic()
        self._bar: ProgressBar | None = None
        io = command.io
        self._enabled = io.error_output.is_decorated() and not io.output.is_quiet()

    def update(self, done: int, total: int) -> None:
        if not self._enabled:
            return
        if self._bar is None:
            if time.monotonic() - self._started < self.DELAY or total == 0:
                return
            self._bar = self._command.progress_bar(max=max(total // 1024, 1))
            self._bar.set_format(" Copying: %current%/%max% KiB [%bar%] %percent:3s%%")
            self._bar.start()
        self._bar.set_progress(done // 1024)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.finish()
            self._command.line_error("")
