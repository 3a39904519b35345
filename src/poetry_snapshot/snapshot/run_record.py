"""Run records: one file per run of a command in a snapshot, beside the manifest.

The manifest describes the snapshot and is written once, before publication; it is never
rewritten. Each run of a command in the snapshot records itself in a file of its own,
`.snapshot/runs/<run id>.json`, written atomically when the run starts and again when it
ends. Runs never write the same file, so any number of them (a job array's tasks) can run in
one snapshot at once, and a run that dies leaves its start on record without an end.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime
from datetime import timezone
from typing import TYPE_CHECKING
from typing import Any

from poetry_snapshot.atomic import atomic_writer_at
from poetry_snapshot.snapshot.layout import RUNS_DIR

if TYPE_CHECKING:
    from pathlib import Path

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RunRecord:
    id: str
    argv: tuple[str, ...]
    cwd: str  # relative to the snapshot's root
    host: str
    pid: int  # of the process that ran the command and waited for it
    started: datetime
    finished: datetime | None = None
    exit_code: int | None = None  # what the run exited with (128+N for signal N)
    signal: int | None = None  # the signal that ended the command, if one did

    @classmethod
    def start(cls, argv: tuple[str, ...], cwd: str) -> RunRecord:
        started = datetime.now(timezone.utc)
        run_id = f"local-{started:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        return cls(run_id, argv, cwd, socket.gethostname(), os.getpid(), started)

    def ended(self, exit_code: int, signal: int | None) -> RunRecord:
        return replace(
            self, finished=datetime.now(timezone.utc), exit_code=exit_code, signal=signal
        )

    def to_json(self) -> dict[str, Any]:
        duration = (self.finished - self.started).total_seconds() if self.finished else None
        return {
            "schema_version": SCHEMA_VERSION,
            "id": self.id,
            "argv": list(self.argv),
            "cwd": self.cwd,
            "host": self.host,
            "pid": self.pid,
            "started": _iso(self.started),
            "finished": _iso(self.finished) if self.finished else None,
            "duration_seconds": duration,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "signal_name": _signal_name(self.signal),
        }

    def write_at(self, metadata: int) -> None:
        """(Re)write this run's record in the metadata directory open as `metadata`."""
        runs = os.open(
            RUNS_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=metadata
        )
        try:
            data = (json.dumps(self.to_json(), indent=2) + "\n").encode("utf-8")
            with atomic_writer_at(runs, f"{self.id}.json", durable=False) as stream:
                stream.write(data)
        finally:
            os.close(runs)


def read_runs(metadata: Path) -> list[dict[str, Any]]:
    """The run records in a snapshot's metadata directory, oldest first; unreadable ones are
    skipped (a reader must never fail on another run's file)."""
    directory = metadata / RUNS_DIR
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except OSError:
        return []
    records = []
    for name in names:
        try:
            data = json.loads((directory / name).read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            records.append(data)
    records.sort(key=lambda r: (str(r.get("started")), str(r.get("id"))))
    return records


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _signal_name(number: int | None) -> str | None:
    if number is None:
        return None
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return None
