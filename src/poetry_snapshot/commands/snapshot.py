"""`poetry snapshot`: verify the environment against the lock (`--check`)."""

from __future__ import annotations

import os

from typing import ClassVar

from cleo.helpers import argument
from cleo.helpers import option
from cleo.io.outputs.output import Type
from cleo.io.outputs.output import Verbosity

from poetry_snapshot.commands.install_options import InstallOptionsCommand
from poetry_snapshot.errors import UsageError


class SnapshotCommand(InstallOptionsCommand):
    name = "snapshot"
    description = "Verify the environment matches poetry.lock (--check)."

    arguments: ClassVar = [
        argument("cmd", "The command to run from the snapshot, after --.", optional=True, multiple=True)
    ]
    options: ClassVar = [
        option("check", None, "Only verify the environment against poetry.lock; exit 1 on drift."),
        option("deep", None, "Also hash every installed file against its RECORD."),
        option("allow-extra", None, "Tolerate installed packages that the lock does not select."),
        option("format", None, "Output format of --check: text or json.", flag=False, default="text"),
        *InstallOptionsCommand.install_options,
    ]

    help = """\
<info>poetry snapshot --check</info> proves that the project's environment holds exactly what
<comment>poetry.lock</comment> selects for the chosen groups and extras, as <info>poetry sync</info> would
install it. It changes nothing, creates no environment and touches no network.

Exit codes: 0 the environment matches, 1 drift, 2 usage or configuration error.
With <info>--deep</info>, every installed file is also checked against its RECORD hash.
"""

    def handle_command(self) -> int:
        from poetry_snapshot import rendering
        from poetry_snapshot.verification import CheckRequest
        from poetry_snapshot.verification import verify

        fmt = self.option("format")
        if fmt not in ("text", "json"):
            raise UsageError(f"Unknown --format {fmt!r}.", "Use --format text or --format json.")
        if not self.option("check"):
            raise UsageError(
                "poetry snapshot needs --check.", "Run `poetry snapshot --check`."
            )
        if self.argument("cmd"):
            raise UsageError("--check takes no command.", "Drop the command after --, or --check.")

        request = CheckRequest(
            selection=self.install_selection(),
            deep=self.option("deep"),
            allow_extra=self.option("allow-extra"),
        )
        report = verify(self.load_poetry(), request)

        annotations = (
            rendering.github_annotations(report) if os.environ.get("GITHUB_ACTIONS") == "true" else []
        )
        if fmt == "json":
            # Raw: JSON must reach stdout byte for byte, even with -q.
            self.io.output.write_line(rendering.drift_json(report), Verbosity.QUIET, Type.RAW)
            for line in annotations:
                self.io.error_output.write_line(line, Verbosity.QUIET, Type.RAW)
        else:
            verbosity = 2 if self.io.is_very_verbose() else 1 if self.io.is_verbose() else 0
            for line in rendering.drift_table(report, verbosity):
                self.line(line)
            for line in annotations:
                self.io.output.write_line(line, Verbosity.QUIET, Type.RAW)
        return 0 if report.ok else 1
