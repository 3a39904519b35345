"""Who holds what: a run's claim on a snapshot id, a run's hold on its snapshot, told apart
from the claims of dead processes by the kernel.

Every claim is a file with an flock on it. The kernel drops an flock when its process dies,
`kill -9` included, so "is this lock file locked?" answers "is its owner alive?" without pids,
heartbeats or clocks. On NFS, Linux emulates flock with POSIX byte-range locks that the server
arbitrates across clients; those need a file opened for writing before they can be exclusive,
so every lock file here is opened read-write, probes included.

A lock file also says who made it (pid, host, since) as one line of JSON, so that a refusal
can name the holder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from typing import TYPE_CHECKING
from typing import Any

from poetry_snapshot.errors import SnapshotInUseError
from poetry_snapshot.errors import quoted
from poetry_snapshot.snapshot.layout import HOLDERS
from poetry_snapshot.snapshot.layout import IN_USE

if TYPE_CHECKING:
    from pathlib import Path

# Inside a snapshot's metadata directory: runs hold IN_USE shared for as long as they run, and
# whoever replaces or deletes the snapshot holds it exclusively. Each run also keeps a holder
# file of its own, locked, under HOLDERS: the shared lock cannot say who holds it.

_OPEN = os.O_RDWR | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True)
class Holder:
    """A live process holding a claim."""

    pid: int | None
    host: str | None
    since: str | None

    def describe(self) -> str:
        pid = "an unknown pid" if self.pid is None else f"pid {self.pid}"
        host = "an unknown host" if not self.host else self.host
        return f"{pid} on {host}" + (f", since {self.since}" if self.since else "")


def identity(**extra: Any) -> dict[str, Any]:
    """What a lock file says of the process that made it."""
    since = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": since, **extra}


def create_locked(path: Path, content: dict[str, Any]) -> int:
    """Create `path` holding `content`, flock'ed exclusively; it appears under its name already
    locked (made as a temporary, locked, then renamed), so a probe never sees it unlocked while
    its owner lives. Returns the open descriptor: closing it (or dying) releases the claim."""
    temporary = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, _OPEN | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        rewrite(fd, content)
        os.rename(temporary, path)
    except BaseException:
        os.close(fd)
        _unlink(temporary)
        raise
    return fd


def rewrite(fd: int, content: dict[str, Any]) -> None:
    """Replace what an open lock file says."""
    data = (json.dumps(content, sort_keys=True) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def read(path: Path | int) -> dict[str, Any]:
    """What a lock file says; {} when it says nothing readable (its owner died mid-write)."""
    try:
        if isinstance(path, int):
            data = os.pread(path, 4096, 0)
        else:
            with open(path, "rb") as stream:
                data = stream.read(4096)
        value = json.loads(data)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def holder_of(path: Path | int) -> Holder:
    content = read(path)
    pid, host, since = content.get("pid"), content.get("host"), content.get("since")
    return Holder(
        pid if isinstance(pid, int) else None,
        host if isinstance(host, str) else None,
        since if isinstance(since, str) else None,
    )


def try_lock(path: Path, *, shared: bool = False) -> int | None:
    """The descriptor of `path` flock'ed without waiting, or None when a live process holds it.
    FileNotFoundError when there is no such file."""
    fd = os.open(path, _OPEN)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


def is_held(path: Path) -> bool:
    """Whether a live process holds `path`'s flock (False when the file is gone)."""
    try:
        fd = try_lock(path)
    except FileNotFoundError:
        return False
    if fd is None:
        return True
    os.close(fd)  # closing drops the lock this probe took
    return False


class SnapshotHold:
    """A run's hold on its snapshot: while it lasts, nothing replaces or deletes the snapshot.

    Taken in the staging directory before publication (the flocks stay on their inodes when
    the directory is renamed), so no moment exists in which a fresh snapshot is published but
    not yet held by the run it was made for.
    """

    def __init__(self, shared: int, holder: int, holder_path: Path) -> None:
        self._shared: int | None = shared
        self._holder = holder
        self._holder_name = holder_path.name

    def release(self, metadata: Path | None) -> None:
        """Drop the hold; `metadata` is the snapshot's metadata directory where it now lies
        (None when the snapshot is gone)."""
        if self._shared is None:
            return
        if metadata is not None:
            _unlink(metadata / HOLDERS / self._holder_name)
        os.close(self._holder)
        os.close(self._shared)
        self._shared = None


def hold(metadata: Path, name: str) -> SnapshotHold:
    """Hold the snapshot whose metadata directory is `metadata` on behalf of this process.
    SnapshotInUseError when someone is replacing or deleting it."""
    (metadata / HOLDERS).mkdir(mode=0o700, exist_ok=True)
    shared = _open_in_use(metadata)
    try:
        fcntl.flock(shared, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        os.close(shared)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise SnapshotInUseError(
                f"Snapshot {quoted(name)} is being replaced or deleted.",
                "Run again once that has ended.",
            ) from None
        raise
    holder_path = metadata / HOLDERS / f"{os.getpid()}.{secrets.token_hex(4)}.lock"
    try:
        holder = create_locked(holder_path, identity())
    except BaseException:
        os.close(shared)
        raise
    return SnapshotHold(shared, holder, holder_path)


def hold_exclusively(metadata: Path, name: str, action: str) -> int:
    """An exclusive hold on a published snapshot, for replacing or deleting it: the descriptor
    to close when done. SnapshotInUseError naming the holders while runs hold it."""
    fd = _open_in_use(metadata)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        holders = live_holders(metadata)
        who = "; ".join(h.describe() for h in holders) or "another process"
        raise SnapshotInUseError(
            f"Snapshot {quoted(name)} is in use by a run in progress ({who}): nothing was"
            f" {action}.",
            "Wait for the run to end, or choose another --id.",
        ) from None
    return fd


def live_holders(metadata: Path) -> list[Holder]:
    """The processes holding the snapshot, from their locked holder files."""
    directory = metadata / HOLDERS
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    found = []
    for name in names:
        if name.endswith(".lock") and is_held(directory / name):
            found.append(holder_of(directory / name))
    return found


def _open_in_use(metadata: Path) -> int:
    # Created on first use: snapshots made before holds existed get one too.
    return os.open(metadata / IN_USE, _OPEN | os.O_CREAT, 0o600)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
