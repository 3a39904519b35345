"""The snapshot store: where snapshots live, how ids are taken, and what crashed runs leave.

Layout under the base directory:

    <id>/                       a snapshot, once `.snapshot/manifest.json` is in it; before
                                that, an empty directory holding the id (a reservation)
    .staging/<id>.<token>/      a snapshot being built
    .staging/<id>.<token>.lock  flock'ed by the run that holds the id, until it is done
                                (created as `.lock.tmp`, renamed once locked)
    .staging/<id>.<token>.old   a replaced snapshot on its way out, where renameat2 cannot
                                swap the two directories

An id is taken with `mkdir(<base>/<id>)`, which is atomic everywhere, NFS included: of any
number of runs asking for the same id, exactly one gets it, and an id once published is never
handed out again. The copy is built in `.staging/` (same filesystem) and published with one
`rename()` onto the reserved directory: POSIX rename replaces an empty directory atomically,
so readers see no directory or an empty one, then the complete snapshot, never part of it.
renameat2(RENAME_NOREPLACE) would give the same exclusivity at publish time only, and NFS and
some FUSE filesystems reject its flags; mkdir also makes the id visible (and taken) before a
long copy starts.

A run's lock file is flock'ed before any of its directories exist and released after they
are gone or published, so the kernel tells a live run from a crashed one: `leftovers()` lists
only what no live process holds.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import signal
import stat
import sys
import threading
from contextlib import contextmanager
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING

from poetry_snapshot.errors import SnapshotExistsError
from poetry_snapshot.errors import StoreError
from poetry_snapshot.errors import UsageError
from poetry_snapshot.errors import quoted

if TYPE_CHECKING:
    from collections.abc import Iterator
    from collections.abc import Mapping
    from types import FrameType

BASE_DIR_VARIABLE = "POETRY_SNAPSHOT_BASE_DIR"
STAGING = ".staging"
METADATA = ".snapshot"
MANIFEST = "manifest.json"
# Written by publish() just before the rename and never touched again: its mtime is when the
# snapshot was published (the manifest's own mtime moves each time a run is recorded).
PUBLISHED = "published"

MAX_ID_LENGTH = 100
_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_TOKEN_LENGTH = 8  # hex digits naming one run's lock and staging directory
_VARIABLE = re.compile(r"\$(\w+)|\$\{([^}]*)\}")
_INTERRUPTS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@dataclass(frozen=True)
class SnapshotRef:
    """A published snapshot: what listing the store costs no more than a stat to know."""

    id: str
    path: Path
    published_ns: int  # when it was published (or its manifest's mtime, if it was not)

    @property
    def manifest(self) -> Path:
        return self.path / METADATA / MANIFEST


class Reservation:
    """A snapshot id held by this process until the snapshot is published or released."""

    def __init__(self, snapshot_id: str, path: Path, token: str, replace: bool, lock: int) -> None:
        self.id = snapshot_id
        self.path = path
        self.token = token
        self.replace = replace
        self._lock: int | None = lock

    @property
    def held(self) -> bool:
        return self._lock is not None

    def __repr__(self) -> str:
        return f"Reservation({self.id!r}, held={self.held})"


def new_snapshot_id(now: datetime | None = None) -> str:
    """A fresh id: UTC time to the second, then 6 random characters ("20261126-153012-k3x9qa").

    Ids sort by time; two taken in the same second differ by 36**6 possible suffixes, and
    `reserve()` is what finally guarantees uniqueness.
    """
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
    return f"{moment:%Y%m%d-%H%M%S}-{suffix}"


def validate_snapshot_id(text: str) -> str:
    """`text` if it can name a snapshot directory; UsageError otherwise."""
    if len(text) > MAX_ID_LENGTH or not _ID.fullmatch(text):
        raise UsageError(
            f"Invalid snapshot id {quoted(text)}.",
            f"Use up to {MAX_ID_LENGTH} letters, digits, '.', '_' or '-', not starting with '.'.",
        )
    return text


def resolve_base_dir(
    option: str | None,
    config: str | None,
    environ: Mapping[str, str],
    cache_dir: Path,
    project_name: str,
    *,
    project_dir: Path | None = None,
) -> Path:
    """Where snapshots go: --base-dir, else [tool.poetry-snapshot] base-dir, else
    $POETRY_SNAPSHOT_BASE_DIR, else <cache_dir>/snapshots/<project name>.

    `~` and `$VARS` are expanded from `environ`. A relative --base-dir or variable is relative
    to the working directory; a relative base-dir from pyproject.toml to `project_dir`, when
    given (the file that says it is there).
    """
    for value, anchor in (
        (option, None),
        (config, project_dir),
        (environ.get(BASE_DIR_VARIABLE), None),
    ):
        if value:
            path = Path(_expand(value, environ))
            if not path.is_absolute():
                path = (anchor or Path.cwd()) / path
            return path
    from packaging.utils import canonicalize_name

    return cache_dir / "snapshots" / canonicalize_name(project_name)


def _expand(value: str, environ: Mapping[str, str]) -> str:
    """`~`, `~user`, `$NAME` and `${NAME}`; unknown variables stay as written, as with
    os.path.expandvars (which reads os.environ, not `environ`)."""

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return environ.get(name, match.group(0))

    value = _VARIABLE.sub(variable, value)
    if value == "~" or value.startswith("~/"):
        home = environ.get("HOME") or str(Path.home())
        return home + value[1:]
    return str(Path(value).expanduser()) if value.startswith("~") else value  # ~user


class SnapshotStore:
    """The snapshots of one project, under one base directory."""

    def __init__(self, base_dir: Path) -> None:
        self.base = Path(base_dir).absolute()
        self.staging_dir = self.base / STAGING

    # --- the base directory ------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the base directory (each missing component 0700) and its staging directory."""
        missing: list[Path] = []
        path = self.base
        while True:
            try:
                st = path.lstat()
            except FileNotFoundError:
                missing.append(path)
                path = path.parent
                continue
            except OSError as e:
                raise _base_error(self.base, e) from None
            break
        if not stat.S_ISDIR(st.st_mode) and not (stat.S_ISLNK(st.st_mode) and path.is_dir()):
            raise _not_a_directory(self.base, path)
        for directory in [*reversed(missing), self.staging_dir]:
            _make_private_dir(directory, self.base)
        if not os.access(self.staging_dir, os.W_OK | os.X_OK):
            raise _base_error(self.base, PermissionError(errno.EACCES, os.strerror(errno.EACCES)))

    # --- taking an id ------------------------------------------------------------------------

    def reserve(self, snapshot_id: str, replace: bool = False) -> Reservation:
        """Take `snapshot_id` for this process. SnapshotExistsError if it is taken, unless
        `replace`: then a published snapshot of that id is swapped out by `publish()`."""
        validate_snapshot_id(snapshot_id)
        self.ensure()
        token = secrets.token_hex(_TOKEN_LENGTH // 2)
        lock = self._lock(snapshot_id, token)
        reservation = Reservation(snapshot_id, self.base / snapshot_id, token, replace, lock)
        try:
            reservation.path.mkdir(0o700)
        except FileExistsError:
            if not replace or not self._replaceable(reservation):
                self._unlock(reservation)
                raise SnapshotExistsError(
                    f"Snapshot id {snapshot_id!r} is already taken in {self.base}.",
                    "Choose another --id, or add --replace to replace that snapshot.",
                ) from None
        except BaseException as e:
            self._unlock(reservation)
            if isinstance(e, OSError):
                raise _base_error(self.base, e) from None
            raise
        return reservation

    def reserve_new(self, now: datetime | None = None) -> Reservation:
        """A fresh id, reserved; a clash with a run in the same second just draws again."""
        for _ in range(100):
            try:
                return self.reserve(new_snapshot_id(now))
            except SnapshotExistsError:
                continue
        raise StoreError(f"Cannot find a free snapshot id in {self.base}.")  # 100 clashes: broken

    def _replaceable(self, reservation: Reservation) -> bool:
        """A published snapshot, or the reservation of a run that crashed: not a live run's."""
        path = reservation.path
        if not path.is_dir() or path.is_symlink():
            return False
        own = f"{reservation.id}.{reservation.token}"
        return _exists(path / METADATA / MANIFEST) or reservation.id not in self._live_ids(own)

    def _lock(self, snapshot_id: str, token: str) -> int:
        """Create and flock this run's lock file; it appears under its name already locked."""
        import fcntl

        name = self.staging_dir / f"{snapshot_id}.{token}.lock"
        temporary = name.with_name(name.name + ".tmp")
        try:
            fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise _base_error(self.base, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            temporary.rename(name)
        except BaseException:
            os.close(fd)
            _unlink(temporary)
            raise
        return fd

    def _unlock(self, reservation: Reservation) -> None:
        """Give the id back: the lock file goes last, so no live artifact is ever unlocked."""
        fd = reservation._lock
        if fd is None:
            return
        reservation._lock = None
        _unlink(self.staging_dir / f"{reservation.id}.{reservation.token}.lock")
        os.close(fd)

    def release(self, reservation: Reservation) -> None:
        """Give up an unpublished reservation: its staging directory and empty id go too."""
        if not reservation.held:
            return
        _remove_tree(self._staging_path(reservation))
        with suppress(OSError):
            reservation.path.rmdir()  # only if still the empty reservation
        self._unlock(reservation)

    # --- building and publishing -------------------------------------------------------------

    @contextmanager
    def staging(self, reservation: Reservation) -> Iterator[Path]:
        """A fresh directory to build the snapshot in, publishable onto the reserved id.

        If the block raises, or the process is interrupted (SIGINT, SIGTERM, SIGHUP), the
        directory and the reservation are removed before the exception goes on; SIGTERM and
        SIGHUP then end the process with exit code 128 + signal, as their default would have.
        A block that ends without publishing releases the reservation too.
        """
        if not reservation.held:
            raise ValueError(f"{reservation!r} was already published or released")
        path = self._staging_path(reservation)
        try:
            path.mkdir(0o700)
        except OSError as e:
            self.release(reservation)
            raise _base_error(self.base, e) from None
        with _interrupts_raise():
            try:
                yield path
            finally:
                if reservation.held:
                    with _signals_deferred():
                        self.release(reservation)

    def publish(self, staging: Path, reservation: Reservation) -> Path:
        """Move the finished snapshot onto its id in one rename; returns its path.

        With `replace`, an existing snapshot of that id is swapped out atomically
        (renameat2 RENAME_EXCHANGE) where the filesystem can, else renamed aside first (the id
        is then briefly absent, never partial), and deleted afterwards.
        """
        if not reservation.held:
            raise ValueError(f"{reservation!r} was already published or released")
        if not _exists(staging / METADATA / MANIFEST):
            raise ValueError(f"{staging} has no {METADATA}/{MANIFEST}: nothing to publish")
        target = reservation.path
        try:
            fd = os.open(
                staging / METADATA / PUBLISHED, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644
            )
            os.close(fd)
            replaced = self._move(staging, target, reservation)
            _fsync_dir(self.base)
        except OSError as e:
            raise StoreError(
                f"Cannot publish snapshot {reservation.id!r} in {self.base}: {e.strerror}."
            ) from None
        if replaced is not None:
            _remove_tree(replaced)
        self._unlock(reservation)
        return target

    def _move(self, staging: Path, target: Path, reservation: Reservation) -> Path | None:
        """Rename `staging` onto `target`; returns where a replaced old snapshot now is."""
        try:
            staging.rename(target)
            return None
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not reservation.replace:
                raise
        if _exchange(staging, target):
            return staging  # the old snapshot now sits where the new one was built
        aside = staging.with_name(staging.name + ".old")
        target.rename(aside)
        try:
            staging.rename(target)
        except OSError:
            aside.rename(target)  # put the old snapshot back rather than lose its id
            raise
        return aside

    def _staging_path(self, reservation: Reservation) -> Path:
        return self.staging_dir / f"{reservation.id}.{reservation.token}"

    # --- reading ---------------------------------------------------------------------------

    def snapshots(self) -> list[SnapshotRef]:
        """Published snapshots, sorted by id; never staging directories or reservations."""
        refs = []
        for name in _list(self.base):
            if name.startswith(".") or not _ID.fullmatch(name):
                continue
            path = self.base / name
            metadata = path / METADATA
            try:
                manifest = (metadata / MANIFEST).stat()
            except OSError:
                continue
            try:
                published_ns = (metadata / PUBLISHED).stat().st_mtime_ns
            except OSError:
                published_ns = manifest.st_mtime_ns
            refs.append(SnapshotRef(name, path, published_ns))
        refs.sort(key=lambda ref: ref.id)
        return refs

    def latest(self) -> SnapshotRef | None:
        """The snapshot published last (ids can be chosen freely, so they do not tell)."""
        return max(self.snapshots(), key=lambda ref: (ref.published_ns, ref.id), default=None)

    def leftovers(self) -> list[Path]:
        """What crashed runs left: staging directories, lock files and empty reservations
        that no live process holds. Safe to delete; sorted."""
        live: set[str] = set()  # "<id>.<token>" of the runs in progress
        found: list[Path] = []
        entries = _list(self.staging_dir)
        for name in entries:
            if name.endswith(_LOCK_SUFFIXES):
                path = self.staging_dir / name
                if _held(path):
                    live.add(_run_of(name))
                else:
                    found.append(path)
        found.extend(
            self.staging_dir / name
            for name in entries
            if not name.endswith(_LOCK_SUFFIXES) and _run_of(name) not in live
        )
        live_ids = {run.rpartition(".")[0] for run in live}
        for name in _list(self.base):
            path = self.base / name
            if (
                name.startswith(".")
                or name in live_ids
                or not path.is_dir()
                or path.is_symlink()
                or _list(path)  # not empty: a snapshot, or something that is not ours
            ):
                continue
            found.append(path)
        return sorted(found)

    def _live_ids(self, own: str) -> set[str]:
        """Ids held by runs in progress, other than the run `own` ("<id>.<token>")."""
        return {
            _run_of(name).rpartition(".")[0]
            for name in _list(self.staging_dir)
            if name.endswith(_LOCK_SUFFIXES)
            and _run_of(name) != own
            and _held(self.staging_dir / name)
        }


# --- helpers -------------------------------------------------------------------------------

_LOCK_SUFFIXES = (".lock", ".lock.tmp")


def _run_of(name: str) -> str:
    """ "<id>.<token>" from the name of a staging directory, lock file or set-aside snapshot."""
    for suffix in (".lock.tmp", ".lock", ".old"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _make_private_dir(path: Path, base: Path) -> None:
    try:
        path.mkdir(0o700)
    except FileExistsError:
        if not path.is_dir():
            raise _not_a_directory(base, path) from None
        return  # someone else's, or created meanwhile by a concurrent run: keep its mode
    except OSError as e:
        raise _base_error(base, e) from None
    try:
        path.chmod(0o700)  # the umask may have taken owner bits away
    except OSError as e:
        raise _base_error(base, e) from None


def _not_a_directory(base: Path, path: Path) -> StoreError:
    return StoreError(
        f"Cannot create the snapshot base directory {base}: {path} is not a directory.",
        "Choose another base directory (--base-dir).",
    )


def _base_error(base: Path, error: OSError) -> StoreError:
    reason = error.strerror or str(error)
    if error.errno == errno.ENOTDIR:
        reason = "a component of the path is not a directory"
    return StoreError(
        f"Cannot use the snapshot base directory {base}: {reason}.",
        "Choose a writable one with --base-dir (or POETRY_SNAPSHOT_BASE_DIR).",
    )


def _held(lock: Path) -> bool:
    """Whether a live process holds this lock file's flock."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False  # gone: its run ended meanwhile
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)  # closing drops the lock if this probe took it
    return False


def _exchange(a: Path, b: Path) -> bool:
    """renameat2(a, b, RENAME_EXCHANGE): swap two paths atomically. False where unsupported."""
    if sys.platform != "linux":
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False  # glibc < 2.28, or not glibc
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(error, os.strerror(error), os.fspath(b))


def _remove_tree(path: Path) -> None:
    """Delete a snapshot tree, read-only directories included; best effort (leftovers() will
    list what remains)."""
    try:
        shutil.rmtree(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    # A copied directory may be read-only (it keeps its source's mode): open them all up.
    for root, directories, _ in os.walk(path):
        for name in directories:
            child = Path(root, name)
            if not child.is_symlink():
                with suppress(OSError):
                    child.chmod(0o700)
    shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable: a published snapshot must survive a power cut."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename itself happened
    finally:
        os.close(fd)


def _list(directory: Path) -> list[str]:
    try:
        return [entry.name for entry in directory.iterdir()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _exists(path: Path) -> bool:
    try:
        path.stat()
    except OSError:
        return False
    return True


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


@contextmanager
def _interrupts_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise SystemExit(128 + signal) in the block, so cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can handle signals
        return
    previous = {}

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    for number in _INTERRUPTS:
        handler = signal.getsignal(number)
        if handler is signal.SIG_DFL:  # leave handlers someone else installed alone
            previous[number] = handler
            signal.signal(number, interrupted)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP while cleanup runs: a second Ctrl-C must not leave a
    half-deleted staging directory. They are delivered when the block ends."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "pthread_sigmask"
    ):
        yield
        return
    blocked = {signal.SIGINT, *_INTERRUPTS}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
