"""Write a file so readers see the old content or the new, never a half-written one."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from contextlib import suppress
from typing import IO
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@contextmanager
def atomic_writer(path: Path, mode: int = 0o644, *, durable: bool = True) -> Iterator[IO[bytes]]:
    """A binary file object whose content replaces `path` in one rename when the block ends.

    The temporary file lives beside `path` (same filesystem, so the rename is atomic), so a
    crashed process leaves either the old file or the new one. With `durable` the data and the
    rename are also fsync'ed, so a power cut does too. If the block raises, `path` is untouched
    and the temporary file is removed. Every file this plugin generates (manifests, exports)
    is written through here.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            if durable:
                os.fsync(stream.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; a failed sync loses nothing the rename did not
    # already publish (and some filesystems cannot open directories).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    with atomic_writer(path, mode) as stream:
        stream.write(data)
