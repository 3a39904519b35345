"""The copy engine: a selection copied into a staging directory, every file hashed on the way.

Each source byte is read once. A regular file is read, hashed and written in the same pass;
where the filesystem can clone (FICLONE: btrfs, XFS, bcachefs, ZFS 2.2) or copy server-side
(copy_file_range on NFS 4.2 and SMB), a large file is cloned or copied by the filesystem and
the source is read once more, only to hash it. Small files are batched per pool task so the
pool's per-task cost stays off them; large ones get a task each and are scheduled first.

Every regular file's record holds two stat signatures, for two different rules:

- The source's (size, mtime, ctime, inode, device), taken when it was read: as in git's index,
  a source file whose signature still equals the previous snapshot's record is taken to hold
  the bytes that record's sha256 describes, without reading it, unless its mtime is too close
  to when the previous snapshot was taken to be trusted ("racy": a write in the same clock
  tick as that read leaves the signature as it was).
- The snapshot copy's own (inode, device, ctime), taken by fstat or lstat after the last change
  this snapshot made to that inode (write, fchmod, utime, link, chmod): the proof that the copy
  still holds the bytes its sha256 describes. ctime cannot be set back: any later write,
  chmod, utime, link or unlink of that inode gives it another ctime (and on Linux 6.13+, whose
  ctimes are fine-grained once read, even one in the same clock tick).

With `link_base` (`--link`), a file becomes a hard link to the previous snapshot's copy, made
read-only so that editing one snapshot cannot change another, only when both hold: the source
has the previous record's content (its digest equals the record's, by the first rule or by
reading and hashing the source), and the previous copy's current lstat (regular file, inode,
device, ctime, size, mtime, and a mode equal but for write bits) equals the record's copy
signature. Anything else is copied and hashed. Those are the only places a recorded digest is
reused without reading the bytes it describes, and each relies on exactly these two rules:

- the fast path of `_file`: the source is not read (first rule) and the previous copy is not
  read (second rule); the new record takes the previous digest.
- linking after hashing the source: the source's digest is fresh; the previous copy is not
  read (second rule).

Linking changes the shared inode's ctime, so the new snapshot records the ctime it left
(after its link and chmod), and the snapshot linked from no longer vouches for that inode: a
later `--link` from it, a concurrent one, or one after another snapshot sharing the inode was
deleted, copies such files (safe) instead of linking them. Successive `--link` snapshots each
link from the latest, whose records are current, so a chain keeps sharing the first copy.
What no stat can show: a change made in the microseconds between the check of the previous
copy and the link (the link then sets ctime again), and on kernels with coarse ctimes, one
within the same clock tick as this snapshot's last change to a file.

A sparse file (fewer allocated blocks than its size) is copied segment by segment with
SEEK_DATA/SEEK_HOLE, holes left unwritten, and hashed over its whole logical content, holes as
zeros hashed from a shared zero buffer: the digest is a dense copy's, the disk use the source's.
A clone (FICLONE) keeps holes by itself; copy_file_range is not used for sparse files, since a
server-side copy may fill them.

Directories are created by the calling thread, each before the first batch that needs it is
handed to the pool (which meanwhile copies earlier batches), and given their modes and mtimes
last, deepest first, because creating an entry changes its directory's mtime and a read-only
mode would stop the copy.

Why read-hash-write, and not the kernel's copy then a second read to hash, where there is no
clone or server-side copy, and why as many threads as cores on local disks: the README's
Performance section gives the measurements (benchmarks/bench_copy.py).
"""

from __future__ import annotations

import errno
import functools
import gc
import hashlib
import os
import stat
import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING
from typing import NamedTuple
from typing import Protocol

from poetry_snapshot.atomic import process_umask
from poetry_snapshot.errors import CopyError
from poetry_snapshot.errors import quoted
from poetry_snapshot.hashing import CHUNK
from poetry_snapshot.hashing import hash_chunks
from poetry_snapshot.hashing import read_into
from poetry_snapshot.hashing import read_whole

if TYPE_CHECKING:
    from collections.abc import Mapping
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Callable

# Below this size a file is read with one call and written from memory; at or above it, the
# file gets a pool task of its own and is cloned, copied server-side or streamed in chunks.
_LARGE = 1 << 20

# A batch of small files ends at whichever comes first; both keep a batch near a millisecond
# of work, far above the pool's per-task cost, and leave enough batches to balance threads.
_BATCH_FILES = 64
_BATCH_BYTES = 4 << 20
# mtimes this close to (or after) the previous snapshot's start cannot vouch for its content:
# a write in the same timestamp tick as that snapshot's read leaves the stat signature as it
# was. Two seconds also absorbs coarse filesystem clocks and NFS server/client clock skew.
RACY_NS = 2_000_000_000
_PROGRESS_INTERVAL = 0.1

_FICLONE = 0x40049409  # _IOW(0x94, 9, int), linux/fs.h
# Filesystems where copy_file_range copies without moving the data through this machine.
_SERVER_SIDE_COPY = frozenset({"nfs", "nfs4", "cifs", "smb3", "ceph"})
# Filesystems where each file operation waits on a server: more threads hide that latency.
# On local disks the copy is bound by the kernel's own work, and more threads than cores only
# contend (README, Performance).
_NETWORK_FS = _SERVER_SIDE_COPY | {"9p", "fuse.sshfs", "lustre", "gpfs", "beegfs", "glusterfs"}
# link() errors that mean "no hard link here", not "the copy cannot go on": another
# filesystem, the inode's link-count limit, or a filesystem without hard links.
_NO_LINK = frozenset(
    {errno.EXDEV, errno.EMLINK, errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}
)
# FICLONE errors that mean "cannot clone these two files": copy them some other way.
_NO_CLONE = frozenset(
    {
        errno.EOPNOTSUPP,
        errno.ENOTSUP,
        errno.ENOTTY,
        errno.EINVAL,
        errno.EXDEV,
        errno.ENOSYS,
        errno.EBADF,
        errno.ETXTBSY,
        errno.EPERM,
    }
)
# O_NOFOLLOW and O_NONBLOCK: a source replaced by a symlink or a FIFO since the selection
# fails or returns at once instead of being followed or blocking the copy.
_OPEN_SOURCE = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_CREATE = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_UTIME_SYMLINKS = os.utime in os.supports_follow_symlinks
_SEEK_HOLES = hasattr(os, "SEEK_DATA") and hasattr(os, "SEEK_HOLE")


class SourceEntry(Protocol):
    """What the copier reads of a `selection.SelectedEntry`."""

    @property
    def path(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def mode(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...
    @property
    def ctime_ns(self) -> int: ...
    @property
    def inode(self) -> int: ...
    @property
    def device(self) -> int: ...
    @property
    def link_target(self) -> str | None: ...


class SourceTree(Protocol):
    """What the copier reads of a `selection.Selection`: its root and its entries."""

    @property
    def root(self) -> Path: ...
    @property
    def entries(self) -> Sequence[SourceEntry]: ...


class CopiedFile(NamedTuple):
    """One file or symlink as the snapshot holds it; a NamedTuple so 100,000 stay small."""

    path: str  # relative, '/'-separated, os.fsdecode'd (as in the selection)
    kind: str  # "file" or "symlink"
    size: int
    mode: int  # the source's permission bits (stat.S_IMODE), even where a link is read-only
    mtime_ns: int
    sha256: bytes | None  # 32-byte digest of the content; None for symlinks
    link_target: str | None
    linked: bool  # hard-linked from the previous snapshot
    # The source file's stat signature when it was read; the next `--link` trusts the digest
    # of a file whose signature is still this one.
    ctime_ns: int
    inode: int
    device: int
    # The snapshot's copy as this snapshot left it (after its last write, utime, link or
    # chmod); the next `--link` links only a copy whose lstat still shows this. None for
    # symlinks, and in manifests written before these were recorded (never linked from).
    copy_ctime_ns: int | None
    copy_inode: int | None
    copy_device: int | None


@dataclass(frozen=True)
class LinkBase:
    """The previous snapshot of the same project, for `--link`."""

    root: Path
    files: Mapping[str, CopiedFile]  # as recorded in its manifest
    # When that snapshot was taken: a time from before its copy started. A later time would
    # let a file written just after that copy read it pass as unchanged.
    created_ns: int


@dataclass(frozen=True)
class CopyResult:
    files: tuple[CopiedFile, ...]  # in selection order
    bytes_copied: int
    bytes_linked: int
    files_linked: int


def copy_selection(
    selection: SourceTree,
    destination: Path,
    *,
    link_base: LinkBase | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CopyResult:
    """Copy every entry of `selection` into `destination`, an existing empty directory.

    Raises CopyError naming the file when one cannot be copied; `destination` is then left
    half-filled for the caller to delete. `progress(done_bytes, total_bytes)` is called from
    this thread, at most ten times a second, and once at the end.
    """
    entries = selection.entries
    copier = _Copier(selection.root, destination, link_base)
    results: list[CopiedFile | None] = [None] * len(entries)
    total = sum(e.size for e in entries if e.kind == "file")
    if workers is None:
        cpus = os.cpu_count() or 1
        remote = {_filesystem_type(copier.source), _filesystem_type(copier.destination)}
        workers = min(32, 4 * cpus) if remote & _NETWORK_FS else cpus
    # One record per file and no reference cycles: the cyclic GC would only walk the
    # selection, the previous manifest and Poetry's objects again and again (a tenth of the
    # CPU time of a --link copy of 20,000 files). Garbage made meanwhile waits until the end.
    collecting = gc.isenabled()
    gc.disable()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="snapshot-copy")
    try:
        # Each batch starts as soon as its directories exist: the pool links or copies while
        # this thread makes the next ones (mkdir is a fifth of a --link copy's time, measured).
        futures = []
        for batch in _batches(entries):
            if copier.stop.is_set():
                break  # a batch failed: _wait raises its error
            for i in batch:
                copier.make_parents(entries[i].path)
            futures.append(pool.submit(copier.copy_batch, entries, batch, results))
        _wait(futures, copier, total, progress)
    except BaseException:
        copier.stop.set()  # running batches end at their next file or chunk
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        if collecting:
            gc.enable()
    pool.shutdown(wait=True)
    copier.finish_directories()
    if progress is not None:
        progress(total, total)
    files = tuple(f for f in results if f is not None)
    assert len(files) == len(entries)
    linked = [f for f in files if f.linked]
    return CopyResult(
        files=files,
        bytes_copied=copier.bytes_copied,
        bytes_linked=sum(f.size for f in linked),
        files_linked=len(linked),
    )


def _batches(entries: Sequence[SourceEntry]) -> list[list[int]]:
    """Indexes into `entries`: each large file alone and first, small ones in runs."""
    large = [i for i, e in enumerate(entries) if e.kind == "file" and e.size >= _LARGE]
    large.sort(key=lambda i: -entries[i].size)  # longest first: the pool ends together
    batches = [[i] for i in large]
    batch: list[int] = []
    size = 0
    for i, entry in enumerate(entries):
        if entry.kind == "file" and entry.size >= _LARGE:
            continue
        batch.append(i)
        size += entry.size
        if len(batch) >= _BATCH_FILES or size >= _BATCH_BYTES:
            batches.append(batch)
            batch, size = [], 0
    if batch:
        batches.append(batch)
    return batches


def _wait(
    futures: list[Future[None]],
    copier: _Copier,
    total: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    pending: set[Future[None]] = set(futures)
    last = 0.0
    while pending:
        done, pending = wait(pending, timeout=_PROGRESS_INTERVAL, return_when=FIRST_EXCEPTION)
        for future in done:
            future.result()  # the first CopyError ends the copy
        now = time.monotonic()
        if progress is not None and pending and now - last >= _PROGRESS_INTERVAL:
            last = now
            progress(copier.done_bytes, total)


class _Stopped(Exception):
    """Another batch failed or the copy was interrupted: this one ends early."""


@dataclass(frozen=True)
class _Directory:
    path: str  # relative; "" is never listed (the destination belongs to the caller)
    mode: int
    atime_ns: int
    mtime_ns: int


class _Copier:
    """State shared by the pool's threads during one `copy_selection` call."""

    def __init__(self, source: Path, destination: Path, link_base: LinkBase | None) -> None:
        # Directory prefixes that paths are appended to: plain strings, because Path objects
        # would cost microseconds per file on the hot path.
        self.source = _prefix(source)
        self.destination = _prefix(destination)
        self.destination_device = os.stat(destination).st_dev
        self.link_base = link_base
        self.link_root = None if link_base is None else _prefix(link_base.root)
        # Files with an mtime before this have a trustworthy stat signature (see RACY_NS).
        self.trust_before = 0 if link_base is None else link_base.created_ns - RACY_NS
        self.stop = threading.Event()
        umask = process_umask()
        self.umask = 0o777 if umask is None else umask  # unknown: every file gets an fchmod
        # Written by any thread; a stale read only costs one more failed attempt.
        self.can_link = link_base is not None
        self.can_clone = sys.platform == "linux"
        self.server_side_copy = _filesystem_type(self.destination) in _SERVER_SIDE_COPY
        self._lock = threading.Lock()
        self._per_thread = threading.local()  # a read buffer, the last copy ctime
        self.done_bytes = 0
        self.bytes_copied = 0
        # Directories made so far; only the calling thread makes them.
        self._made: set[str] = set()
        self._directories: list[_Directory] = []

    # --- directories ---------------------------------------------------------------------

    def make_parents(self, path: str) -> None:
        """Create the directories above `path` not made yet, parents first, owner-writable
        until the copy ends."""
        parent = path.rpartition("/")[0]
        if not parent or parent in self._made:
            return
        self.make_parents(parent)
        try:
            st = os.lstat(self.source + parent)
        except OSError as e:
            raise _source_error(parent, e) from None
        if not stat.S_ISDIR(st.st_mode):
            raise CopyError(
                f"{quoted(parent)} in the project is no longer a directory.",
                "Something changed the project during the copy; run again when it is quiet.",
            )
        try:
            os.mkdir(self.destination + parent, 0o700)
        except OSError as e:
            raise _destination_error(parent, e) from None
        self._made.add(parent)
        self._directories.append(
            _Directory(parent, stat.S_IMODE(st.st_mode), st.st_atime_ns, st.st_mtime_ns)
        )

    def finish_directories(self) -> None:
        """Give directories their source's mode and times, deepest first."""
        self._directories.sort(key=attrgetter("path"))  # parents before their children
        for directory in reversed(self._directories):
            target = self.destination + directory.path
            try:
                if directory.mode != 0o700:
                    os.chmod(target, directory.mode)
                os.utime(target, ns=(directory.atime_ns, directory.mtime_ns))
            except OSError as e:
                raise _destination_error(directory.path, e) from None

    # --- entries -------------------------------------------------------------------------

    def copy_batch(
        self,
        entries: Sequence[SourceEntry],
        batch: Sequence[int],
        results: list[CopiedFile | None],
    ) -> None:
        meter = _Meter(self)
        copied = 0
        try:
            for i in batch:
                if self.stop.is_set():
                    raise _Stopped
                entry = entries[i]
                if entry.kind == "symlink":
                    results[i] = self._symlink(entry)
                    continue
                meter.budget = entry.size
                result = self._file(entry, meter)
                results[i] = result
                meter.done += meter.budget  # what the chunks did not report
                if not result.linked:
                    copied += result.size
        except _Stopped:
            return
        except BaseException:
            self.stop.set()  # the others stop now, not when the calling thread next wakes
            raise
        finally:
            self.advance(meter.done, copied)

    def advance(self, done: int, copied: int = 0) -> None:
        with self._lock:
            self.done_bytes += done
            self.bytes_copied += copied

    def _symlink(self, entry: SourceEntry) -> CopiedFile:
        target = entry.link_target
        try:
            if target is None:
                target = os.readlink(self.source + entry.path)
        except OSError as e:
            raise _source_error(entry.path, e) from None
        destination = self.destination + entry.path
        try:
            os.symlink(target, destination)
            if _UTIME_SYMLINKS:
                os.utime(destination, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
        except OSError as e:
            raise _destination_error(entry.path, e) from None
        return CopiedFile(
            entry.path, entry.kind, entry.size, entry.mode, entry.mtime_ns, None, target,
            False, entry.ctime_ns, entry.inode, entry.device, None, None, None,
        )  # fmt: skip

    def _copied(
        self,
        entry: SourceEntry,
        st: os.stat_result | None,
        digest: bytes | None,
        held: os.stat_result,
        previous: CopiedFile | None = None,
        *,
        size: int | None = None,
    ) -> CopiedFile:
        """The CopiedFile of a regular file: the source as the entry or (when given) fstat
        described it, its copy as `held` (the copy's last stat), linked when `previous` is.

        Where fstat agrees with the selection, the entry's int objects are reused, and so are
        a link's inode, the destination's device, and a copy ctime equal to the one this
        thread recorded last (files copied in one clock tick share it): at 100,000 files,
        fresh ones for the stat fields would cost ~20 MB on top of the selection.
        """
        local = self._per_thread
        copy_ctime = held.st_ctime_ns
        if copy_ctime == getattr(local, "copy_ctime", None):
            copy_ctime = local.copy_ctime
        else:
            local.copy_ctime = copy_ctime
        if previous is not None:
            copy_inode, copy_device = previous.copy_inode, previous.copy_device  # _link checked
        else:
            copy_inode = held.st_ino
            device = self.destination_device
            copy_device = device if held.st_dev == device else held.st_dev
        linked = previous is not None
        if st is None:
            return CopiedFile(
                entry.path, entry.kind, entry.size, entry.mode, entry.mtime_ns, digest, None,
                linked, entry.ctime_ns, entry.inode, entry.device,
                copy_ctime, copy_inode, copy_device,
            )  # fmt: skip
        new_size = st.st_size if size is None else size
        mode = stat.S_IMODE(st.st_mode)
        return CopiedFile(
            entry.path,
            entry.kind,
            entry.size if entry.size == new_size else new_size,
            entry.mode if entry.mode == mode else mode,
            entry.mtime_ns if entry.mtime_ns == st.st_mtime_ns else st.st_mtime_ns,
            digest,
            None,
            linked,
            entry.ctime_ns if entry.ctime_ns == st.st_ctime_ns else st.st_ctime_ns,
            entry.inode if entry.inode == st.st_ino else st.st_ino,
            entry.device if entry.device == st.st_dev else st.st_dev,
            copy_ctime,
            copy_inode,
            copy_device,
        )

    def _file(self, entry: SourceEntry, meter: _Meter) -> CopiedFile:
        previous = self._previous(entry)
        if (
            previous is not None
            and entry.mtime_ns < self.trust_before
            and previous.ctime_ns == entry.ctime_ns
            and previous.inode == entry.inode
            and previous.device == entry.device
        ):
            # The source is unchanged since the previous snapshot read it: its digest stands,
            # unread; _link links only a previous copy that provably still holds those bytes.
            held = self._link(entry.path, entry.mode, previous)
            if held is not None:
                return self._copied(entry, None, previous.sha256, held, previous)
        path = entry.path
        try:
            source = os.open(self.source + path, _OPEN_SOURCE)
        except OSError as e:
            raise _source_error(path, e) from None
        try:
            try:
                st = os.fstat(source)
            except OSError as e:
                raise _source_error(path, e) from None
            if not stat.S_ISREG(st.st_mode):
                raise CopyError(
                    f"{quoted(path)} in the project is no longer a regular file.",
                    "Something changed the project during the copy; run again when it is quiet.",
                )
            previous = self._previous(entry, st.st_size, st.st_mtime_ns)
            mode = stat.S_IMODE(st.st_mode)
            if st.st_size < _LARGE and not _is_sparse(st):
                data = _read_small(source, st.st_size, path)
                digest = hashlib.sha256(data).digest()
                if previous is not None and digest == previous.sha256:
                    held = self._link(path, mode, previous)
                    if held is not None:
                        return self._copied(entry, st, digest, held, previous, size=len(data))
                held = self._write_small(path, data, st)
                return self._copied(entry, st, digest, held, size=len(data))
            if previous is not None:
                digest, _ = self._pass(source, None, path, st, meter)
                if digest == previous.sha256:
                    held = self._link(path, mode, previous)
                    if held is not None:
                        return self._copied(entry, st, digest, held, previous)
                _rewind(source, path)
            digest, size, held = self._copy_large(source, path, st, meter)
            return self._copied(entry, st, digest, held, size=size)
        finally:
            os.close(source)

    def _previous(
        self, entry: SourceEntry, size: int | None = None, mtime_ns: int | None = None
    ) -> CopiedFile | None:
        """The previous snapshot's record of this file, if size and mtime still match it and
        it records its copy (manifests from before copy signatures: never linked from)."""
        if not self.can_link:
            return None
        assert self.link_base is not None
        previous = self.link_base.files.get(entry.path)
        if (
            previous is None
            or previous.kind != "file"
            or previous.sha256 is None
            or previous.copy_inode is None
            or previous.size != (entry.size if size is None else size)
            or previous.mtime_ns != (entry.mtime_ns if mtime_ns is None else mtime_ns)
        ):
            return None
        return previous

    def _link(self, path: str, mode: int, previous: CopiedFile) -> os.stat_result | None:
        """Hard-link the previous snapshot's copy of `path` if its lstat proves that it still
        holds the bytes `previous` describes; the new link's lstat, or None: copy instead."""
        assert self.link_root is not None
        old = self.link_root + path
        try:
            st = os.lstat(old)
        except OSError:
            return None  # gone or unreadable: copy
        old_mode = stat.S_IMODE(st.st_mode)
        if (
            # Any write, chmod, utime, link or unlink of that inode since the previous
            # snapshot's last change to it gives it another ctime; ctime cannot be set back.
            st.st_ctime_ns != previous.copy_ctime_ns
            or st.st_ino != previous.copy_inode
            or st.st_dev != previous.copy_device
            or not stat.S_ISREG(st.st_mode)
            or st.st_size != previous.size
            or st.st_mtime_ns != previous.mtime_ns
            # The link shares the inode and so its mode: it must be the source's, less write.
            or old_mode & ~0o222 != mode & ~0o222
        ):
            return None
        new = self.destination + path
        try:
            os.link(old, new)
        except OSError as e:
            if e.errno == errno.EXDEV:
                self.can_link = False  # the previous snapshot is on another filesystem
            if e.errno in _NO_LINK:
                return None
            raise _destination_error(path, e) from None
        try:
            if old_mode & 0o222:
                os.chmod(new, old_mode & ~0o222)
            held = os.lstat(new)  # last: the ctime this link and chmod left is the record's
            if held.st_ino == previous.copy_inode and held.st_dev == previous.copy_device:
                return held
            # The old name was replaced between the check and the link: not the proven copy.
            os.unlink(new)
        except OSError as e:
            raise _destination_error(path, e) from None
        return None

    def _write_small(self, path: str, data: bytes, st: os.stat_result) -> os.stat_result:
        """Write a new file holding `data`; its fstat after the last change."""
        destination = self.destination + path
        mode = stat.S_IMODE(st.st_mode)
        try:
            fd = os.open(destination, _CREATE, mode & 0o777)
        except OSError as e:
            raise _destination_error(path, e) from None
        try:
            _write_all(fd, data, path)
            return self._finish_file(fd, path, mode, st)
        finally:
            _close(fd, path)

    def _finish_file(self, fd: int, path: str, mode: int, st: os.stat_result) -> os.stat_result:
        try:
            if mode & ~(0o777 & ~self.umask):
                os.fchmod(fd, mode)  # the umask took bits away, or setuid/setgid/sticky
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
            return os.fstat(fd)  # last: the copy's ctime as this snapshot leaves it
        except OSError as e:
            raise _destination_error(path, e) from None

    def _copy_large(
        self, source: int, path: str, st: os.stat_result, meter: _Meter
    ) -> tuple[bytes, int, os.stat_result]:
        """Copy and hash a large or sparse file: digest, size, and the copy's last fstat."""
        destination = self.destination + path
        mode = stat.S_IMODE(st.st_mode)
        try:
            fd = os.open(destination, _CREATE, mode & 0o777)
        except OSError as e:
            raise _destination_error(path, e) from None
        try:
            result = self._offloaded(source, fd, path, st, meter)
            if result is None:
                result = self._pass(source, fd, path, st, meter)
            return (*result, self._finish_file(fd, path, mode, st))
        finally:
            _close(fd, path)

    def _offloaded(
        self, source: int, fd: int, path: str, st: os.stat_result, meter: _Meter
    ) -> tuple[bytes, int] | None:
        """Clone or copy server-side, then hash the source; None where neither is possible."""
        if self.can_clone:
            try:
                import fcntl

                fcntl.ioctl(fd, _FICLONE, source)
            except OSError as e:
                if e.errno not in _NO_CLONE:
                    raise _destination_error(path, e) from None
                self.can_clone = False  # the whole destination is one filesystem: stop trying
            else:
                return self._hash_after_offload(source, fd, path, st, meter)
        if self.server_side_copy and not _is_sparse(st):  # it may fill the holes
            copied = 0
            try:
                while copied < st.st_size:
                    n = os.copy_file_range(source, fd, CHUNK << 6)
                    if not n:
                        break
                    copied += n
            except OSError as e:
                if e.errno not in _NO_CLONE:
                    raise _destination_error(path, e) from None
                self.server_side_copy = False
                _rewind(source, path)
                _truncate(fd, path)
                return None
            _rewind(source, path)
            return self._hash_after_offload(source, fd, path, st, meter)
        return None

    def _hash_after_offload(
        self, source: int, fd: int, path: str, st: os.stat_result, meter: _Meter
    ) -> tuple[bytes, int] | None:
        """The source's digest, if the source did not change while it was cloned or copied."""
        digest, size = self._pass(source, None, path, st, meter)
        try:
            after = os.fstat(source)
        except OSError as e:
            raise _source_error(path, e) from None
        if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        ):
            return digest, size
        # Written to meanwhile: the copy and the digest may hold different bytes. A streamed
        # copy hashes exactly what it writes.
        _rewind(source, path)
        _truncate(fd, path)
        return None

    def _pass(
        self, source: int, fd: int | None, path: str, st: os.stat_result, meter: _Meter
    ) -> tuple[bytes, int]:
        """Read the source from its start to its end, hash it, and write it to `fd` unless
        None: the digest of exactly what was written, and its size."""
        if _is_sparse(st):
            return self._sparse_pass(source, fd, path, st.st_size, meter)
        hasher = hashlib.sha256()

        def each(chunk: memoryview) -> None:
            if fd is not None:
                _write_all(fd, chunk, path)
            meter.chunk(len(chunk))

        try:
            size = hash_chunks(source, hasher, self._buffer(), each)
        except OSError as e:
            raise _source_error(path, e) from None
        return hasher.digest(), size

    def _sparse_pass(
        self, source: int, fd: int | None, path: str, size: int, meter: _Meter
    ) -> tuple[bytes, int]:
        """`_pass` of a file with holes: only its data segments are read (and written, at their
        offsets); holes hash as zeros, unread, and stay holes in `fd` (ftruncate'd to the end).
        Whatever the source does meanwhile, the digest is of what `fd` then holds."""
        hasher = hashlib.sha256()
        view = self._buffer()
        position = 0
        while position < size:
            data, hole = _next_data(source, position, size, path)
            _hash_zeros(hasher, data - position, meter)
            position = data
            if position < hole:
                _seek(source, position, path, _source_error)
                if fd is not None:
                    _seek(fd, position, path, _destination_error)
            while position < hole:
                n = _read_into(source, view[: min(len(view), hole - position)], path)
                if not n:
                    size = hole = position  # the source shrank meanwhile: it ends here
                    break
                chunk = view[:n]
                hasher.update(chunk)
                if fd is not None:
                    _write_all(fd, chunk, path)
                position += n
                meter.chunk(n)
        if fd is not None:
            try:
                os.ftruncate(fd, size)
            except OSError as e:
                raise _destination_error(path, e) from None
        return hasher.digest(), size

    def _buffer(self) -> memoryview:
        buffer: memoryview | None = getattr(self._per_thread, "view", None)
        if buffer is None:
            buffer = self._per_thread.view = memoryview(bytearray(CHUNK))
        return buffer


class _Meter:
    """Progress of one batch: a large file reports its chunks as they go, once in total.

    A file may be read twice (hashed for `--link`, then copied); `budget` is what it has left
    to report, so the bytes done never pass the selection's total.
    """

    def __init__(self, copier: _Copier) -> None:
        self.copier = copier
        self.budget = 0
        self.done = 0

    def chunk(self, n: int) -> None:
        if self.copier.stop.is_set():
            raise _Stopped
        n = min(n, self.budget)
        if n:
            self.budget -= n
            self.copier.advance(n)


def _prefix(directory: Path) -> str:
    return os.fspath(directory).rstrip(os.sep) + os.sep


def _read_small(fd: int, size: int, path: str) -> bytes:
    try:
        return read_whole(fd, size)
    except OSError as e:
        raise _source_error(path, e) from None


def _read_into(fd: int, view: memoryview, path: str) -> int:
    try:
        return read_into(fd, view)
    except OSError as e:
        raise _source_error(path, e) from None


def _is_sparse(st: os.stat_result) -> bool:
    """Fewer blocks allocated than the size needs: holes (or compression) to keep."""
    return _SEEK_HOLES and st.st_blocks * 512 < st.st_size


def _next_data(source: int, position: int, size: int, path: str) -> tuple[int, int]:
    """The next data segment at or after `position`, as (start, end), both at most `size`;
    (size, size) when only a hole is left."""
    try:
        data = os.lseek(source, position, os.SEEK_DATA)
        if data >= size:
            return size, size
        # At least one byte on: a segment that became a hole meanwhile still moves on.
        return data, max(data + 1, min(size, os.lseek(source, data, os.SEEK_HOLE)))
    except OSError as e:
        if e.errno == errno.ENXIO:
            return size, size  # no data after `position`: a hole, or the file shrank
        if e.errno in _NO_CLONE:
            return position, size  # no hole information here: read it all
        raise _source_error(path, e) from None


@functools.cache
def _zeros() -> memoryview:
    # calloc'd and never written: reading it maps the kernel's zero page, not new memory.
    return memoryview(bytes(CHUNK))


def _hash_zeros(hasher: hashlib._Hash, n: int, meter: _Meter) -> None:
    zeros = _zeros()
    while n > 0:
        step = min(n, len(zeros))
        hasher.update(zeros[:step])
        n -= step
        meter.chunk(step)


def _seek(fd: int, position: int, path: str, error: Callable[[str, OSError], CopyError]) -> None:
    try:
        os.lseek(fd, position, os.SEEK_SET)
    except OSError as e:
        raise error(path, e) from None


def _write_all(fd: int, data: bytes | memoryview, path: str) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as e:
        raise _destination_error(path, e) from None


def _rewind(fd: int, path: str) -> None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError as e:
        raise _source_error(path, e) from None


def _truncate(fd: int, path: str) -> None:
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError as e:
        raise _destination_error(path, e) from None


def _close(fd: int, path: str) -> None:
    try:
        os.close(fd)  # NFS and quotas report some write errors only here
    except OSError as e:
        raise _destination_error(path, e) from None


def _source_error(path: str, error: OSError) -> CopyError:
    if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
        return CopyError(
            f"{quoted(path)} disappeared from the project during the copy.",
            "Something changed the project meanwhile; run again when it is quiet.",
        )
    if error.errno in (errno.EACCES, errno.EPERM):
        return CopyError(
            f"Cannot read {quoted(path)}: permission denied.",
            "Make it readable, or exclude it from the snapshot.",
        )
    return CopyError(f"Cannot read {quoted(path)}: {error.strerror}.")


def _destination_error(path: str, error: OSError) -> CopyError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "No space left" if error.errno == errno.ENOSPC else "Disk quota exceeded"
        return CopyError(
            f"{what} on the snapshot's filesystem while copying {quoted(path)}.",
            "Free some space, or choose another base directory (--base-dir).",
        )
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return CopyError(
            f"Cannot write {quoted(path)} into the snapshot: {error.strerror}.",
            "Choose a writable base directory (--base-dir).",
        )
    return CopyError(f"Cannot write {quoted(path)} into the snapshot: {error.strerror}.")


def _filesystem_type(path: str) -> str | None:
    """The type of the filesystem holding `path` ("ext4", "nfs4"...), from the mount table."""
    if sys.platform != "linux":
        return None
    try:
        device = os.stat(path).st_dev
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            lines = mounts.readlines()
    except OSError:
        return None
    wanted = f"{os.major(device)}:{os.minor(device)}"
    for line in lines:
        fields = line.split()
        # "id parent major:minor root mountpoint options [optional...] - fstype source ..."
        if len(fields) > 3 and fields[2] == wanted and " - " in line:
            return line.split(" - ", 1)[1].split()[0]
    return None
