"""`poetry env-export`: environment.yml, requirements.txt, pylock.toml or the JSON manifest."""

from __future__ import annotations

import re
from datetime import datetime
from datetime import timezone
from pathlib import Path
from typing import ClassVar

from cleo.formatters.formatter import Formatter
from cleo.helpers import option
from cleo.io.outputs.output import Type
from cleo.io.outputs.output import Verbosity

from poetry_snapshot.commands.install_options import InstallOptionsCommand
from poetry_snapshot.config import SnapshotConfig
from poetry_snapshot.errors import UsageError
from poetry_snapshot.export.request import CONDA
from poetry_snapshot.export.request import FORMATS
from poetry_snapshot.export.request import JSON
from poetry_snapshot.export.request import PYLOCK_TOML
from poetry_snapshot.export.request import ExportRequest

# PEP 751: a lock file is named pylock.toml or pylock.<name>.toml.
_PYLOCK_NAME = re.compile(r"^pylock\.([^.]+\.)?toml$")


class EnvExportCommand(InstallOptionsCommand):
    name = "env-export"
    description = (
        "Export the locked environment: conda environment.yml, requirements.txt, pylock.toml"
        " or a JSON manifest of what is installed."
    )

    options: ClassVar = [
        option(
            "format",
            "f",
            f"Output format: {', '.join(FORMATS)}.",
            flag=False,
            default=CONDA,
        ),
        option("output", "o", "Write to this file (atomically) instead of stdout.", flag=False),
        option("check", None, "Write nothing; exit 1 with a diff when the -o file differs."),
        option(
            "pip-requirements",
            None,
            "conda: write the pip pins to this requirements file; environment.yml references it.",
            flag=False,
        ),
        option("without-hashes", None, "conda, requirements.txt: leave out package hashes."),
        option("without-urls", None, "conda, requirements.txt: leave out package index URLs."),
        option("timestamp", None, "Record the export time (the output is then never stable)."),
        *InstallOptionsCommand.install_options,
    ]

    help = """\
<info>poetry env-export</info> writes the project's locked environment for other tools, selecting
groups and extras exactly like <info>poetry install</info>:

  <comment>conda</comment>             environment.yml: python and conda packages (from the project
                    environment and <comment>[tool.poetry-snapshot.conda]</>), the lock under pip:
  <comment>requirements.txt</comment>  poetry-plugin-export's requirements.txt, with hashes
  <comment>pylock.toml</comment>       poetry-plugin-export's PEP 751 lock (needs the package index)
  <comment>json</comment>              what the environment really holds, and its
                    <info>poetry snapshot --check</info> verdict

Output is deterministic. With <info>--check -o FILE</info> nothing is written: exit 0 when FILE is
what would be written, 1 with a unified diff when it differs, 2 for usage or configuration errors.
"""

    def handle_command(self) -> int:
        # Imported here, not at module level: Poetry imports every plugin's commands at start-up.
        from poetry_snapshot.export import generated_file
        from poetry_snapshot.export.exporters import export
        from poetry_snapshot.export.generated_file import GeneratedFile

        request = self._request()
        if self.option("check") and request.output is None:
            raise UsageError("--check compares a file: it needs -o FILE.", "Add -o FILE.")
        if self.option("check") and request.timestamp is not None:
            raise UsageError(
                "--timestamp makes every export differ, so --check would always fail.",
                "Drop --timestamp.",
            )
        result = export(self.load_poetry(), request, self.io)
        for warning in result.warnings:
            self.line_error(f"<warning>Warning: {Formatter.escape(warning)}</warning>")

        # The sidecar first: environment.yml must never reference pins that are not written yet.
        files = list(result.extra_files)
        if request.output is not None:
            files.append(GeneratedFile(request.output, result.content))
        if self.option("check"):
            stale = [c for c in map(generated_file.compare, files) if not c.up_to_date]
            for comparison in stale:
                self._raw(comparison.diff)
            for comparison in stale:
                self.line_error(
                    f"<error>{Formatter.escape(str(comparison.path))}"
                    f" {'differs from' if comparison.exists else 'is missing; expected'}"
                    " the export.</error> Regenerate it: run the same command without --check."
                )
            if not stale:
                names = ", ".join(str(f.path) for f in files)
                self.line_error(f"{Formatter.escape(names)}: up to date.")
            return 1 if stale else 0

        for file in files:
            generated_file.write_atomically(file)
        if request.output is None:
            self._raw(result.content)
        return 0

    def _request(self) -> ExportRequest:
        fmt = self.option("format")
        if fmt not in FORMATS:
            raise UsageError(f"Unknown --format {fmt!r}.", f"Use one of: {', '.join(FORMATS)}.")
        output = Path(self.option("output")) if self.option("output") else None
        sidecar = self.option("pip-requirements")
        if sidecar and fmt != CONDA:
            raise UsageError("--pip-requirements applies to --format conda only.")
        for name in ("without-hashes", "without-urls"):
            if self.option(name) and fmt in (PYLOCK_TOML, JSON):
                raise UsageError(f"--{name} does not apply to --format {fmt}.")
        if fmt == PYLOCK_TOML and output is not None and not _PYLOCK_NAME.match(output.name):
            raise UsageError(
                "A pylock file must be named pylock.toml or pylock.<name>.toml,"
                f" not {output.name}.",
                "PEP 751 requires it; e.g. -o pylock.toml or -o pylock.dev.toml.",
            )
        if sidecar and output is not None and Path(sidecar).resolve() == output.resolve():
            raise UsageError("--pip-requirements and -o name the same file.")
        timestamp = None
        if self.option("timestamp"):
            timestamp = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        config = SnapshotConfig.from_pyproject(self.load_poetry().pyproject.data)
        return ExportRequest(
            format=fmt,
            scope=self.install_scope(),
            conda=config.conda,
            output=output,
            pip_requirements=Path(sidecar) if sidecar else None,
            with_hashes=not self.option("without-hashes"),
            with_urls=not self.option("without-urls"),
            timestamp=timestamp,
        )

    def _raw(self, text: str) -> None:
        # Raw and at quiet verbosity: the export (or diff) reaches stdout byte for byte.
        self.io.output.write(text, False, Verbosity.QUIET, Type.RAW)
