"""One exception type per user-facing failure; each is caught once, in the command."""

from __future__ import annotations


class SnapshotError(Exception):
    """A failure the user can fix: printed as one line with the fix, never as a traceback."""

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} {self.fix}" if self.fix else self.message


class UsageError(SnapshotError):
    """Options that contradict each other or name things that do not exist."""


class ConfigurationError(SnapshotError):
    """pyproject.toml or poetry.lock is missing, unreadable or invalid."""


class EnvironmentInspectionError(SnapshotError):
    """The project's environment exists but cannot be inspected (broken interpreter...)."""


class CopyError(SnapshotError):
    """A file could not be copied into the snapshot: full disk, permissions, a file that vanished."""


class StoreError(SnapshotError):
    """The snapshot base directory cannot be created, written or used."""


class SnapshotExistsError(UsageError):
    """A snapshot id that is already taken, by a published snapshot or by a run in progress."""
