"""Write a file so readers see the old content or the new, never a half-written one."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from contextlib import suppress
from typing import IO
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@contextmanager
def atomic_writer(
    path: Path, mode: int | None = 0o644, *, durable: bool = True
) -> Iterator[IO[bytes]]:
    """A binary file object whose content replaces `path` in one rename when the block ends.

    The temporary file lives beside `path` (same filesystem, so the rename is atomic), so a
    crashed process leaves either the old file or the new one. With `durable` the data and the
    rename are also fsync'ed, so a power cut does too. If the block raises, `path` is untouched
    and the temporary file is removed. `mode` None: what open() would create, the umask
    applied by the kernel.
    """
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with atomic_writer_at(fd, path.name, mode, durable=durable) as stream:
            yield stream
    finally:
        os.close(fd)


@contextmanager
def atomic_writer_at(
    directory: int, name: str, mode: int | None = 0o644, *, durable: bool = True
) -> Iterator[IO[bytes]]:
    """atomic_writer() for the file `name` in the directory open as `directory`: the write
    lands in that directory even if its path now names another one (a directory renamed
    or replaced meanwhile)."""
    for _ in range(100):
        temporary = f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            # 0600 until complete; fchmod then sets the final mode exactly, whatever the umask.
            fd = os.open(
                temporary,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                0o666 if mode is None else 0o600,
                dir_fd=directory,
            )
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 random names all taken
        raise FileExistsError(name)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            if mode is not None:
                os.fchmod(stream.fileno(), mode)
            if durable:
                os.fsync(stream.fileno())
        os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=directory)
        raise
    if durable:
        _fsync_directory(directory)


def sync_directory(directory: Path) -> None:
    """Make renames in `directory` durable on POSIX; a failed sync loses nothing the rename did
    not already publish (and some filesystems cannot open or fsync directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        _fsync_directory(fd)
    finally:
        os.close(fd)


def _fsync_directory(fd: int) -> None:
    with suppress(OSError):  # some filesystems cannot fsync a directory
        os.fsync(fd)


def process_umask() -> int | None:
    """The process umask, read without changing it, or None where the OS does not tell.

    os.umask() can only read it by setting it, and between the two calls every thread that
    creates a file gets the temporary mask: /proc/self/status (Linux) tells it without a race.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


def write_atomic(path: Path, data: bytes, mode: int | None = 0o644) -> None:
    with atomic_writer(path, mode) as stream:
        stream.write(data)
