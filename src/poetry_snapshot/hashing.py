"""Reading files whole or in chunks, and hashing what was read: the one way `--deep`, the
copier, the manifests and the exports read bytes they hash.

Everything works on open descriptors, so a caller decides once how a file is opened (never
following a symlink, never blocking on a FIFO) and what an error means for it.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

CHUNK = 1 << 20  # what one read asks for: large enough that syscalls cost nothing


def read_whole(fd: int, size: int) -> bytes:
    """The whole file from the descriptor's position: one read when it still has `size` bytes
    (regular files read short only at EOF, so no second call is needed to find it), more
    when it grew meanwhile."""
    data = os.read(fd, size + 1)
    if len(data) == size:
        return data
    parts = [data]
    while data:
        data = os.read(fd, max(size, 1 << 16))
        parts.append(data)
    return b"".join(parts)


def read_into(fd: int, view: memoryview) -> int:
    """Fill `view` from the descriptor with one syscall; the number of bytes read (0 at EOF)."""
    return os.readv(fd, [view])


def hash_chunks(
    fd: int,
    hasher: hashlib._Hash,
    view: memoryview,
    each: Callable[[memoryview], object] | None = None,
) -> int:
    """Hash the descriptor from its position to EOF through `view`, handing each chunk to
    `each` as well (the copier writes it; nothing is read twice). The number of bytes read.

    OSError from reading propagates; `each` raises what it likes.
    """
    size = 0
    while True:
        n = read_into(fd, view)
        if not n:
            return size
        chunk = view[:n]
        hasher.update(chunk)
        if each is not None:
            each(chunk)
        size += n


def sha256_file(path: Path) -> str:
    """The hex sha256 of a (small or large) file, read in chunks."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        hasher = hashlib.sha256()
        hash_chunks(fd, hasher, memoryview(bytearray(CHUNK)))
        return hasher.hexdigest()
    finally:
        os.close(fd)
