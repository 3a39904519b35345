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


class SelectionError(SnapshotError):
    """The project's files cannot be listed: an unreadable directory, a git that fails..."""


class NoEnvironmentError(SnapshotError):
    """A command needs the project's environment (e.g. to pin its Python) and there is none."""


class CondaMetaError(EnvironmentInspectionError):
    """A conda prefix's `conda-meta/` records cannot be read or contradict the interpreter."""


class UnhashableRequirementsError(SnapshotError):
    """Hashes were asked for, but some selected packages have none pip could check."""


class ExportUnsupportedError(SnapshotError):
    """The export format needs a newer Poetry, poetry-plugin-export or lock file."""


class IndexUnavailableError(SnapshotError):
    """An export needs data from a package index that could not be reached."""


class OutputFileError(SnapshotError):
    """A generated file cannot be read (for --check) or written."""


class CopyError(SnapshotError):
    """A file cannot be copied into the snapshot: full disk, permissions, a vanished file."""


class StoreError(SnapshotError):
    """The snapshot base directory cannot be created, written or used."""


class SnapshotExistsError(UsageError):
    """A snapshot id that is already taken, by a published snapshot or by a run in progress."""


class SnapshotInUseError(UsageError):
    """A snapshot that a run in progress holds cannot be replaced or deleted."""


def quoted(name: str) -> str:
    """A file name or id fit for a one-line message: in quotes, with bytes that are not UTF-8
    (surrogate-escaped by os.fsdecode) as \\xNN and control characters escaped."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in text) + "'"


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, cleo tags removed: the part a one-line error
    can quote from Poetry, dulwich or the OS."""
    from cleo.formatters.formatter import Formatter

    text = Formatter().remove_format(str(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__
