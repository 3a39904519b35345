"""The ApplicationPlugin Poetry loads from the `poetry.application.plugin` entry point."""

from __future__ import annotations

from typing import TYPE_CHECKING

from poetry.plugins.application_plugin import ApplicationPlugin

from poetry_snapshot.commands.env_export import EnvExportCommand
from poetry_snapshot.commands.snapshot import SnapshotCommand

if TYPE_CHECKING:
    from poetry.console.commands.command import Command


class SnapshotPlugin(ApplicationPlugin):
    @property
    def commands(self) -> list[type[Command]]:
        return [SnapshotCommand, EnvExportCommand]
