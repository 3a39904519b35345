"""The ApplicationPlugin Poetry loads from the `poetry.application.plugin` entry point."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from poetry.plugins.application_plugin import ApplicationPlugin

from poetry_snapshot.poetry_range import declared_range
from poetry_snapshot.poetry_range import incompatibility

if TYPE_CHECKING:
    from poetry.console.application import Application
    from poetry.console.commands.command import Command


class SnapshotPlugin(ApplicationPlugin):
    @property
    def commands(self) -> list[type[Command]]:
        # Imported here, after the version check: the commands import Poetry's internals, which
        # a Poetry outside the supported range may not have.
        from poetry_snapshot.commands.env_export import EnvExportCommand
        from poetry_snapshot.commands.snapshot import SnapshotCommand

        return [SnapshotCommand, EnvExportCommand]

    def activate(self, application: Application) -> None:
        self.activate_in(application, _running_poetry_version())

    def activate_in(self, application: Application, poetry_version: str) -> None:
        """Register the commands, unless `poetry_version` is outside the range the installed
        metadata declares: then one line on stderr says what to do, and no command is
        registered, so `poetry snapshot` does not exist and every other command still works."""
        problem = incompatibility(poetry_version, declared_range())
        if problem is None:
            super().activate(application)
            return
        # Poetry's Application keeps the IO it made for this run (create_io, before plugins are
        # loaded); activate() is given only the application.
        io = getattr(application, "_io", None)
        if io is not None and hasattr(io, "write_error_line"):
            from cleo.formatters.formatter import Formatter

            io.write_error_line(f"<error>{Formatter.escape(problem)}</error>")
        else:
            print(problem, file=sys.stderr)


def _running_poetry_version() -> str:
    from poetry.__version__ import __version__

    return str(__version__)
