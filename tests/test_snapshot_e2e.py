"""`poetry snapshot [-- CMD]` end to end: real poetry, real venvs, real git, real signals."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest

from tests.projects import POETRY
from tests.projects import run
from tests.schemas import validator

if TYPE_CHECKING:
    from tests.conftest import MakeProject
    from tests.projects import Project

pytestmark = pytest.mark.e2e

SCHEMAS = Path(__file__).parents[1] / "src/poetry_snapshot/schemas"
validate_manifest = validator("manifest")
validate_report = validator("drift-report")
validate_run = validator("run")

PRINT_ORIGIN = "import demo, os, sys; print(demo.__file__); print(os.getcwd()); print(sys.argv[1:])"


@pytest.fixture
def base_dir(tmp_path: Path, environ: dict[str, str]) -> Path:
    path = tmp_path / "store"
    environ["POETRY_SNAPSHOT_BASE_DIR"] = str(path)
    return path


def snapshot(
    project: Project, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return project.poetry("snapshot", *args, check=False, cwd=cwd)


def published(base_dir: Path) -> list[Path]:
    """Published snapshots, oldest first: by creation time, since ids taken in the same second
    sort by their random suffix."""
    if not base_dir.exists():
        return []
    found = [p for p in base_dir.iterdir() if (p / ".snapshot" / "manifest.json").exists()]
    return sorted(found, key=lambda p: (_created(p), p))


def _created(snapshot_dir: Path) -> datetime:
    created = json.loads((snapshot_dir / ".snapshot" / "manifest.json").read_text())["created"]
    return datetime.fromisoformat(str(created).replace("Z", "+00:00"))


def manifest(snapshot_dir: Path) -> dict[str, Any]:
    data = json.loads((snapshot_dir / ".snapshot" / "manifest.json").read_text())
    validate_manifest(data)
    if data["verification"]["report"] is not None:
        validate_report(data["verification"]["report"])
    return data


def run_record(snapshot_dir: Path) -> dict[str, Any]:
    """The record of the snapshot's one run (validated)."""
    [path] = (snapshot_dir / ".snapshot" / "runs").iterdir()
    data = json.loads(path.read_text())
    validate_run(data)
    assert path.name == f"{data['id']}.json"
    return data


def assert_complete(snapshot_dir: Path) -> None:
    """The manifest lists exactly the files in the snapshot: nothing partial, nothing extra."""
    files = {f["path"] for f in manifest(snapshot_dir)["files"]}
    on_disk = {
        str(p.relative_to(snapshot_dir))
        for p in snapshot_dir.rglob("*")
        if not p.is_dir() and ".snapshot" not in p.parts
    }
    assert files == on_disk


# --- the run -------------------------------------------------------------------------------


@pytest.mark.parametrize("src_layout", [False, True], ids=["flat", "src"])
def test_imports_come_from_the_snapshot(
    make_project: MakeProject, base_dir: Path, src_layout: bool
) -> None:
    project = make_project("demo", ["beta"], src_layout=src_layout)
    result = snapshot(project, "--", "python", "-c", PRINT_ORIGIN, "a b", "--flag")
    assert result.returncode == 0, result.stderr
    module, cwd, argv = result.stdout.splitlines()
    [snap] = published(base_dir)
    package = "src/demo" if src_layout else "demo"
    assert module == str(snap / package / "__init__.py")
    assert cwd == str(snap)
    assert argv == "['a b', '--flag']"
    data = manifest(snap)
    assert data["command"] == {"argv": ["python", "-c", PRINT_ORIGIN, "a b", "--flag"]}
    run = run_record(snap)
    assert run["argv"] == data["command"]["argv"] and run["cwd"] == "."
    assert run["exit_code"] == 0 and run["signal"] is None and run["finished"]
    assert data["verification"]["mode"] == "verified" and data["verification"]["report"]["ok"]
    assert {p["name"] for p in data["packages"]} >= {"beta", "demo"}
    # Nothing of the live tree's editable install leaks in: the env still points at the source.
    assert project.poetry(
        "run", "python", "-c", "import demo; print(demo.__file__)"
    ).stdout.strip() == str(project.path / package / "__init__.py")


def test_console_script_of_the_project_runs_snapshot_code(
    make_project: MakeProject, base_dir: Path
) -> None:
    def cli(root: Path) -> None:
        (root / "demo" / "cli.py").write_text(
            "import demo\n\ndef main():\n    print(demo.__file__)\n"
        )

    project = make_project("demo", ["beta"], before_lock=cli, install=False)
    project.edit({"project": {"scripts": {"demo-where": "demo.cli:main"}}})
    project.poetry("lock")
    project.poetry("install")
    result = snapshot(project, "--", "demo-where")
    assert result.returncode == 0, result.stderr
    [snap] = published(base_dir)
    assert result.stdout.strip() == str(snap / "demo" / "__init__.py")


def test_environment_and_working_directory(make_project: MakeProject, base_dir: Path) -> None:
    project = make_project("demo", ["beta"])
    (project.path / "demo" / "sub").mkdir()
    code = (
        "import os; print(os.getcwd());"
        " print(os.environ['POETRY_SNAPSHOT_ID'], os.environ['POETRY_SNAPSHOT_DIR'],"
        " os.environ['POETRY_SNAPSHOT_SOURCE'], os.environ['VIRTUAL_ENV'])"
    )
    result = snapshot(project, "--", "python", "-c", code, cwd=project.path / "demo" / "sub")
    assert result.returncode == 0, result.stderr
    cwd, facts = result.stdout.splitlines()
    [snap] = published(base_dir)
    assert cwd == str(snap / "demo" / "sub")
    assert facts.split() == [snap.name, str(snap), str(project.path), str(project.venv)]
    assert manifest(snap)["project"]["relative_cwd"] == "demo/sub"


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_code_passes_through(make_project: MakeProject, base_dir: Path, code: int) -> None:
    project = make_project("demo", ["beta"])
    result = snapshot(project, "--", "python", "-c", f"raise SystemExit({code})")
    assert result.returncode == code
    [snap] = published(base_dir)
    assert run_record(snap)["exit_code"] == code


def test_death_by_signal_is_128_plus_n(make_project: MakeProject, base_dir: Path) -> None:
    project = make_project("demo", ["beta"])
    result = snapshot(
        project, "--", "python", "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    )
    assert result.returncode == 128 + signal.SIGTERM
    [snap] = published(base_dir)
    command = run_record(snap)
    assert (command["exit_code"], command["signal"], command["signal_name"]) == (143, 15, "SIGTERM")
    assert command["finished"] is not None and command["duration_seconds"] >= 0


HANDLER = textwrap.dedent(
    """\
    import os, signal, sys, time
    def handler(signum, frame):
        # os.write, not print: the signal may land while print("ready") is still flushing.
        os.write(1, (signal.Signals(signum).name + "\\n").encode())
        os._exit(40 + signum)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2"):
        signal.signal(getattr(signal, name), handler)
    print("ready", flush=True)
    time.sleep(60)
    sys.exit(3)
    """
)


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2"])
def test_signals_reach_the_command(make_project: MakeProject, base_dir: Path, name: str) -> None:
    project = make_project("demo", ["beta"])
    (project.path / "wait.py").write_text(HANDLER)
    process = subprocess.Popen(
        [*POETRY, "snapshot", "--", "python", "wait.py"],
        cwd=project.path,
        env=project.environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    signum = getattr(signal, name)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert out.strip() == name, err
    assert process.returncode == 40 + signum
    [snap] = published(base_dir)
    assert run_record(snap)["exit_code"] == 40 + signum


def test_command_not_found_and_not_executable(make_project: MakeProject, base_dir: Path) -> None:
    project = make_project("demo", ["beta"])
    result = snapshot(project, "--", "no-such-command-xyz")
    assert result.returncode == 127
    assert result.stderr.strip().splitlines()[-1] == (
        "Command not found: 'no-such-command-xyz'. Check the name, or install it into the project's env."
    )
    (project.path / "script.sh").write_text("#!/bin/sh\necho hi\n")
    result = snapshot(project, "--", "./script.sh")
    assert result.returncode == 126
    assert "Command is not executable: './script.sh'." in result.stderr.strip().splitlines()[-1]
    # A name with a newline is still one line of message, escaped as the other names are.
    result = snapshot(project, "--", "no\nsuch")
    assert result.returncode == 127
    assert "Command not found: 'no\\nsuch'." in result.stderr.strip().splitlines()[-1]
    assert [run_record(s)["exit_code"] for s in published(base_dir)] == [127, 126, 127]


def test_arguments_after_double_dash_reach_the_command_untouched(
    make_project: MakeProject, base_dir: Path
) -> None:
    project = make_project("demo", ["beta"])
    tricky = [
        "list",
        "run",
        "env",
        "info",
        "-C",
        "elsewhere",
        "--directory=x",
        "-P",
        "p",
        "--project",
        "q",
        "--no-cache",
        "-v",
        "-vvv",
        "-q",
        "--quiet",
        "-h",
        "--help",
        "-V",
        "--version",
        "--ansi",
        "--no-ansi",
        "-n",
        "--no-interaction",
        "--",
        "-E",
        "gpu",
        "--with",
        "docs",
        "--check",
        "",
    ]
    result = snapshot(project, "--", "python", "-c", "import sys; print(sys.argv[1:])", *tricky)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(tricky)


@pytest.mark.xfail(
    strict=True,
    reason="Poetry scans all of argv for --no-plugins before any plugin loads (python-poetry/poetry#10992)",
)
def test_no_plugins_after_double_dash(make_project: MakeProject, base_dir: Path) -> None:
    project = make_project("demo", ["beta"])
    result = snapshot(
        project, "--", "python", "-c", "import sys; print(sys.argv[1:])", "--no-plugins"
    )
    assert result.stdout.strip() == "['--no-plugins']"


# --- without a command, dry run, verification modes ----------------------------------------


def test_without_command_prints_only_the_path(make_project: MakeProject, base_dir: Path) -> None:
    project = make_project("demo", ["beta"])
    result = snapshot(project)
    assert result.returncode == 0, result.stderr
    [snap] = published(base_dir)
    assert result.stdout == f"{snap}\n"
    assert "Snapshot " in result.stderr
    data = manifest(snap)
    assert data["command"] is None
    assert not any((Path(result.stdout.strip()) / ".snapshot" / "runs").iterdir())
    assert (snap / "demo" / "__init__.py").read_text() == (
        project.path / "demo" / "__init__.py"
    ).read_text()
    # The store is owner-only; the snapshot id is sortable and unique.
    assert stat.S_IMODE(base_dir.stat().st_mode) == 0o700
    assert len(snap.name) == len("20261126-153012-k3x9qa")
    quiet = snapshot(project, "-q")
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout.startswith(str(base_dir))


def test_dry_run_writes_nothing(make_project: MakeProject, base_dir: Path) -> None:
    project = make_project("demo", ["beta"])
    (project.path / "big.bin").write_bytes(b"x" * 300_000)
    result = snapshot(project, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Would copy" in result.stdout and "big.bin" in result.stdout
    assert not base_dir.exists()


def test_drift_blocks_the_snapshot_unless_allowed(
    make_project: MakeProject, base_dir: Path
) -> None:
    project = make_project("demo", ["alpha"])
    project.pip("uninstall", "-y", "beta")
    result = snapshot(project, "--", "true")
    assert result.returncode == 1
    assert "Missing packages (1)" in result.stderr
    assert "nothing was copied" in result.stderr.strip().splitlines()[-1]
    assert published(base_dir) == []
    assert not base_dir.exists() or not any(base_dir.iterdir())

    allowed = snapshot(project, "--allow-drift", "--", "true")
    assert allowed.returncode == 0, allowed.stderr
    [snap] = published(base_dir)
    verification = manifest(snap)["verification"]
    assert verification["mode"] == "drift-allowed"
    assert [d["kind"] for d in verification["report"]["drifts"]] == ["missing"]

    skipped = snapshot(project, "--no-verify", "--", "true")
    assert skipped.returncode == 0, skipped.stderr
    assert manifest(published(base_dir)[-1])["verification"] == {"mode": "skipped", "report": None}


# --- which files, git facts -------------------------------------------------------------------


def git(project: Project, *args: str) -> str:
    return run(["git", "-C", str(project.path), *args], project.environ).stdout


def test_git_view_manifest_and_diff(
    make_project: MakeProject, base_dir: Path, tmp_path: Path
) -> None:
    project = make_project("demo", ["beta"])
    (project.path / ".gitignore").write_text(".venv/\ndata/\n*.log\n")
    (project.path / "data").mkdir()
    (project.path / "data" / "big.bin").write_bytes(b"0" * 1000)
    (project.path / "notes.txt").write_text("tracked\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "remote", "add", "origin", "https://user:s3cret@example.invalid/demo.git")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "one")
    commit = git(project, "rev-parse", "HEAD").strip()
    (project.path / "notes.txt").write_text("tracked, edited\n")
    (project.path / "new.py").write_text("NEW = 1\n")
    (project.path / "run.log").write_text("ignored\n")
    (project.path / "blob.bin").write_bytes(bytes(range(256)))

    result = snapshot(project, "--include", "data/big.bin")
    assert result.returncode == 0, result.stderr
    [snap] = published(base_dir)
    data = manifest(snap)
    paths = {f["path"] for f in data["files"]}
    assert {
        "notes.txt",
        "new.py",
        "blob.bin",
        "data/big.bin",
        "pyproject.toml",
        "poetry.lock",
    } <= paths
    assert "run.log" not in paths and not any(p.startswith(".venv/") for p in paths)
    assert data["copy"]["selection"] == "git"
    assert data["git"] == {
        "commit": commit,
        "branch": "main",
        "remote_url": "https://example.invalid/demo.git",
        "dirty": True,
        "diff_file": ".snapshot/git.diff",
        "diff_unavailable": None,
        "submodules": [],
    }
    # The diff takes a clean checkout of the commit to the snapshot's tree (ignored files aside).
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project.path), str(clone)], project.environ)
    run(["git", "-C", str(clone), "checkout", "-q", commit], project.environ)
    run(
        ["git", "-C", str(clone), "apply", "--binary", str(snap / ".snapshot" / "git.diff")],
        project.environ,
    )
    for name in ("notes.txt", "new.py", "blob.bin"):
        assert (clone / name).read_bytes() == (snap / name).read_bytes()
    assert (
        data["lock"]["lock_sha256"]
        == __import__("hashlib").sha256((project.path / "poetry.lock").read_bytes()).hexdigest()
    )


def test_awkward_files_are_handled_and_reported(
    make_project: MakeProject, base_dir: Path, tmp_path: Path
) -> None:
    project = make_project("demo", ["beta"])
    root = os.fsencode(project.path)
    (project.path / "inner.txt").write_text("x")
    os.symlink("inner.txt", project.path / "link-inside")
    os.symlink(str(tmp_path), project.path / "link-outside")
    os.symlink("loop-b", project.path / "loop-a")
    os.symlink("loop-a", project.path / "loop-b")
    os.mkfifo(project.path / "pipe")
    with open(os.path.join(root, b"caf\xe9.txt"), "wb") as f:
        f.write(b"latin-1 name")
    result = snapshot(project, "--exclude", ".venv/")
    assert result.returncode == 0, result.stderr
    [snap] = published(base_dir)
    assert os.readlink(snap / "link-inside") == "inner.txt"
    assert os.readlink(snap / "link-outside") == str(tmp_path)
    assert os.readlink(snap / "loop-a") == "loop-b"
    assert not (snap / "pipe").exists()
    with open(os.path.join(os.fsencode(snap), b"caf\xe9.txt"), "rb") as f:
        assert f.read() == b"latin-1 name"
    assert "link-outside" in result.stderr and "pipe" in result.stderr
    data = manifest(snap)
    assert {"path": "pipe", "reason": "fifo"} in data["copy"]["skipped"]
    entry = next(f for f in data["files"] if "path_b64" in f)
    assert entry["path_b64"] == "Y2Fm6S50eHQ="


# --- ids, base dir, replace, link ----------------------------------------------------------------


def test_ids_existing_id_and_replace(make_project: MakeProject, base_dir: Path) -> None:
    project = make_project("demo", ["beta"])
    assert snapshot(project, "--id", "baseline").returncode == 0
    first = manifest(base_dir / "baseline")
    again = snapshot(project, "--id", "baseline")
    assert again.returncode == 2
    assert len(again.stderr.strip().splitlines()) == 1 and "baseline" in again.stderr
    assert manifest(base_dir / "baseline")["created"] == first["created"]
    (project.path / "demo" / "__init__.py").write_text("VERSION = 2\n")
    replaced = snapshot(project, "--id", "baseline", "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert (base_dir / "baseline" / "demo" / "__init__.py").read_text() == "VERSION = 2\n"
    assert [p.name for p in published(base_dir)] == ["baseline"]
    for bad in (".hidden", "a/b", "x" * 101, "sp ace"):
        result = snapshot(project, "--id", bad)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, bad


def test_link_deduplicates_against_the_previous_snapshot(
    make_project: MakeProject, base_dir: Path
) -> None:
    project = make_project("demo", ["beta"])
    for i in range(20):
        (project.path / f"file{i}.txt").write_text(f"content {i}\n" * 100)
    assert snapshot(project, "--exclude", ".venv/").returncode == 0
    (project.path / "file3.txt").write_text("changed\n")
    result = snapshot(project, "--exclude", ".venv/", "--link")
    assert result.returncode == 0, result.stderr
    first, second = published(base_dir)
    assert (first / "file0.txt").stat().st_ino == (second / "file0.txt").stat().st_ino
    assert not (second / "file0.txt").stat().st_mode & 0o222
    assert (second / "file3.txt").stat().st_ino != (first / "file3.txt").stat().st_ino
    assert (second / "file3.txt").read_text() == "changed\n"
    copy = manifest(second)["copy"]
    assert copy["linked_from"] == first.name and copy["files_linked"] >= 19


def test_base_dir_inside_the_project_is_excluded(
    make_project: MakeProject, environ: dict[str, str]
) -> None:
    project = make_project("demo", ["beta"])
    inside = project.path / "snapshots"
    environ.pop("POETRY_SNAPSHOT_BASE_DIR", None)
    project.edit({"tool": {"poetry-snapshot": {"base-dir": str(inside), "exclude": [".venv/"]}}})
    project.poetry("lock")
    assert snapshot(project).returncode == 0
    result = snapshot(project)
    assert result.returncode == 0, result.stderr
    second = Path(result.stdout.strip())
    assert second.parent == inside
    assert not any(f["path"].startswith("snapshots/") for f in manifest(second)["files"])


def test_unwritable_base_dir_is_one_clear_line(make_project: MakeProject, tmp_path: Path) -> None:
    project = make_project("demo", ["beta"])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = snapshot(project, "--base-dir", str(blocker / "store"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_config_key_is_named(make_project: MakeProject, base_dir: Path) -> None:
    project = make_project("demo", ["beta"])
    project.edit({"tool": {"poetry-snapshot": {"base_dir": "/x"}}})
    result = snapshot(project)
    assert result.returncode == 2
    assert "Unknown key in [tool.poetry-snapshot]: base_dir." in result.stderr


@pytest.mark.poetry_independent
def test_concurrent_snapshots_are_distinct_and_complete(
    make_project: MakeProject, base_dir: Path
) -> None:
    project = make_project("demo", ["beta"])
    processes = [
        subprocess.Popen(
            [*POETRY, "snapshot", "--no-verify", "--exclude", ".venv/"],
            cwd=project.path,
            env=project.environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(32)
    ]
    paths = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        paths.append(out.strip())
    assert len(set(paths)) == 32
    snaps = published(base_dir)
    assert sorted(map(str, snaps)) == sorted(paths)
    for snap in snaps:
        assert_complete(snap)


@pytest.mark.poetry_independent
def test_sigkill_never_leaves_a_partial_snapshot(make_project: MakeProject, base_dir: Path) -> None:
    project = make_project("demo", ["beta"])
    for i in range(300):
        (project.path / f"f{i:03}.bin").write_bytes(os.urandom(20_000))
    rng = __import__("random").Random(1234)
    for _ in range(10):
        process = subprocess.Popen(
            [*POETRY, "snapshot", "--no-verify", "--exclude", ".venv/"],
            cwd=project.path,
            env=project.environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.5, 3.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
    for snap in published(base_dir):
        assert_complete(snap)
    for entry in base_dir.iterdir() if base_dir.exists() else []:
        assert (
            entry.name.startswith(".") or entry in published(base_dir) or not any(entry.iterdir())
        )


def test_full_disk_is_one_clear_line_and_leaves_nothing(
    make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project("demo", ["beta"])
    (project.path / "big.bin").write_bytes(os.urandom(3_000_000))
    mount = tmp_path / "tiny"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        result = snapshot(project, "--base-dir", str(mount / "store"), "--id", "full")
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "No space left" in lines[0], result.stderr
        assert not (mount / "store" / "full" / ".snapshot").exists()
        staging = mount / "store" / ".staging"
        assert not staging.exists() or not any(staging.iterdir())
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_python_on_path_is_the_envs(make_project: MakeProject, base_dir: Path) -> None:
    project = make_project("demo", ["beta"])
    # The interpreter running poetry leads the PATH poetry snapshot is given: a `python` that
    # is not the env's would be found there first, and its sys.prefix is not the env.
    poetry_bin = Path(sys.executable).parent
    assert (poetry_bin / "python").exists()
    assert Path(sys.prefix).resolve() != project.venv.resolve()
    project.environ["PATH"] = os.pathsep.join([str(poetry_bin), project.environ["PATH"]])
    code = "import shutil, sys; print(shutil.which('python')); print(sys.prefix)"
    result = snapshot(project, "--", "python", "-c", code)
    assert result.returncode == 0, result.stderr
    which, prefix = result.stdout.splitlines()
    assert which == str(project.venv / "bin" / "python")
    assert prefix == str(project.venv)
