"""The snapshot store: where snapshots live, how ids are taken, and what crashed runs leave.

Layout under the base directory:

    <id>/                         a snapshot, once `.snapshot/published` names this store and
                                  this id; before that, an empty directory holding the id
    .poetry-snapshot/store.json   the store's identity (a random id), written once
    .poetry-snapshot/<id>.<token>.lock
                                  flock'ed by the run that holds the id, until it is done; says
                                  who the run is and which empty directory it made for the id
    .poetry-snapshot/<id>.<token>/      a snapshot being built
    .poetry-snapshot/<id>.<token>.old   a replaced snapshot on its way out, where renameat2
                                  cannot swap the two directories

An id is taken with `mkdir(<base>/<id>)`, which is atomic everywhere, NFS included: of any
number of runs asking for the same id, exactly one gets it, and an id once published is never
handed out again. The copy is built in `.poetry-snapshot/` (same filesystem) and published with
one `rename()` onto the reserved directory: POSIX rename replaces an empty directory
atomically, so readers see no directory or an empty one, then the complete snapshot, never
part of it. renameat2(RENAME_NOREPLACE) would give the same exclusivity at publish time only,
and NFS and some FUSE filesystems reject its flags; mkdir also makes the id visible (and
taken) before a long copy starts.

What this store deletes, it proves it made. The base directory may be shared with anything
(`--base-dir ..` puts the store beside the user's projects), so: a snapshot is only the
directory whose `.snapshot/published` names this store's identity and its own id; staging
directories, aside copies and lock files live in `.poetry-snapshot/` under names only this
store makes; an empty id directory is removed only when a dead run's lock file records that
run made it. Everything else under the base directory is never touched.

A run's lock file is flock'ed before any of its directories exist and released after they are
gone or published, so the kernel tells a live run from a crashed one (holds.py): `reclaim()`
removes only what no live process holds.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import signal
import stat
import sys
import threading
import time
from contextlib import contextmanager
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING

from poetry_snapshot.atomic import sync_directory
from poetry_snapshot.errors import SnapshotExistsError
from poetry_snapshot.errors import StoreError
from poetry_snapshot.errors import UsageError
from poetry_snapshot.errors import quoted
from poetry_snapshot.snapshot import holds
from poetry_snapshot.snapshot.layout import IN_USE
from poetry_snapshot.snapshot.layout import MANIFEST_NAME
from poetry_snapshot.snapshot.layout import METADATA_DIR
from poetry_snapshot.snapshot.layout import PUBLISHED

if TYPE_CHECKING:
    from collections.abc import Iterator
    from collections.abc import Mapping
    from types import FrameType

BASE_DIR_VARIABLE = "POETRY_SNAPSHOT_BASE_DIR"
OWN_DIR = ".poetry-snapshot"
STORE_FILE = "store.json"

MAX_ID_LENGTH = 100
_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_TOKEN_LENGTH = 8  # hex digits naming one run's lock and staging directory
# What this store names in its own directory: "<id>.<token>" plus a suffix.
_RUN_ENTRY = re.compile(
    r"(?P<run>(?P<id>[A-Za-z0-9_-][A-Za-z0-9._-]*)\.[0-9a-f]{8})"
    r"(?P<suffix>|\.lock|\.old|\.lock\.[0-9a-f]{8}\.tmp)"
)
# A lock file still being created (holds.create_locked) is unlocked for a few microseconds; one
# that old without a lock is a dead run's.
_STALE_TEMPORARY_SECONDS = 60
_VARIABLE = re.compile(r"\$(\w+)|\$\{([^}]*)\}")
_INTERRUPTS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@dataclass(frozen=True)
class SnapshotRef:
    """A published snapshot: what listing the store costs no more than a stat to know."""

    id: str
    path: Path
    published_ns: int  # when it was published

    @property
    def manifest(self) -> Path:
        return self.path / METADATA_DIR / MANIFEST_NAME


class Reservation:
    """A snapshot id held by this process until the snapshot is published or released."""

    def __init__(self, snapshot_id: str, path: Path, token: str, replace: bool, lock: int) -> None:
        self.id = snapshot_id
        self.path = path
        self.token = token
        self.replace = replace
        self._lock: int | None = lock
        # (device, inode) of the empty directory this run made for the id, if it made one.
        self.made: tuple[int, int] | None = None
        # An exclusive hold on the published snapshot this run replaces, if any.
        self._replacing: int | None = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    @property
    def run(self) -> str:
        return f"{self.id}.{self.token}"

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

    `~`, `~user`, `$NAME` and `${NAME}` are expanded from `environ`; an unset variable or an
    unknown user is an error, as is a value that is empty, only spaces, or holds control
    characters. A relative --base-dir or variable is relative to the working directory; a
    relative base-dir from pyproject.toml to `project_dir`, when given (the file that says it
    is there).
    """
    for value, anchor, origin in (
        (option, None, "--base-dir"),
        (config, project_dir, "base-dir in [tool.poetry-snapshot]"),
        (environ.get(BASE_DIR_VARIABLE), None, f"${BASE_DIR_VARIABLE}"),
    ):
        if value is None or (origin.startswith("$") and value == ""):
            continue  # an empty variable is an unset one, as shells treat it
        path = Path(_expand(_checked_base_dir(value, origin), environ, origin))
        if not path.is_absolute():
            # Normalized, as a shell's `cd ..` would: messages name `/work`, not `/work/p/..`.
            path = Path(os.path.normpath((anchor or Path.cwd()) / path))
        return path
    from packaging.utils import canonicalize_name

    return cache_dir / "snapshots" / canonicalize_name(project_name)


def _checked_base_dir(value: str, origin: str) -> str:
    if not value.strip():
        raise UsageError(f"{origin} is empty.", "Give a directory, or leave the setting out.")
    if any(not c.isprintable() for c in value):
        raise UsageError(
            f"{origin} {quoted(value)} holds control characters.", "Give a plain directory path."
        )
    return value


def _expand(value: str, environ: Mapping[str, str], origin: str) -> str:
    """`~`, `~user`, `$NAME` and `${NAME}`, from `environ`. Unlike os.path.expandvars, an
    unset variable is an error: kept as written, it would become a directory literally named
    `$NAME` (inside the project, for a relative base-dir)."""

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in environ:
            raise UsageError(
                f"{origin} {quoted(value)} uses ${name}, which is not set.",
                f"Set {name}, or write the directory without it.",
            )
        return environ[name]

    value = _VARIABLE.sub(variable, value)
    if value == "~" or value.startswith("~/"):
        home = environ.get("HOME") or str(Path.home())
        return home + value[1:]
    if value.startswith("~"):
        try:
            return str(Path(value).expanduser())
        except RuntimeError:
            user = value[1:].split("/", 1)[0]
            raise UsageError(
                f"{origin} {quoted(value)} names the home of {quoted(user)}, an unknown user.",
                "Write the directory out in full.",
            ) from None
    return value


class SnapshotStore:
    """The snapshots of one project, under one base directory."""

    def __init__(self, base_dir: Path) -> None:
        self.base = Path(base_dir).absolute()
        self.own = self.base / OWN_DIR
        self._identity: str | None = None

    # --- the base directory ------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the base directory (each missing component 0700), the store's own directory
        and its identity."""
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
        for directory in [*reversed(missing), self.own]:
            _make_private_dir(directory, self.base)
        if not os.access(self.own, os.W_OK | os.X_OK):
            raise _base_error(self.base, PermissionError(errno.EACCES, os.strerror(errno.EACCES)))
        if self.identity() is None:
            self._create_identity()

    def identity(self) -> str | None:
        """This store's random identity, None before `ensure()` made one."""
        if self._identity is None:
            try:
                with open(self.own / STORE_FILE, "rb") as stream:
                    value = json.loads(stream.read(4096)).get("store")
            except (OSError, ValueError, AttributeError):
                return None
            if isinstance(value, str) and value:
                self._identity = value
        return self._identity

    def _create_identity(self) -> None:
        # Written whole to a temporary, then link()ed into place: link fails if a concurrent
        # run got there first, and then both use the winner's identity.
        temporary = self.own / f"{STORE_FILE}.{secrets.token_hex(4)}.tmp"
        data = json.dumps({"store": secrets.token_hex(16), "format": 1}) + "\n"
        try:
            temporary.write_text(data, encoding="utf-8")
            with suppress(FileExistsError):
                os.link(temporary, self.own / STORE_FILE)
        except OSError as e:
            raise _base_error(self.base, e) from None
        finally:
            _unlink(temporary)
        if self.identity() is None:
            raise StoreError(
                f"The snapshot store in {self.base} has an unreadable {OWN_DIR}/{STORE_FILE}.",
                "Move that file aside; the store then gets a new identity.",
            )

    # --- taking an id ------------------------------------------------------------------------

    def reserve(self, snapshot_id: str, replace: bool = False) -> Reservation:
        """Take `snapshot_id` for this process. SnapshotExistsError if it is taken, unless
        `replace` and it is a published snapshot of this store, which `publish()` then swaps
        out (SnapshotInUseError while a run holds it)."""
        validate_snapshot_id(snapshot_id)
        self.ensure()
        token = secrets.token_hex(_TOKEN_LENGTH // 2)
        try:
            lock = holds.create_locked(
                self.own / f"{snapshot_id}.{token}.lock",
                holds.identity(id=snapshot_id, intent_ns=time.time_ns()),
            )
        except OSError as e:
            raise _base_error(self.base, e) from None
        reservation = Reservation(snapshot_id, self.base / snapshot_id, token, replace, lock)
        try:
            self._take(reservation)
        except BaseException as e:
            self._unlock(reservation)
            if isinstance(e, OSError):
                raise _base_error(self.base, e) from None
            raise
        return reservation

    def _take(self, reservation: Reservation) -> None:
        path = reservation.path
        for _ in range(2):
            try:
                path.mkdir(0o700)
            except FileExistsError:
                pass
            else:
                st = path.lstat()
                reservation.made = (st.st_dev, st.st_ino)
                assert reservation._lock is not None
                holds.rewrite(
                    reservation._lock,
                    holds.identity(id=reservation.id, made=[st.st_dev, st.st_ino]),
                )
                return
            if self._published(reservation.id) is not None:
                if not reservation.replace:
                    raise SnapshotExistsError(
                        f"Snapshot id {quoted(reservation.id)} is already taken in {self.base}.",
                        "Choose another --id, or add --replace to replace that snapshot.",
                    )
                reservation._replacing = holds.hold_exclusively(
                    path / METADATA_DIR, reservation.id, "replaced"
                )
                return
            live = self._live_claims(reservation.id, besides=reservation.run)
            if live:
                raise SnapshotExistsError(
                    f"Snapshot id {quoted(reservation.id)} is being taken by a run in progress"
                    f" ({live[0].describe()}).",
                    "Choose another --id, or run again once that run has ended.",
                )
            if not self._reclaim_reservation_of(reservation.id):
                break
        what = "nothing was replaced" if reservation.replace else "it was left as it is"
        raise SnapshotExistsError(
            f"{path} already exists and is not a snapshot of this store; {what}.",
            "Choose another --id.",
        )

    def reserve_new(self, now: datetime | None = None) -> Reservation:
        """A fresh id, reserved; a clash with a run in the same second just draws again."""
        for _ in range(100):
            try:
                return self.reserve(new_snapshot_id(now))
            except SnapshotExistsError:
                continue
        raise StoreError(f"Cannot find a free snapshot id in {self.base}.")  # 100 clashes: broken

    def _unlock(self, reservation: Reservation) -> None:
        """Give the id back: the lock file goes last, so no live artifact is ever unlocked."""
        if reservation._replacing is not None:
            os.close(reservation._replacing)
            reservation._replacing = None
        fd = reservation._lock
        if fd is None:
            return
        reservation._lock = None
        _unlink(self.own / f"{reservation.run}.lock")
        os.close(fd)

    def release(self, reservation: Reservation) -> None:
        """Give up an unpublished reservation: its staging directory and empty id go too."""
        if not reservation.held:
            return
        _remove_tree(self._staging_path(reservation))
        if reservation.made is not None:
            _remove_empty_dir(reservation.path, reservation.made)
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

        With `replace`, the published snapshot of that id (held exclusively since `reserve()`)
        is swapped out atomically (renameat2 RENAME_EXCHANGE) where the filesystem can, else
        renamed aside first (the id is then briefly absent, never partial), and deleted
        afterwards.
        """
        if not reservation.held:
            raise ValueError(f"{reservation!r} was already published or released")
        if not _exists(staging / METADATA_DIR / MANIFEST_NAME):
            raise ValueError(f"{staging} has no {METADATA_DIR}/{MANIFEST_NAME}: nothing to publish")
        identity = self.identity()
        assert identity is not None, "reserve() ensures the store"
        target = reservation.path
        marker = json.dumps({"store": identity, "id": reservation.id}) + "\n"
        try:
            (staging / METADATA_DIR / PUBLISHED).write_text(marker, encoding="utf-8")
            # Exists from the start, so holds on this snapshot never have to create it.
            os.close(os.open(staging / METADATA_DIR / IN_USE, os.O_WRONLY | os.O_CREAT, 0o600))
            replaced = self._move(staging, target, reservation)
            sync_directory(self.base)  # a published snapshot must survive a power cut
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
        replacing = reservation._replacing
        if replacing is None:
            staging.rename(target)  # onto the empty directory reserve() made
            return None
        # Still the snapshot reserve() found and holds? (Its lock file is the same inode.)
        if not _same_file(target / METADATA_DIR / IN_USE, replacing):
            raise OSError(errno.ESTALE, "the snapshot to replace changed meanwhile", str(target))
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
        return self.own / reservation.run

    # --- holding a snapshot ------------------------------------------------------------------

    def hold(self, snapshot_dir: Path) -> holds.SnapshotHold:
        """Hold a snapshot (published, or still in staging) for a run: `--replace` and
        deletions refuse it, naming this process, until the hold is released."""
        return holds.hold(snapshot_dir / METADATA_DIR, snapshot_dir.name)

    # --- reading ---------------------------------------------------------------------------

    def snapshots(self) -> list[SnapshotRef]:
        """Published snapshots of this store, sorted by id; never staging directories,
        reservations, or directories of any other origin."""
        if self.identity() is None:
            return []
        refs = []
        for name in _list(self.base):
            if not name.startswith(".") and _ID.fullmatch(name):
                ref = self._published(name)
                if ref is not None:
                    refs.append(ref)
        refs.sort(key=lambda ref: ref.id)
        return refs

    def latest(self) -> SnapshotRef | None:
        """The snapshot published last (ids can be chosen freely, so they do not tell)."""
        return max(self.snapshots(), key=lambda ref: (ref.published_ns, ref.id), default=None)

    def _published(self, name: str) -> SnapshotRef | None:
        """`<base>/<name>` if it is a snapshot this store published under that name."""
        identity = self.identity()
        path = self.base / name
        marker = path / METADATA_DIR / PUBLISHED
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return None  # a symlink or a file is never a snapshot of ours
            fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                published_ns = os.fstat(fd).st_mtime_ns
                data = json.loads(os.read(fd, 4096))
            finally:
                os.close(fd)
            os.stat(path / METADATA_DIR / MANIFEST_NAME)
        except (OSError, ValueError):
            return None
        if (
            not isinstance(data, dict)
            or identity is None
            or data.get("store") != identity
            or data.get("id") != name
        ):
            return None
        return SnapshotRef(name, path, published_ns)

    def _live_claims(self, snapshot_id: str, *, besides: str) -> list[holds.Holder]:
        """The live runs holding a lock for `snapshot_id`, other than the run `besides`."""
        found = []
        for name in _list(self.own):
            match = _RUN_ENTRY.fullmatch(name)
            if (
                match
                and match["id"] == snapshot_id
                and match["suffix"] == ".lock"
                and match["run"] != besides
                and holds.is_held(self.own / name)
            ):
                found.append(holds.holder_of(self.own / name))
        return found

    # --- what crashed runs leave -------------------------------------------------------------

    def reclaim(self) -> list[Path]:
        """Remove what dead runs left, and return it: their staging directories, lock files
        and the empty id directories they made (freeing those ids); a replaced snapshot a
        crash left aside goes back under its id when nothing took its place. What a live
        process holds, and anything this store cannot prove it made, stays."""
        removed: list[Path] = []
        for run, names in sorted(self._runs().items()):
            removed.extend(self._reclaim_run(run, names))
        return removed

    def debris(self) -> list[Path]:
        """What `reclaim()` would remove now, without removing it; sorted."""
        found: list[Path] = []
        for run, names in sorted(self._runs().items()):
            lock = self.own / f"{run}.lock"
            if holds.is_held(lock):
                continue
            for name in names:
                if not name.endswith(".tmp") or self._stale(self.own / name):
                    found.append(self.own / name)
            made = self._made_by(run, holds.read(lock))
            if made is not None:
                found.append(made)
        return sorted(found)

    def _runs(self) -> dict[str, list[str]]:
        runs: dict[str, list[str]] = {}
        for name in _list(self.own):
            match = _RUN_ENTRY.fullmatch(name)
            if match:
                runs.setdefault(match["run"], []).append(name)
        return runs

    def _reclaim_run(self, run: str, names: list[str]) -> list[Path]:
        lock_path = self.own / f"{run}.lock"
        try:
            lock = holds.try_lock(lock_path)
        except FileNotFoundError:
            lock = None
            # No lock file: the run is dead (its lock is made before and removed after all
            # else), unless it is being made right now under its temporary name.
            if any(n.endswith(".tmp") and not self._stale(self.own / n) for n in names):
                return []
        else:
            if lock is None:
                return []  # a live run's
        removed: list[Path] = []
        try:
            claim = holds.read(lock) if lock is not None else {}
            snapshot_id = run.rpartition(".")[0]
            aside = self.own / f"{run}.old"
            if _lexists(aside):
                if self._published(snapshot_id) is not None:
                    _remove_tree(aside)  # the replacement made it in: the old one goes
                    removed.append(aside)
                elif not _lexists(self.base / snapshot_id):
                    os.rename(aside, self.base / snapshot_id)  # back under its id
            staging = self.own / run
            if _lexists(staging):
                _remove_tree(staging)
                removed.append(staging)
            made = self._made_by(run, claim)
            if made is not None and _remove_empty_dir(made, None):
                removed.append(made)
            for name in names:
                if name.endswith(".tmp") and self._stale(self.own / name):
                    _unlink(self.own / name)
                    removed.append(self.own / name)
        except OSError:
            pass  # best effort: what remains is retried by the next run
        finally:
            if lock is not None:
                _unlink(lock_path)
                removed.append(lock_path)
                os.close(lock)
        return removed

    def _made_by(self, run: str, claim: Mapping[str, object]) -> Path | None:
        """The empty id directory a dead run provably made, if it is still there.

        Proof is the (device, inode) the run recorded once it had made it; a run killed between
        its mkdir and writing that down left only its intent and the time of it: the empty directory
        then counts as its own if it appeared within seconds after that intent.
        """
        path = self.base / run.rpartition(".")[0]
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISDIR(st.st_mode) or claim.get("id") != path.name:
            return None
        made = claim.get("made")
        if isinstance(made, list) and len(made) == 2:
            return path if [st.st_dev, st.st_ino] == made else None
        intent = claim.get("intent_ns")
        if isinstance(intent, int) and intent - 1_000_000_000 <= st.st_ctime_ns <= intent + (
            10 * 1_000_000_000
        ):
            return path if not _list(path) else None
        return None

    def _reclaim_reservation_of(self, snapshot_id: str) -> bool:
        """Reclaim the dead runs' claims on `snapshot_id`; True if its directory went."""
        for run, names in self._runs().items():
            if run.rpartition(".")[0] == snapshot_id:
                self._reclaim_run(run, names)
        return not _lexists(self.base / snapshot_id)

    @staticmethod
    def _stale(path: Path) -> bool:
        try:
            age = time.time() - os.lstat(path).st_mtime
        except OSError:
            return False
        return age > _STALE_TEMPORARY_SECONDS and not holds.is_held(path)


# --- helpers -------------------------------------------------------------------------------


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


def _same_file(path: Path, fd: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


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
    """Delete a tree this store made, read-only directories included; best effort (reclaim()
    retries what remains). A symlink or a file where the tree was is left alone, and nothing
    below is followed: shutil.rmtree walks by file descriptor and never follows links."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return
    except OSError:
        return
    try:
        shutil.rmtree(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    # A copied directory may be read-only (it keeps its source's mode): open them all up,
    # top-down, so that the walk can enter each one after it is opened.
    for root, directories, _ in os.walk(path):
        for name in directories:
            child = os.path.join(root, name)
            with suppress(OSError):
                if stat.S_ISDIR(os.lstat(child).st_mode):
                    os.chmod(child, 0o700, follow_symlinks=False)
    shutil.rmtree(path, ignore_errors=True)


def _remove_empty_dir(path: Path, identity: tuple[int, int] | None) -> bool:
    """rmdir `path` if it is still an empty directory (the one of `identity`, when given)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            return False
        if identity is not None and (st.st_dev, st.st_ino) != identity:
            return False
        os.rmdir(path)  # fails unless empty
    except OSError:
        return False
    return True


def _list(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _exists(path: Path) -> bool:
    try:
        path.stat()
    except OSError:
        return False
    return True


def _lexists(path: Path) -> bool:
    return os.path.lexists(path)


def _unlink(path: Path) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


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
