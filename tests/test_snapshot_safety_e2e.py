"""`poetry snapshot` at its edges, end to end: it never deletes what it does not own, never
replaces a snapshot under a running command, reclaims what killed runs leave, and turns bad
input into one line."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from tests.projects import POETRY
from tests.test_snapshot_e2e import assert_complete
from tests.test_snapshot_e2e import git
from tests.test_snapshot_e2e import manifest
from tests.test_snapshot_e2e import published
from tests.test_snapshot_e2e import run_record
from tests.test_snapshot_e2e import snapshot

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.conftest import MakeProject
    from tests.projects import Project

pytestmark = pytest.mark.e2e

OWN = ".poetry-snapshot"


@pytest.fixture
def base_dir(tmp_path: Path, environ: dict[str, str]) -> Path:
    path = tmp_path / "store"
    environ["POETRY_SNAPSHOT_BASE_DIR"] = str(path)
    return path


def tree_state(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every entry under `root` (.venv and .git included): mode, size and content digest."""
    state: dict[str, tuple[int, int, str]] = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            digest = ""
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as stream:
                    digest = hashlib.sha256(stream.read()).hexdigest()
            state[os.path.relpath(path, root)] = (st.st_mode, st.st_size, digest)
    return state


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def run_entries(base: Path) -> list[str]:
    """What runs left in the store's own directory (its identity file aside)."""
    own = base / OWN
    return sorted(n for n in os.listdir(own) if n != "store.json") if own.exists() else []


def git_project(make_project: MakeProject, files: int = 0, size: int = 2000) -> Project:
    project = make_project("demo", ["beta"])
    (project.path / ".gitignore").write_text(".venv/\nresults/\n")
    for i in range(files):
        path = project.path / f"data/d{i % 10}/f{i:04}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "start")
    (project.path / "demo" / "__init__.py").write_text("WHERE = __file__\nDIRTY = True\n")
    return project


def wait_for(condition: object, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def staging_dirs(base: Path) -> list[Path]:
    own = base / OWN
    if not own.exists():
        return []
    return [own / n for n in os.listdir(own) if "." in n and (own / n).is_dir()]


# --- 1. nothing outside the store is ever deleted --------------------------------------------


def test_replace_never_deletes_the_project(make_project: MakeProject, environ: dict[str, str]):
    environ.pop("POETRY_SNAPSHOT_BASE_DIR", None)
    project = git_project(make_project)
    (project.path / "results").mkdir()
    (project.path / "results" / "run1.csv").write_text("precious, ignored by git\n")
    before = tree_state(project.path)
    for replace in (["--replace"], []):
        result = snapshot(project, "--base-dir", "..", "--id", "demo", *replace, "--", "true")
        assert result.returncode == 2
        line = one_line(result)
        assert line.startswith(f"{project.path} already exists and is not a snapshot of this")
        assert "Snapshot id" not in line
    assert tree_state(project.path) == before
    assert run_entries(project.path.parent) == []


# --- 2. a snapshot in use is never replaced under its run ------------------------------------


def test_a_running_snapshot_cannot_be_replaced(make_project: MakeProject, base_dir: Path) -> None:
    project = make_project("demo", ["beta"])
    ready, go = project.path.parent / "ready", project.path.parent / "go"
    waiter = (
        "import pathlib, time\n"
        f"pathlib.Path({str(ready)!r}).write_text('x')\n"
        f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.01)\n"
        "print(open('demo/__init__.py').read(), end='')\n"
    )
    running = subprocess.Popen(
        [*POETRY, "snapshot", "--id", "exp", "--", "python", "-c", waiter],
        cwd=project.path,
        env=project.environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ready.exists, what="the first run's command to start")
        old = tree_state(base_dir / "exp")
        (project.path / "demo" / "__init__.py").write_text("VERSION = 2\n")
        result = snapshot(project, "--id", "exp", "--replace", "--", "true")
        assert result.returncode == 2
        line = one_line(result)
        assert f"in use by a run in progress (pid {running.pid} on {socket.gethostname()}" in line
        assert tree_state(base_dir / "exp") == old
        assert run_entries(base_dir) == []
    finally:
        go.write_text("go")
        out, err = running.communicate(timeout=120)
    assert running.returncode == 0, err
    assert out == '"""demo"""\nWHERE = __file__\n'  # the run read its own snapshot throughout
    first = manifest(base_dir / "exp")
    run = run_record(base_dir / "exp")
    assert run["exit_code"] == 0 and run["finished"] and run["pid"] == running.pid
    # Once the run has ended, the same replace goes ahead.
    result = snapshot(project, "--id", "exp", "--replace", "--", "true")
    assert result.returncode == 0, result.stderr
    assert (base_dir / "exp" / "demo" / "__init__.py").read_text() == "VERSION = 2\n"
    assert manifest(base_dir / "exp")["created"] != first["created"]


# --- 8. crash debris is reclaimed --------------------------------------------------------------


@pytest.mark.poetry_independent
def test_sigkill_mid_copy_leaves_debris_that_the_next_run_reclaims(
    make_project: MakeProject, base_dir: Path
) -> None:
    project = git_project(make_project, files=1500, size=4000)
    (project.path / "untracked.txt").write_text("not committed\n")
    first = snapshot(project, "--no-verify", "--exclude", ".venv/")
    assert first.returncode == 0, first.stderr
    kills_mid_copy = 0
    for _ in range(6):
        process = subprocess.Popen(
            [*POETRY, "snapshot", "--no-verify", "--id", "killed", "--exclude", ".venv/"],
            cwd=project.path,
            env=project.environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def copying() -> bool:
            return any(any(d.iterdir()) for d in staging_dirs(base_dir))

        def started(process: subprocess.Popen[bytes] = process) -> bool:
            return copying() or process.poll() is not None

        try:
            wait_for(started, what="the copy to start")
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        if process.returncode == -signal.SIGKILL and staging_dirs(base_dir):
            kills_mid_copy += 1
        # Readers never see a partial snapshot under a final id.
        for snap in published(base_dir):
            assert_complete(snap)
        assert (base_dir / "killed").is_dir() and not any((base_dir / "killed").iterdir())
        assert staging_dirs(base_dir), "the staging copy stays until a later run reclaims it"
        # The next run reclaims it all, and the id can be taken again.
        again = snapshot(project, "--no-verify", "--id", "killed", "--exclude", ".venv/", "--link")
        assert again.returncode == 0, again.stderr
        assert run_entries(base_dir) == []
        linked_from = manifest(base_dir / "killed")["copy"]["linked_from"]
        assert linked_from in {p.name for p in published(base_dir)}  # never the debris
        assert_complete(base_dir / "killed")
        (base_dir / "killed").rename(base_dir / f"done-{time.monotonic_ns()}")
    assert kills_mid_copy >= 4, "the kills did not land while the copy ran"


# --- a copy that fails; a replace that fails --------------------------------------------------


def vanish_during_copy(
    project: Project, base: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run `poetry snapshot`, deleting one small file once the copy has begun: the copier
    takes the two large files first, one per thread, which leaves time to remove it."""
    victim = project.path / "zzz-small.txt"
    victim.write_text("here at selection time\n")
    process = subprocess.Popen(
        [*POETRY, "snapshot", "--no-verify", "--exclude", ".venv/", *args],
        cwd=project.path,
        env=project.environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: staging_dirs(base) or process.poll() is not None, what="the copy to start")
        victim.unlink()
    finally:
        out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture
def big_git_project(make_project: MakeProject) -> Project:
    project = git_project(make_project)
    for name in ("big1.bin", "big2.bin"):
        with open(project.path / name, "wb") as stream:
            for _ in range(150):
                stream.write(os.urandom(1 << 20))
    return project


@pytest.mark.poetry_independent
def test_a_failed_copy_leaves_nothing(big_git_project: Project, base_dir: Path) -> None:
    result = vanish_during_copy(big_git_project, base_dir, "--id", "failing")
    assert result.returncode == 2
    assert "'zzz-small.txt' disappeared from the project during the copy." in one_line(result)
    assert not (base_dir / "failing").exists()
    assert run_entries(base_dir) == []


@pytest.mark.poetry_independent
def test_a_failed_replace_leaves_the_old_snapshot_as_it_was(
    big_git_project: Project, base_dir: Path
) -> None:
    project = big_git_project
    assert snapshot(project, "--id", "exp", "--exclude", ".venv/").returncode == 0
    old = tree_state(base_dir / "exp")
    # A copy error...
    result = vanish_during_copy(project, base_dir, "--id", "exp", "--replace")
    assert result.returncode == 2, result.stderr
    assert tree_state(base_dir / "exp") == old
    # ...and drift.
    project.pip("install", "stray")
    drifted = snapshot(project, "--id", "exp", "--replace", "--exclude", ".venv/")
    assert drifted.returncode == 1
    assert tree_state(base_dir / "exp") == old
    assert run_entries(base_dir) == []


# --- 7. one line and exit 2 for every bad input ---------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--id", ""], "Invalid snapshot id ''."),
        (["--id", "  "], "Invalid snapshot id '  '."),
        (["--id", "a\nb"], "Invalid snapshot id 'a\\nb'."),
        (["--base-dir", ""], "--base-dir is empty."),
        (["--base-dir", "   "], "--base-dir is empty."),
        (["--base-dir", "snaps\tx"], "--base-dir 'snaps\\tx' holds control characters."),
        (["--base-dir", "$NOPE_UNSET/x"], "uses $NOPE_UNSET, which is not set."),
        (["--base-dir", "~nosuchuser-xyz/x"], "names the home of 'nosuchuser-xyz'"),
        (["--replace"], "--replace needs --id."),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    make_project: MakeProject, base_dir: Path, args: list[str], message: str
) -> None:
    project = make_project("demo", ["beta"])
    before = sorted(os.listdir(project.path))
    result = snapshot(project, *args, "--", "true")
    assert result.returncode == 2
    assert message in one_line(result)
    assert sorted(os.listdir(project.path)) == before  # no `$NOPE_UNSET` directory appeared
    assert not base_dir.exists()


def test_unset_variable_in_the_configured_base_dir(make_project: MakeProject, base_dir: Path):
    project = make_project("demo", ["beta"])
    project.edit({"tool": {"poetry-snapshot": {"base-dir": "$NOPE_UNSET/snaps"}}})
    project.poetry("lock")
    result = snapshot(project, "--", "true")
    assert result.returncode == 2
    assert one_line(result) == (
        "base-dir in [tool.poetry-snapshot] '$NOPE_UNSET/snaps' uses $NOPE_UNSET, which is not"
        " set. Set NOPE_UNSET, or write the directory without it."
    )
    assert not (project.path / "$NOPE_UNSET").exists()


@pytest.fixture
def lock_trouble(make_project: MakeProject, request: pytest.FixtureRequest) -> Iterator[Project]:
    project = make_project("demo", ["beta"])
    lock = project.path / "poetry.lock"
    lock.unlink()
    if request.param == "directory":
        lock.mkdir()
    else:
        lock.symlink_to(lock)  # a loop: unreadable even for root
    yield project


@pytest.mark.parametrize("lock_trouble", ["directory", "loop"], indirect=True)
@pytest.mark.parametrize("args", [["--check"], ["--", "true"]], ids=["check", "run"])
def test_an_unreadable_lock_is_one_line(
    lock_trouble: Project, base_dir: Path, args: list[str]
) -> None:
    result = snapshot(lock_trouble, *args)
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith(f"Cannot read {lock_trouble.path / 'poetry.lock'}: ")
    assert not base_dir.exists()


def test_link_against_a_corrupt_manifest_copies_with_a_warning(
    make_project: MakeProject, base_dir: Path
) -> None:
    project = make_project("demo", ["beta"])
    assert snapshot(project, "--exclude", ".venv/").returncode == 0
    [first] = published(base_dir)
    path = first / ".snapshot" / "manifest.json"
    path.write_text(path.read_text()[:200])  # torn
    result = snapshot(project, "--exclude", ".venv/", "--link")
    assert result.returncode == 0, result.stderr
    [warning] = [line for line in result.stderr.splitlines() if "Not linking" in line]
    assert warning.startswith(
        f"Not linking against snapshot {first.name}: its manifest cannot be read ("
    )
    assert warning.endswith("); copying every file instead.")
    [second] = [p for p in base_dir.iterdir() if p not in (first, base_dir / OWN)]
    copy = manifest(second)["copy"]
    assert copy["linked_from"] is None and copy["files_linked"] == 0
    assert json.loads((second / ".snapshot" / "manifest.json").read_text())["id"] == second.name
