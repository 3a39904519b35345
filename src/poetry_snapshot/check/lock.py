"""What the lock says this environment must hold, decided the way `poetry sync` decides it.

Nothing here re-implements Poetry's resolution. The expected set comes from Poetry's Locker and
Poetry's own `Transaction.calculate_operations(synchronize=True)`, fed exactly as
`poetry.installation.installer.Installer._do_install` feeds it for `poetry sync`: the locked
packages with their groups and markers, the env's marker environment, the selected groups and
extras. The result is the list of operations `poetry sync` would run; an empty list (apart
from skipped operations) means the environment holds exactly what the lock says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cleo.io.null_io import NullIO

from poetry_snapshot.errors import ConfigurationError
from poetry_snapshot.errors import UsageError
from poetry_snapshot.errors import first_line

if TYPE_CHECKING:
    from collections.abc import Collection

    from packaging.utils import NormalizedName
    from poetry.core.packages.package import Package
    from poetry.installation.operations.operation import Operation
    from poetry.packages.locker import Locker
    from poetry.poetry import Poetry
    from poetry.puzzle.transaction import Transaction
    from poetry.repositories.installed_repository import InstalledRepository
    from poetry.utils.env import Env


class LockUnsolvable(ConfigurationError):
    """Re-resolving against the locked packages failed: the lock lacks what pyproject needs."""


@dataclass(frozen=True)
class InstallScope:
    """Which part of the lock an environment is meant to hold, as `poetry install`'s group,
    extras and root options choose it (the install scope; the *file selection* is which
    project files a snapshot copies)."""

    groups: frozenset[NormalizedName]
    extras: frozenset[NormalizedName]
    with_root: bool = True


@dataclass(frozen=True)
class LockPlan:
    """The operations `poetry sync` would run on this environment, and what was found in it."""

    operations: tuple[Operation, ...]
    installed: tuple[Package, ...]


def read_lock(poetry: Poetry) -> Locker:
    """The project's Locker, with its data parsed; a missing or unreadable lock is an error."""
    locker = poetry.locker
    if not locker.is_locked():
        if os.path.lexists(locker.lock):  # Locker.is_locked() follows symlinks
            raise ConfigurationError(
                f"Cannot read {locker.lock}: it is a symlink to nothing readable.",
                "Make it a readable file, or regenerate it with `poetry lock`.",
            )
        raise ConfigurationError(
            f"No lock file at {locker.lock}.", "Run `poetry lock` to create it."
        )
    try:
        locker.lock_data  # noqa: B018 - parsing is what we want; Poetry validates the version
    except RuntimeError as e:  # Poetry raises RuntimeError for invalid/incompatible locks
        raise ConfigurationError(
            f"Cannot read {locker.lock}: {first_line(e)}",
            "Fix the file or regenerate it with `poetry lock`.",
        ) from None
    except OSError as e:  # Locker opens the file itself: a directory, a loop, no permission
        raise ConfigurationError(
            f"Cannot read {locker.lock}: {e.strerror or first_line(e)}.",
            "Make it a readable file, or regenerate it with `poetry lock`.",
        ) from None
    return locker


def is_fresh(locker: Locker) -> bool:
    """Whether the lock still matches pyproject.toml (Poetry's content-hash check)."""
    try:
        return locker.is_fresh()
    except Exception as e:  # is_fresh re-reads the file with tomllib
        raise ConfigurationError(
            f"Cannot read {locker.lock}: {first_line(e)}",
            "Fix the file or regenerate it with `poetry lock`.",
        ) from None


def validate_extras(poetry: Poetry, extras: Collection[NormalizedName]) -> None:
    """Reject unknown extras the way `poetry install -E` does."""
    known = set(poetry.package.extras)
    unknown = sorted(set(extras) - known)
    if unknown:
        available = ", ".join(sorted(known)) or "none"
        raise UsageError(
            f"Extra(s) not specified in pyproject.toml: {', '.join(unknown)}.",
            f"Available extras: {available}.",
        )


def plan(poetry: Poetry, env: Env, scope: InstallScope) -> LockPlan:
    """The operations `poetry sync` would run on `env` for `scope`, computed offline."""
    from poetry.repositories.installed_repository import InstalledRepository

    locker = read_lock(poetry)
    installed = InstalledRepository.load(env)
    # `installer.re-resolve` decides, in Poetry itself, whether `poetry sync` trusts the lock's
    # groups and markers (2.1 locks) or re-solves against the locked packages only. Its default
    # changed between Poetry releases (True in 2.0), so ask the running Poetry, like the Installer.
    reresolve = poetry.config.get("installer.re-resolve", False)
    if reresolve or not locker.is_locked_groups_and_markers():
        transaction = _resolved_transaction(poetry, env, scope, installed)
    else:
        from poetry.puzzle.transaction import Transaction

        transaction = Transaction(
            # The "current" packages only produce uninstalls for names missing from the result;
            # the result is the whole lock, so Poetry's locked_repository() would add nothing and
            # costs a full parse of every dependency. Uninstalls come from synchronize=True.
            [],
            locker.locked_packages(),
            installed.packages,
            poetry.package,
            env.marker_env,
            set(scope.groups),
        )
    operations = transaction.calculate_operations(
        with_uninstalls=True,
        synchronize=True,
        extras=set(scope.extras),
        system_site_packages={p.name for p in installed.system_site_packages},
    )
    return LockPlan(operations=tuple(operations), installed=tuple(installed.packages))


def _resolved_transaction(
    poetry: Poetry, env: Env, scope: InstallScope, installed: InstalledRepository
) -> Transaction:
    # Installer._do_install's re-resolve branch: a solver whose only repository is the lock.
    # load_deferred(False) keeps it from fetching VCS/URL/path dependencies: offline.
    from poetry.puzzle.exceptions import SolverProblemError
    from poetry.puzzle.solver import Solver
    from poetry.repositories import RepositoryPool

    locked = poetry.locker.locked_repository().packages
    root = poetry.package.with_dependency_groups(list(scope.groups), only=True)
    solver = Solver(
        root,
        RepositoryPool.from_packages(locked, poetry.config),
        installed.packages,
        locked,
        NullIO(),
        active_root_extras=scope.extras,
    )
    solver.provider.load_deferred(False)
    try:
        with solver.use_environment(env):
            return solver.solve()
    except SolverProblemError as e:
        raise LockUnsolvable(
            f"poetry.lock cannot satisfy pyproject.toml: {first_line(e)}", "Run `poetry lock`."
        ) from None


def default_groups(poetry: Poetry) -> frozenset[NormalizedName]:
    """The groups `poetry install` selects without options (GroupCommand.non_optional_groups)."""
    from packaging.utils import canonicalize_name

    return frozenset(
        canonicalize_name(group.name)
        for group in poetry.package._dependency_groups.values()
        if not group.is_optional()
    )


def install_flags(
    scope: InstallScope,
    default_groups: Collection[NormalizedName],
    all_extras: Collection[NormalizedName],
) -> str:
    """The shortest `poetry sync` options that select the same groups, extras and root."""
    flags: list[str] = []
    groups, defaults = set(scope.groups), set(default_groups)
    added, removed = sorted(groups - defaults), sorted(defaults - groups)
    if (added and removed) or not groups:
        flags.append(f"--only {','.join(sorted(groups))}" if groups else "--only-root")
    elif added:
        flags.append(f"--with {','.join(added)}")
    elif removed:
        flags.append(f"--without {','.join(removed)}")
    if scope.extras and set(scope.extras) == set(all_extras):
        flags.append("--all-extras")
    else:
        flags.extend(f"-E {extra}" for extra in sorted(scope.extras))
    if not scope.with_root and groups:
        flags.append("--no-root")
    return "".join(f" {flag}" for flag in flags)
