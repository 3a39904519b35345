"""The options `poetry install` uses to select groups, extras and the root, shared by commands."""

from __future__ import annotations

import atexit
import gc
from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.formatters.formatter import Formatter
from cleo.helpers import option
from packaging.utils import canonicalize_name
from poetry.console.commands.group_command import GroupCommand
from poetry.console.exceptions import GroupNotFoundError

from poetry_snapshot.check.lock import InstallScope
from poetry_snapshot.check.lock import validate_extras
from poetry_snapshot.errors import ConfigurationError
from poetry_snapshot.errors import SnapshotError
from poetry_snapshot.errors import UsageError

if TYPE_CHECKING:
    from cleo.io.inputs.option import Option
    from poetry.poetry import Poetry


class InstallOptionsCommand(GroupCommand):
    """A command that reads `--with/--without/--only/--all-groups/-E/--all-extras/--no-root`.

    Group handling is Poetry's own (GroupCommand.activated_groups), so defaults and
    validation are those of `poetry install`. Subclasses implement `handle_command()`; any
    SnapshotError it raises is printed as one line with its fix.
    """

    install_options: ClassVar[list[Option]] = [
        *GroupCommand._group_dependency_options(),
        option("all-groups", None, "Select dependencies from all groups."),
        option("extras", "E", "Extra sets of dependencies to select.", flag=False, multiple=True),
        option("all-extras", None, "Select all extra dependencies."),
        option("no-root", None, "The project itself is not expected to be installed."),
    ]

    def handle(self) -> int:
        # Poetry's heap (grammars, schemas, the parsed lock) is large, and the interpreter's
        # shutdown walks all of it in full garbage collections: 0.1-0.2 s of every command here.
        # Frozen objects are skipped there; refcounted ones are still freed, atexit hooks and
        # weakref finalizers still run. (`poetry run` never pays this: it execs the command.)
        atexit.unregister(gc.freeze)
        atexit.register(gc.freeze)
        # Likewise while the command runs: what Poetry built before it is frozen, so the
        # collections its own allocations trigger (20,000 file records) never walk it.
        gc.freeze()
        try:
            return self.handle_command()
        except KeyboardInterrupt:
            # Ctrl-C before the command started (verifying, copying): staging is already
            # cleaned up by then; exit as an interrupted shell command does.
            self.line_error("<error>Interrupted.</error>")
            return 130
        except SnapshotError as e:
            message = f"<error>{Formatter.escape(e.message)}</error>"
            if e.fix:
                message += f" {Formatter.escape(e.fix)}"
            self.line_error(message)
            return e.exit_code

    def handle_command(self) -> int:
        raise NotImplementedError

    def load_poetry(self) -> Poetry:
        """The project's Poetry object; a missing or invalid pyproject.toml is one clear error."""
        try:
            return self.poetry
        except Exception as e:  # Factory raises RuntimeError, PyProjectError, TOML errors...
            text = str(e).strip() or type(e).__name__
            message = " ".join(line.strip() for line in text.splitlines()[:4])
            raise ConfigurationError(
                message, "Run this inside a Poetry project, or pass --project/-P."
            ) from None

    def install_scope(self) -> InstallScope:
        """The groups, extras and root `poetry install` with the same options would install."""
        if self.option("extras") and self.option("all-extras"):
            raise UsageError("--extras and --all-extras cannot be used together.", "Pick one.")
        if self.option("all-groups") and any(
            self.option(key) for key in ("with", "without", "only")
        ):
            raise UsageError(
                "--with, --without and --only cannot be used with --all-groups.", "Pick one."
            )
        poetry = self.load_poetry()
        try:
            groups = self.activated_groups
        except GroupNotFoundError as e:
            raise UsageError(
                Formatter().remove_format(str(e)), "Check the group names in pyproject.toml."
            ) from None
        if self.option("all-extras"):
            extras = set(poetry.package.extras)
        else:
            extras = {
                canonicalize_name(extra)
                for value in self.option("extras")
                for extra in value.replace(",", " ").split()
            }
        # Checked here, once, where the options are read: the cores take a valid scope.
        validate_extras(poetry, extras)
        return InstallScope(
            groups=frozenset(groups),
            extras=frozenset(extras),
            with_root=not self.option("no-root"),
        )
