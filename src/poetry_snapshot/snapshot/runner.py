"""Run a command from a snapshot, inside the project's environment, faithfully.

The environment is what `poetry run` gives (Poetry's `VirtualEnv.get_temp_environ`:
`VIRTUAL_ENV`, the env's `bin` first on PATH, no PYTHONHOME), plus the snapshot's counterparts
of the env's in-project import roots first on PYTHONPATH (see editables.py): editable installs
(the project, path dependencies) point at the live tree through `.pth` files and finders, and
PYTHONPATH entries come before all of them, so `import mypkg` and console scripts load the
snapshot's copy instead.

Signals SIGINT, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 sent to `poetry snapshot` are passed to
the command (Slurm sends SIGTERM, or a chosen signal, before pre-empting a job). A Ctrl-C typed
at a terminal already reaches the whole foreground process group, command included, so it is
not sent a second time. The command's exit code passes through; death by signal N is 128+N.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from poetry_snapshot.errors import SnapshotError
from poetry_snapshot.errors import quoted

if TYPE_CHECKING:
    from collections.abc import Mapping
    from collections.abc import Sequence
    from pathlib import Path

    from poetry.utils.env import Env

FORWARDED_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)


class CommandNotRunnable(SnapshotError):
    """The command could not be started: 127 when not found, 126 when not executable."""


@dataclass(frozen=True)
class Outcome:
    exit_code: int  # what `poetry snapshot` exits with
    signal: int | None  # the signal that ended the command


def command_environment(
    env: Env,
    environ: Mapping[str, str],
    python_paths: Sequence[Path],
    variables: Mapping[str, str],
) -> dict[str, str]:
    """The command's environment: `poetry run`'s, then `python_paths` first on PYTHONPATH,
    then `variables` (the POETRY_SNAPSHOT_* facts of the run) set over whatever was there."""
    result: dict[str, str]
    if env.is_venv() and hasattr(env, "get_temp_environ"):
        result = env.get_temp_environ(environ=dict(environ))
    else:  # virtualenvs.create = false: the system env, as `poetry run` uses it
        result = {k: v for k, v in environ.items() if k != "PYTHONHOME"}
    existing = [p for p in result.get("PYTHONPATH", "").split(os.pathsep) if p]
    result["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in python_paths), *existing])
    result.update(variables)
    return result


def run_command(argv: Sequence[str], cwd: Path, environ: Mapping[str, str]) -> Outcome:
    """Run `argv` to its end; returns how it ended. Raises CommandNotRunnable (126/127)."""
    if not cwd.is_dir():
        raise CommandNotRunnable(f"The working directory {quoted(str(cwd))} does not exist.", None)
    executable = _resolve(argv[0], environ.get("PATH", os.defpath), cwd)
    try:
        process = subprocess.Popen([executable, *argv[1:]], cwd=cwd, env=dict(environ))
    except PermissionError:
        raise _not_executable(argv[0]) from None
    except OSError as e:  # e.g. ENOEXEC: a file without a #! line that is not a binary
        raise CommandNotRunnable(f"Cannot run {quoted(argv[0])}: {e.strerror}.", None) from None

    def forward(signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and _foreground_of_a_terminal():
            return  # the terminal delivered it to the command already
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        returncode = process.wait()  # retried by Python after each handled signal (PEP 475)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if returncode < 0:
        return Outcome(128 - returncode, -returncode)
    return Outcome(returncode, None)


def _resolve(command: str, path: str, cwd: Path) -> str:
    if os.sep in command:
        candidate = command if os.path.isabs(command) else os.path.join(cwd, command)
        if not os.path.exists(candidate):
            raise _not_found(command)
        if not os.access(candidate, os.X_OK) or os.path.isdir(candidate):
            raise _not_executable(command)
        return candidate
    found = shutil.which(command, path=path)
    if found is not None:
        return found
    # On PATH but not executable is 126, like a shell; otherwise 127.
    for directory in path.split(os.pathsep):
        if directory and os.path.isfile(os.path.join(directory, command)):
            raise _not_executable(command)
    raise _not_found(command)


def _not_found(command: str) -> CommandNotRunnable:
    error = CommandNotRunnable(
        f"Command not found: {quoted(command)}.",
        "Check the name, or install it into the project's env.",
    )
    error.exit_code = 127
    return error


def _not_executable(command: str) -> CommandNotRunnable:
    error = CommandNotRunnable(
        f"Command is not executable: {quoted(command)}.",
        f"Run `chmod +x {shlex.quote(command)}` or call it via its interpreter.",
    )
    error.exit_code = 126
    return error


def _foreground_of_a_terminal() -> bool:
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            return os.tcgetpgrp(stream.fileno()) == os.getpgrp()
        except (OSError, AttributeError, ValueError):
            continue
    return False
