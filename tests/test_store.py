"""The snapshot store on a real filesystem: ids, base dir, reservations, publish, crashes."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from poetry_snapshot.errors import SnapshotError
from poetry_snapshot.errors import SnapshotExistsError
from poetry_snapshot.errors import SnapshotInUseError
from poetry_snapshot.errors import StoreError
from poetry_snapshot.errors import UsageError
from poetry_snapshot.snapshot import store as store_module
from poetry_snapshot.snapshot.store import Reservation
from poetry_snapshot.snapshot.store import SnapshotRef
from poetry_snapshot.snapshot.store import SnapshotStore
from poetry_snapshot.snapshot.store import new_snapshot_id
from poetry_snapshot.snapshot.store import resolve_base_dir
from poetry_snapshot.snapshot.store import validate_snapshot_id
from tests.test_copier import tmpfs

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[1]


def build(store: SnapshotStore, reservation: Reservation, files: dict[str, bytes]) -> Path:
    """Stage `files` and a stand-in manifest listing them, then publish."""
    with store.staging(reservation) as staging:
        for name, data in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(data)
        write_manifest(staging, sorted(files))
        return store.publish(staging, reservation)


def write_manifest(directory: Path, files: list[str]) -> None:
    (directory / ".snapshot").mkdir(exist_ok=True)
    (directory / ".snapshot/manifest.json").write_text(json.dumps({"files": files}))


def tree_files(snapshot: Path) -> list[str]:
    found = []
    for root, directories, files in os.walk(snapshot):
        directories[:] = [
            d for d in directories if not (root == str(snapshot) and d == ".snapshot")
        ]
        found.extend(os.path.relpath(os.path.join(root, f), snapshot) for f in files)
    return sorted(found)


def run_entries(store: SnapshotStore) -> list[str]:
    """What runs have in the store's own directory (its identity file aside)."""
    return sorted(name for name in os.listdir(store.own) if name != "store.json")


def one_line(error: SnapshotError) -> str:
    text = str(error)
    assert "\n" not in text
    return text


# --- ids -----------------------------------------------------------------------------------


def test_new_ids_are_utc_time_then_random() -> None:
    moment = datetime(2026, 11, 26, 16, 30, 12, tzinfo=timezone(timedelta(hours=1)))
    snapshot_id = new_snapshot_id(moment)
    assert snapshot_id.startswith("20261126-153012-")
    suffix = snapshot_id.rsplit("-", 1)[1]
    assert len(suffix) == 6 and suffix.isalnum() and suffix == suffix.lower()
    assert validate_snapshot_id(snapshot_id) == snapshot_id


def test_new_ids_sort_by_time_and_differ() -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ids = [new_snapshot_id(start + timedelta(seconds=s)) for s in (0, 1, 59, 3600, 86400 * 40)]
    assert ids == sorted(ids)
    assert len({new_snapshot_id(start) for _ in range(2000)}) == 2000


@pytest.mark.parametrize(
    "good", ["a", "baseline", "run_1.2-final", "-x", "A" * 100, "20261126-153012-k3x9qa"]
)
def test_valid_ids(good: str) -> None:
    assert validate_snapshot_id(good) == good


@pytest.mark.parametrize(
    "bad",
    ["", ".hidden", ".", "..", "a/b", "a b", "tab\t", "new\nline", "café", "A" * 101, "x\udcff"],
)
def test_invalid_ids_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError) as raised:
        validate_snapshot_id(bad)
    assert raised.value.exit_code == 2
    one_line(raised.value).encode("utf-8")


# --- base directory ------------------------------------------------------------------------


def test_base_dir_precedence(tmp_path: Path) -> None:
    environ = {"POETRY_SNAPSHOT_BASE_DIR": "/from/env"}
    cache = tmp_path / "cache"
    assert resolve_base_dir("/opt", "/cfg", environ, cache, "demo") == Path("/opt")
    assert resolve_base_dir(None, "/cfg", environ, cache, "demo") == Path("/cfg")
    assert resolve_base_dir(None, None, environ, cache, "demo") == Path("/from/env")
    assert (
        resolve_base_dir(None, None, {}, cache, "Demo_Project") == cache / "snapshots/demo-project"
    )
    # An empty variable is an unset one, as in a shell.
    assert resolve_base_dir(None, None, {"POETRY_SNAPSHOT_BASE_DIR": ""}, cache, "demo") == (
        cache / "snapshots/demo"
    )


@pytest.mark.parametrize(
    ("option", "config", "message"),
    [
        ("", None, "--base-dir is empty."),
        ("   ", None, "--base-dir is empty."),
        (None, "", "base-dir in [tool.poetry-snapshot] is empty."),
        ("/tmp/a\nb", None, "--base-dir '/tmp/a\\nb' holds control characters."),
        ("/x/$UNSET/s", None, "--base-dir '/x/$UNSET/s' uses $UNSET, which is not set."),
        (None, "${UNSET}/s", "base-dir in [tool.poetry-snapshot] '${UNSET}/s' uses $UNSET,"),
        ("~nosuchuser-xyz/s", None, "names the home of 'nosuchuser-xyz', an unknown user."),
    ],
)
def test_bad_base_dirs_are_one_line_usage_errors(
    tmp_path: Path, option: str | None, config: str | None, message: str
) -> None:
    with pytest.raises(UsageError) as raised:
        resolve_base_dir(option, config, {"HOME": "/home/a"}, tmp_path, "p")
    assert message in one_line(raised.value) and raised.value.exit_code == 2


def test_base_dir_expands_home_and_variables_from_the_given_environment(tmp_path: Path) -> None:
    environ = {"HOME": "/home/alice", "SCRATCH": "/scratch/alice", "JOB": "42"}
    cache = tmp_path
    assert resolve_base_dir("~/snaps", None, environ, cache, "p") == Path("/home/alice/snaps")
    assert resolve_base_dir("~", None, environ, cache, "p") == Path("/home/alice")
    assert resolve_base_dir(None, "$SCRATCH/s/${JOB}", environ, cache, "p") == Path(
        "/scratch/alice/s/42"
    )
    assert resolve_base_dir(
        None, None, {**environ, "POETRY_SNAPSHOT_BASE_DIR": "$SCRATCH"}, cache, "p"
    ) == (Path("/scratch/alice"))


def test_relative_base_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_base_dir("snaps", None, {}, tmp_path, "p") == tmp_path / "snaps"
    project = tmp_path / "project"
    assert resolve_base_dir(None, "../snaps", {}, tmp_path, "p", project_dir=project) == (
        tmp_path / "snaps"
    )


def test_ensure_creates_each_missing_component_owner_only(tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    base = existing / "a/b/c"
    old = os.umask(0o022)
    try:
        SnapshotStore(base).ensure()
    finally:
        os.umask(old)
    for path in (existing / "a", existing / "a/b", base, base / ".poetry-snapshot"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert stat.S_IMODE(existing.stat().st_mode) == 0o755  # not created here: left alone
    SnapshotStore(base).ensure()  # idempotent


def test_ensure_under_a_regular_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    for base in (tmp_path / "file", tmp_path / "file/snapshots"):
        with pytest.raises(StoreError) as raised:
            SnapshotStore(base).ensure()
        text = one_line(raised.value)
        assert str(base) in text and "--base-dir" in text


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs: root ignores permission bits, not a read-only mount."""
    with tmpfs(tmp_path / "ro", "size=1m,ro") as mount:
        yield mount


def test_unwritable_base_dir_is_one_clear_error(read_only_dir: Path) -> None:
    for base in (read_only_dir, read_only_dir / "snapshots"):
        with pytest.raises(StoreError) as raised:
            SnapshotStore(base).ensure()
        assert one_line(raised.value) == (
            f"Cannot use the snapshot base directory {base}: Read-only file system."
            " Choose a writable one with --base-dir (or POETRY_SNAPSHOT_BASE_DIR)."
        )


# --- reservations, staging, publishing -----------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    snapshots = SnapshotStore(tmp_path / "base")
    snapshots.ensure()
    return snapshots


def test_publish_makes_a_listed_snapshot(store: SnapshotStore) -> None:
    reservation = store.reserve("first")
    assert store.snapshots() == []  # a reservation is not a snapshot
    path = build(store, reservation, {"a.txt": b"a", "d/b.txt": b"b"})
    assert path == store.base / "first"
    assert tree_files(path) == ["a.txt", "d/b.txt"]
    [ref] = store.snapshots()
    assert (ref.id, ref.path, ref.manifest) == ("first", path, path / ".snapshot/manifest.json")
    assert store.latest() == ref
    assert store.debris() == []
    assert run_entries(store) == []


def test_snapshots_are_sorted_by_id_and_latest_is_the_last_published(store: SnapshotStore) -> None:
    for name in ("b", "c", "a"):
        build(store, store.reserve(name), {"f": name.encode()})
        time.sleep(0.01)
    assert [ref.id for ref in store.snapshots()] == ["a", "b", "c"]
    latest = store.latest()
    assert latest is not None and latest.id == "a"


def test_snapshots_ignore_everything_that_is_not_published(store: SnapshotStore) -> None:
    build(store, store.reserve("real"), {"f": b""})
    store.reserve("reserved")
    (store.base / "no-manifest").mkdir()
    (store.base / "no-manifest/file").write_text("x")
    (store.base / "plain-file").write_text("x")
    (store.own / "stray.0badcafe").mkdir()
    write_manifest(store.own / "stray.0badcafe", [])
    assert [ref.id for ref in store.snapshots()] == ["real"]


def test_a_taken_id_cannot_be_reserved_again(store: SnapshotStore) -> None:
    held = store.reserve("mine")
    with pytest.raises(SnapshotExistsError) as raised:
        store.reserve("mine")
    assert raised.value.exit_code == 2 and isinstance(raised.value, UsageError)
    assert f"being taken by a run in progress (pid {os.getpid()} on " in one_line(raised.value)
    build(store, held, {"f": b""})
    with pytest.raises(SnapshotExistsError) as raised:
        store.reserve("mine")
    assert one_line(raised.value) == (
        f"Snapshot id 'mine' is already taken in {store.base}."
        " Choose another --id, or add --replace to replace that snapshot."
    )
    with pytest.raises(SnapshotExistsError):  # a live run's reservation cannot be replaced
        other = store.reserve("live")
        store.reserve("live", replace=True)
    store.release(other)


def test_exactly_one_of_many_concurrent_reservations_wins(store: SnapshotStore) -> None:
    barrier = threading.Barrier(32)

    def attempt(_: int) -> Reservation | None:
        barrier.wait()
        try:
            return store.reserve("contested")
        except SnapshotExistsError:
            return None

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(attempt, range(32)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    build(store, winners[0], {"f": b"1"})
    assert [ref.id for ref in store.snapshots()] == ["contested"]
    assert store.debris() == []
    assert run_entries(store) == []


@pytest.mark.poetry_independent
def test_concurrent_processes_reserving_one_id(store: SnapshotStore) -> None:
    # Each child keeps what it reserved until all have tried: a winner that exits early is a
    # dead run whose reservation the next one rightly reclaims.
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from poetry_snapshot.errors import SnapshotExistsError
        from poetry_snapshot.snapshot.store import SnapshotStore
        store = SnapshotStore(Path({str(store.base)!r}))
        while time.time() < float(sys.argv[1]):
            pass
        try:
            store.reserve("same")
        except SnapshotExistsError:
            print("taken", flush=True)
        else:
            print("won", flush=True)
        sys.stdin.read()
        """
    )
    start = time.time() + 2
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(start)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(32)
    ]
    outcomes = []
    for child in children:
        assert child.stdout is not None
        outcomes.append(child.stdout.readline().strip())
    for child in children:
        child.communicate()
    assert sorted(outcomes) == ["taken"] * 31 + ["won"]


def test_new_ids_reserved_concurrently_are_all_distinct(store: SnapshotStore) -> None:
    barrier = threading.Barrier(32)
    moment = datetime.now(timezone.utc)

    def attempt(_: int) -> str:
        barrier.wait()
        return store.reserve_new(moment).id

    with ThreadPoolExecutor(32) as pool:
        ids = list(pool.map(attempt, range(32)))
    assert len(set(ids)) == 32


def test_a_failed_build_leaves_nothing_and_frees_the_id(store: SnapshotStore) -> None:
    reservation = store.reserve("broken")
    with pytest.raises(RuntimeError), store.staging(reservation) as staging:
        (staging / "half.txt").write_text("half")
        (staging / "ro").mkdir()
        (staging / "ro/inside").write_text("x")
        (staging / "ro").chmod(0o555)
        raise RuntimeError("copy failed")
    assert not reservation.held
    assert os.listdir(store.base) == [".poetry-snapshot"]
    assert run_entries(store) == []
    build(store, store.reserve("broken"), {"f": b"ok"})  # the id is free again


def test_a_block_that_does_not_publish_releases_everything(store: SnapshotStore) -> None:
    reservation = store.reserve("dry")
    with store.staging(reservation) as staging:
        (staging / "x").write_text("x")
    assert os.listdir(store.base) == [".poetry-snapshot"]
    assert run_entries(store) == []


def test_publish_needs_a_manifest(store: SnapshotStore) -> None:
    reservation = store.reserve("empty")
    with pytest.raises(ValueError, match="manifest"), store.staging(reservation) as staging:
        store.publish(staging, reservation)
    assert store.snapshots() == []


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_replace_swaps_in_the_new_snapshot(
    store: SnapshotStore, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setattr(store_module, "_exchange", lambda a, b: False)
    build(store, store.reserve("exp"), {"old.txt": b"old", "ro/x": b"x"})
    (store.base / "exp/ro").chmod(0o555)  # snapshot directories keep their sources' modes
    path = build(store, store.reserve("exp", replace=True), {"new.txt": b"new"})
    assert tree_files(path) == ["new.txt"]
    assert [ref.id for ref in store.snapshots()] == ["exp"]
    assert store.debris() == []
    assert run_entries(store) == []


def test_replace_of_a_new_id_just_publishes(store: SnapshotStore) -> None:
    path = build(store, store.reserve("fresh", replace=True), {"a": b"a"})
    assert tree_files(path) == ["a"]


@pytest.mark.poetry_independent
def test_sigterm_while_staging_cleans_up(store: SnapshotStore) -> None:
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from poetry_snapshot.snapshot.store import SnapshotStore
        store = SnapshotStore(Path({str(store.base)!r}))
        reservation = store.reserve("interrupted")
        with store.staging(reservation) as staging:
            (staging / "partial.txt").write_text("partial")
            print("ready", flush=True)
            time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGTERM)
    assert child.wait(30) == 128 + signal.SIGTERM
    assert os.listdir(store.base) == [".poetry-snapshot"]
    assert run_entries(store) == []


KILLED_CHILD = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from poetry_snapshot.snapshot import store as store_module
from poetry_snapshot.snapshot.store import SnapshotStore

store = SnapshotStore(Path({base!r}))
point = {point!r}
if point == "aside":
    # Die between moving the old snapshot aside and moving the new one in.
    store_module._exchange = lambda a, b: False
    real_rename = Path.rename
    def rename(self, target):
        if self.name.endswith(".old") or not Path(target).name.endswith(".old"):
            if not self.name.endswith(".old"):
                os.kill(os.getpid(), signal.SIGKILL)
        return real_rename(self, target)
    Path.rename = rename
reservation = store.reserve({snapshot_id!r}, replace={replace!r})
if point == "reserved":
    os.kill(os.getpid(), signal.SIGKILL)
with store.staging(reservation) as staging:
    (staging / "new.txt").write_text("new")
    (staging / ".snapshot").mkdir()
    (staging / ".snapshot/manifest.json").write_text("{{}}")
    if point == "staging":
        os.kill(os.getpid(), signal.SIGKILL)
    store.publish(staging, reservation)
"""


def die_at(store: SnapshotStore, point: str, snapshot_id: str, replace: bool = False) -> None:
    """Run a child that reserves `snapshot_id` and kills itself (SIGKILL) at `point`."""
    script = KILLED_CHILD.format(
        repo=str(REPO), base=str(store.base), point=point, snapshot_id=snapshot_id,
        replace=replace,
    )  # fmt: skip
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr


def test_a_dead_runs_debris_is_reclaimed_and_its_id_freed(store: SnapshotStore) -> None:
    die_at(store, "reserved", "early")
    die_at(store, "staging", "late")
    assert sorted(os.listdir(store.base)) == [".poetry-snapshot", "early", "late"]
    debris = store.debris()
    assert store.base / "early" in debris and store.base / "late" in debris
    assert any(p.parent == store.own and (p / "new.txt").exists() for p in debris)
    assert store.snapshots() == []  # a dead run's reservation is never a snapshot
    removed = store.reclaim()
    assert sorted(removed) == debris
    assert os.listdir(store.base) == [".poetry-snapshot"]
    assert run_entries(store) == []
    for snapshot_id in ("early", "late"):  # the ids can be taken again
        build(store, store.reserve(snapshot_id), {"f": b"ok"})


def test_reclaim_leaves_live_runs_alone(store: SnapshotStore) -> None:
    live = store.reserve("alive")
    with store.staging(live) as staging:
        (staging / "partial").write_text("x")
        assert store.debris() == []
        assert store.reclaim() == []
        assert (staging / "partial").exists() and (store.base / "alive").is_dir()
        with pytest.raises(SnapshotExistsError, match="run in progress"):
            store.reserve("alive", replace=True)


def test_reclaim_never_touches_what_it_did_not_make(store: SnapshotStore) -> None:
    """Empty directories, files named like ours, a dead lock file naming another directory:
    nothing this store cannot prove it made is removed."""
    (store.base / "20261129-101010-abcdef").mkdir()  # looks like an id, made by someone else
    (store.base / "empty").mkdir()
    # A dead run's lock that recorded another inode than the directory now under its id.
    (store.own / "empty.0badcafe.lock").write_text('{"id": "empty", "made": [1, 2]}\n')
    (store.own / "notes.txt").write_text("someone's notes")
    (store.own / "sub").mkdir()
    before = sorted(os.listdir(store.base)), sorted(os.listdir(store.own))
    store.reclaim()
    assert sorted(os.listdir(store.base)) == before[0]
    assert sorted(os.listdir(store.own)) == sorted(set(before[1]) - {"empty.0badcafe.lock"})
    with pytest.raises(SnapshotExistsError) as raised:
        store.reserve("empty", replace=True)
    text = one_line(raised.value)
    assert "is not a snapshot of this store; nothing was replaced" in text
    assert (store.base / "empty").is_dir()


def test_a_crash_mid_replace_puts_the_old_snapshot_back(store: SnapshotStore) -> None:
    build(store, store.reserve("exp"), {"old.txt": b"old"})
    die_at(store, "aside", "exp", replace=True)
    assert not (store.base / "exp").exists()  # the crash left the id empty...
    store.reclaim()
    assert tree_files(store.base / "exp") == ["old.txt"]  # ...and reclaim restored it
    assert [ref.id for ref in store.snapshots()] == ["exp"]
    assert run_entries(store) == []


@pytest.mark.parametrize(
    "make",
    ["directory", "copied-snapshot", "symlink", "renamed-snapshot", "file"],
)
def test_replace_only_replaces_snapshots_of_this_store(
    store: SnapshotStore, tmp_path: Path, make: str
) -> None:
    target = store.base / "victim"
    if make == "directory":  # e.g. --base-dir .. --id <the project> --replace
        target.mkdir()
        (target / ".git").mkdir()
        (target / "results.csv").write_text("precious")
    elif make == "copied-snapshot":  # a snapshot of another store, copied in
        other = SnapshotStore(tmp_path / "other")
        build(other, other.reserve("victim"), {"results.csv": b"precious"})
        subprocess.run(["cp", "-a", str(other.base / "victim"), str(target)], check=True)
    elif make == "symlink":  # a link to a real snapshot of this store
        real = build(store, store.reserve("real"), {"results.csv": b"precious"})
        target.symlink_to(real)
    elif make == "renamed-snapshot":  # this store's snapshot, moved to another name
        build(store, store.reserve("real"), {"results.csv": b"precious"})
        (store.base / "real").rename(target)
    else:
        target.write_text("precious")
    before = subprocess.run(["ls", "-laR", str(store.base)], capture_output=True).stdout
    with pytest.raises(SnapshotExistsError) as raised:
        store.reserve("victim", replace=True)
    text = one_line(raised.value)
    assert text.startswith(f"{target} already exists and is not a snapshot of this store")
    assert "nothing was replaced" in text and raised.value.exit_code == 2
    assert subprocess.run(["ls", "-laR", str(store.base)], capture_output=True).stdout == before
    assert "victim" not in [ref.id for ref in store.snapshots()]


HOLDING_CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from poetry_snapshot.snapshot.store import SnapshotStore
store = SnapshotStore(Path({base!r}))
hold = store.hold(Path({path!r}))
print("holding", flush=True)
time.sleep(120)
"""


def test_a_held_snapshot_is_never_replaced(store: SnapshotStore) -> None:
    import socket

    path = build(store, store.reserve("busy"), {"old.txt": b"old"})
    script = HOLDING_CHILD.format(repo=str(REPO), base=str(store.base), path=str(path))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "holding"
        with pytest.raises(SnapshotInUseError) as raised:
            store.reserve("busy", replace=True)
        text = one_line(raised.value)
        assert f"pid {child.pid} on {socket.gethostname()}" in text and raised.value.exit_code == 2
        assert tree_files(path) == ["old.txt"]
        assert run_entries(store) == []
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
    # Its holder is dead (kill -9): the kernel dropped the hold, the replace goes ahead.
    new = build(store, store.reserve("busy", replace=True), {"new.txt": b"new"})
    assert tree_files(new) == ["new.txt"]


def test_a_snapshot_being_replaced_cannot_be_held(store: SnapshotStore) -> None:
    build(store, store.reserve("swap"), {"old.txt": b"old"})
    reservation = store.reserve("swap", replace=True)
    with pytest.raises(SnapshotInUseError, match="being replaced"):
        store.hold(store.base / "swap")
    store.release(reservation)
    store.hold(store.base / "swap").release(store.base / "swap/.snapshot")


# --- crash safety --------------------------------------------------------------------------

CHILD = """
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from poetry_snapshot.snapshot.copier import copy_selection
from poetry_snapshot.snapshot.store import SnapshotRef
from poetry_snapshot.snapshot.store import SnapshotStore
from tests.test_copier import select_tree

tree = select_tree(Path({source!r}))
store = SnapshotStore(Path({base!r}))
store.ensure()
print("ready", flush=True)
while True:
    reservation = store.reserve_new()
    with store.staging(reservation) as staging:
        result = copy_selection(tree, staging, workers=2)
        (staging / ".snapshot").mkdir()
        manifest = staging / ".snapshot/manifest.json"
        with open(manifest, "w") as stream:
            json.dump({{"files": sorted(f.path for f in result.files)}}, stream)
        store.publish(staging, reservation)
"""


@pytest.mark.poetry_independent
def test_killed_runs_never_expose_partial_snapshots(tmp_path: Path) -> None:
    source = tmp_path / "project"
    for i in range(300):
        path = source / f"d{i % 6}/f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(2000))
    expected = sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file())
    base = tmp_path / "base"
    script = CHILD.format(
        repo=str(Path(__file__).resolve().parents[1]), source=str(source), base=str(base)
    )
    store = SnapshotStore(base)
    rng = random.Random(7)
    published = 0
    complete: set[str] = set()  # checked once whole; no later run touches a published snapshot

    def assert_whole(ref: SnapshotRef) -> None:
        listed = json.loads(ref.manifest.read_text())["files"]
        assert listed == expected
        assert tree_files(ref.path) == expected, ref.id

    for _ in range(50):
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.4))
        child.kill()
        child.wait()
        child.stdout.close()

        snapshots = store.snapshots()
        for ref in snapshots:
            if ref.id not in complete:
                assert_whole(ref)
                complete.add(ref.id)
        published = len(snapshots)
        debris = set(store.debris())
        snapshot_paths = {ref.path for ref in snapshots}
        assert not debris & snapshot_paths
        everything = {base / name for name in os.listdir(base) if name != ".poetry-snapshot"}
        # A lock file killed while it was being made is debris only once it is old enough.
        everything |= {store.own / n for n in run_entries(store) if not n.endswith(".tmp")}
        assert everything - snapshot_paths == debris
        store.reclaim()
        assert {base / name for name in os.listdir(base)} - snapshot_paths == {store.own}
    assert published > 0, "no run ever published: the kills all came too early"
    for ref in store.snapshots():  # and still whole after all the later kills
        assert_whole(ref)
