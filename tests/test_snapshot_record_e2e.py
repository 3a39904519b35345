"""What a snapshot records, checked against the disk, and the options that shape it.

Each manifest value is recomputed here by independent means (hashlib over the snapshot's
files, git, `poetry --version`, `poetry env info -p`), never by calling the plugin's code.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata
import os
import re
import secrets
import signal
import stat
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest
import tomlkit

from tests import test_snapshot_e2e
from tests.projects import POETRY
from tests.projects import run
from tests.test_snapshot_e2e import manifest
from tests.test_snapshot_e2e import published
from tests.test_snapshot_e2e import run_record
from tests.test_snapshot_e2e import snapshot

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.conftest import MakeProject
    from tests.projects import Project

pytestmark = pytest.mark.e2e

base_dir = test_snapshot_e2e.base_dir  # the fixture: a store under tmp_path, in the environ

# The README's list: the only variables whose values a manifest may hold.
ALLOWLIST = (
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_CLUSTER_NAME",
    "SLURM_JOB_ID",
    "SLURM_JOB_NAME",
    "SLURM_JOB_NODELIST",
    "PBS_JOBID",
    "LSB_JOBID",
)


def git(project: Project, *args: str) -> str:
    return run(["git", "-C", str(project.path), *args], project.environ).stdout


def sha256_file(path: bytes | Path) -> str:
    with open(path, "rb") as stream:
        return hashlib.sha256(stream.read()).hexdigest()


# --- 1. every manifest value recomputed from disk ----------------------------------------------


def awkward_git_project(project: Project) -> None:
    """Nested directories, an executable, a private file, symlinks, a non-UTF-8 name, in a
    committed git tree that is then made dirty (edited, deleted, untracked, chmod'ed files)."""
    root = project.path
    (root / ".gitignore").write_text(".venv/\n")
    deep = root / "data" / "raw" / "deep"
    deep.mkdir(parents=True)
    (deep / "values.csv").write_text("a,b\n1,2\n")
    (root / "data" / "empty").write_bytes(b"")
    (root / "data" / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(root / "run.sh", 0o755)
    (root / "private.cfg").write_text("key = 1\n")
    os.chmod(root / "private.cfg", 0o600)
    (root / "later-exec.py").write_text("print('x')\n")
    (root / "gone.txt").write_text("deleted after the commit\n")
    os.symlink("data/raw/deep/values.csv", root / "latest.csv")
    os.symlink("data/raw", root / "raw")
    with open(os.path.join(os.fsencode(root), b"data", b"r\xe9sum\xe9.txt"), "wb") as f:
        f.write(b"latin-1 name\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "one")
    # Dirty: an edit, a deletion, a mode change, untracked files (one with a non-UTF-8 name).
    (root / "demo" / "__init__.py").write_text("EDITED = True\n")
    (root / "gone.txt").unlink()
    os.chmod(root / "later-exec.py", 0o755)
    (root / "notes" / "n1").mkdir(parents=True)
    (root / "notes" / "n1" / "untracked.txt").write_text("not committed\n")
    with open(os.path.join(os.fsencode(root), b"notes", b"\xff\xfe.bin"), "wb") as f:
        f.write(b"\x00\x01")


def on_disk(snapshot_dir: Path) -> dict[bytes, tuple[str, int, int, str]]:
    """Every non-directory entry of the snapshot (its metadata aside), from the disk alone:
    relative path bytes -> (type, size, mode, sha256 of a file or target of a symlink)."""
    top = os.fsencode(snapshot_dir)
    entries: dict[bytes, tuple[str, int, int, str]] = {}
    for directory, dirnames, filenames in os.walk(top):
        if directory == top:
            dirnames[:] = [d for d in dirnames if d != b".snapshot"]
        for name in (*dirnames, *filenames):  # os.walk lists symlinks to directories as dirnames
            path = os.path.join(directory, name)
            st = os.lstat(path)
            relative = os.path.relpath(path, top)
            if stat.S_ISLNK(st.st_mode):
                target = os.fsdecode(os.readlink(path))
                entries[relative] = ("symlink", st.st_size, stat.S_IMODE(st.st_mode), target)
            elif stat.S_ISREG(st.st_mode):
                mode = stat.S_IMODE(st.st_mode)
                entries[relative] = ("file", st.st_size, mode, sha256_file(path))
            else:
                assert stat.S_ISDIR(st.st_mode), relative
    return entries


def tree_sha256(entries: dict[bytes, tuple[str, int, int, str]]) -> str:
    """The digest as manifest.tree_digest's docstring defines it, written from that text."""
    digest = hashlib.sha256()
    for name in sorted(entries, key=os.fsdecode):
        kind, _size, mode, content = entries[name]
        digest.update(name + b"\0")
        digest.update(kind.encode() + b"\0" + format(mode, "04o").encode() + b"\0")
        digest.update(os.fsencode(content) + b"\n")
    return digest.hexdigest()


def test_manifest_values_recomputed_from_disk(make_project: MakeProject, base_dir: Path) -> None:
    project = make_project("demo", ["beta"])
    awkward_git_project(project)
    result = snapshot(project)
    assert result.returncode == 0, result.stderr
    [snap] = published(base_dir)
    data = manifest(snap)

    disk = on_disk(snap)
    recorded: dict[bytes, dict[str, Any]] = {}
    for entry in data["files"]:
        name = os.fsencode(entry["path"])
        if "path_b64" in entry:
            assert base64.b64decode(entry["path_b64"]) == name
        recorded[name] = entry
    # The awkward entries are all there, the deleted file is not, the env is not.
    assert {
        b"data/raw/deep/values.csv",
        b"data/empty",
        b"data/r\xe9sum\xe9.txt",
        b"notes/\xff\xfe.bin",
        b"notes/n1/untracked.txt",
        b"run.sh",
        b"latest.csv",
        b"raw",
    } <= set(disk)
    assert b"gone.txt" not in disk and not any(n.startswith(b".venv/") for n in disk)
    assert set(recorded) == set(disk)

    source = os.fsencode(project.path)
    for name, (kind, size, mode, content) in disk.items():
        entry = recorded[name]
        assert not entry["linked"], name
        assert (entry["type"], entry["size"], entry["mode"]) == (kind, size, f"{mode:04o}"), name
        if kind == "file":
            assert (entry["sha256"], entry["target"]) == (content, None), name
        else:
            assert (entry["sha256"], entry["target"]) == (None, content), name
        # The snapshot is the source, byte for byte and mode for mode; mtimes are kept.
        st = os.lstat(os.path.join(source, name))
        assert (stat.S_IMODE(st.st_mode), st.st_size) == (mode, size), name
        assert (
            entry["mtime_ns"]
            == st.st_mtime_ns
            == os.lstat(os.path.join(os.fsencode(snap), name)).st_mtime_ns
        )
        if kind == "file":
            assert sha256_file(os.path.join(source, name)) == content, name
        else:
            assert os.fsdecode(os.readlink(os.path.join(source, name))) == content, name
    assert recorded[b"run.sh"]["mode"] == "0755" and recorded[b"private.cfg"]["mode"] == "0600"
    assert recorded[b"later-exec.py"]["mode"] == "0755"
    assert recorded[b"raw"]["target"] == "data/raw"
    assert recorded[b"demo/__init__.py"]["sha256"] == hashlib.sha256(b"EDITED = True\n").hexdigest()

    assert data["tree_sha256"] == tree_sha256(disk)
    assert data["copy"]["files"] == len(disk)
    assert data["copy"]["bytes"] == sum(size for _, size, _, _ in disk.values())

    lock_bytes = (project.path / "poetry.lock").read_bytes()
    assert data["lock"] == {
        "lock_sha256": hashlib.sha256(lock_bytes).hexdigest(),
        "pyproject_sha256": sha256_file(project.path / "pyproject.toml"),
        "content_hash": str(tomlkit.parse(lock_bytes.decode())["metadata"]["content-hash"]),  # type: ignore[index]
    }
    version = re.fullmatch(r"Poetry \(version (\S+)\)\n", project.poetry("--version").stdout)
    assert version is not None
    assert data["tools"] == {
        "poetry": version[1],
        "poetry-core": importlib.metadata.version("poetry-core"),
        "poetry-snapshot": importlib.metadata.version("poetry-snapshot"),
    }
    assert data["git"] == {
        "commit": git(project, "rev-parse", "HEAD").strip(),
        "branch": "main",
        "remote_url": None,
        "dirty": True,
        "diff_file": ".snapshot/git.diff",
        "diff_unavailable": None,
        "submodules": [],
    }
    assert data["project"] == {
        "name": "demo",
        "version": "0.1.0",
        "source_dir": str(project.path),
        "relative_cwd": ".",
    }
    interpreter = run(
        [
            str(project.python),
            "-c",
            "import platform, sys; print(platform.python_version(), platform.python_implementation(), sys.platform)",
        ],
        project.environ,
    ).stdout.split()
    assert [
        data["interpreter"][k] for k in ("version", "implementation", "platform")
    ] == interpreter
    assert data["interpreter"]["executable"] == str(project.python)
    # One description of the interpreter, the same in the manifest and in its drift report,
    # and what the env's own packaging says about its tags.
    assert data["verification"]["report"]["interpreter"] == data["interpreter"]
    tag = run(
        [str(project.python), "-c", "import sys; print(sys.implementation.cache_tag)"],
        project.environ,
    ).stdout.strip()
    assert data["interpreter"]["tags"]["interpreter"] == tag.replace("cpython-", "cp")
    assert data["interpreter"]["markers"]["python_full_version"] == interpreter[0]


# --- 2. the environment: only the allowlist --------------------------------------------------


def test_only_allowlisted_variables_are_recorded(
    make_project: MakeProject, base_dir: Path, environ: dict[str, str]
) -> None:
    project = make_project("demo", ["beta"])
    (project.path / ".gitignore").write_text(".venv/\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "one")
    (project.path / "demo" / "__init__.py").write_text("EDITED = True\n")  # a git.diff to grep
    (project.path / "untracked.txt").write_text("untracked\n")

    for name in ALLOWLIST:
        environ.pop(name, None)
    allowed = {"SLURM_JOB_ID": "4242", "CUDA_VISIBLE_DEVICES": "0,3"}
    hidden = {
        "AWS_SECRET_ACCESS_KEY": secrets.token_hex(16),
        "GITHUB_TOKEN": "ghp_" + secrets.token_hex(16),
        f"MY_APP_{secrets.token_hex(4).upper()}": secrets.token_hex(16),
        # Near an allowlisted name: a filter by prefix would let it through.
        "SLURM_JOB_PASSWORD": secrets.token_hex(16),
    }
    environ.update(allowed)
    environ.update(hidden)
    names = sorted(hidden)
    code = f"import os; print(' '.join(os.environ[n] for n in {names!r}))"
    result = snapshot(project, "--", "python", "-c", code)
    assert result.returncode == 0, result.stderr
    # The command saw every secret: they were in poetry snapshot's environment.
    assert result.stdout.split() == [hidden[n] for n in names]

    [snap] = published(base_dir)
    data = manifest(snap)
    assert data["environment"] == allowed
    assert data["git"]["diff_file"] == ".snapshot/git.diff"
    metadata = [p for p in (snap / ".snapshot").rglob("*") if p.is_file()]
    assert {"manifest.json", "git.diff"} <= {p.name for p in metadata}
    assert b"EDITED = True" in (snap / ".snapshot" / "git.diff").read_bytes()
    # Nowhere in the snapshot's metadata, nor anywhere else the store holds.
    everything = [p for p in base_dir.rglob("*") if p.is_file() and not p.is_symlink()]
    assert set(metadata) <= set(everything)
    for path in everything:
        content = path.read_bytes()
        for name, value in hidden.items():
            assert value.encode() not in content, f"{name}'s value is in {path}"


# --- 3. a forwarded SIGTERM ---------------------------------------------------------------------


@dataclass
class Running:
    """`poetry snapshot -- python -c CODE READY` started in the background; its output goes to
    files, so an orphaned command (poetry snapshot dead, the command alive) holds no pipe."""

    process: subprocess.Popen[bytes]
    ready: Path
    err: Path

    def command_pid(self) -> int:
        """Waits (polling) until the command has written its pid to the ready-file."""
        deadline = time.monotonic() + 300  # a hang guard, not a timing assertion
        while not self.ready.exists() or not self.ready.read_text().endswith("\n"):
            if self.process.poll() is not None:
                raise AssertionError(
                    f"exited {self.process.returncode} before ready:\n{self.err.read_text()}"
                )
            assert time.monotonic() < deadline, "the command never became ready"
            time.sleep(0.05)
        return int(self.ready.read_text())


@contextmanager
def started(project: Project, code: str, tmp_path: Path) -> Iterator[Running]:
    ready, out, err = tmp_path / "ready", tmp_path / "out", tmp_path / "err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [*POETRY, "snapshot", "--", "python", "-c", code, str(ready)],
            cwd=project.path,
            env=project.environ,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    running = Running(process, ready, err)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if ready.exists() and ready.read_text().endswith("\n"):  # the command, if it outlived us
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(ready.read_text()), signal.SIGKILL)


SLEEPER = (
    "import os, pathlib, sys, time\n"
    "pathlib.Path(sys.argv[1]).write_text(f'{os.getpid()}\\n')\n"
    "time.sleep(300)\n"
    "sys.exit(3)\n"
)
TRAPPER = (
    "import os, pathlib, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))\n"
    "pathlib.Path(sys.argv[1]).write_text(f'{os.getpid()}\\n')\n"
    "time.sleep(300)\n"
    "sys.exit(3)\n"
)


def test_forwarded_sigterm_that_kills_the_command(
    make_project: MakeProject, base_dir: Path, tmp_path: Path
) -> None:
    project = make_project("demo", ["beta"])
    with started(project, SLEEPER, tmp_path) as running:
        running.command_pid()
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=300) == 143, running.err.read_text()
    [snap] = published(base_dir)
    command = run_record(snap)
    assert (command["exit_code"], command["signal"], command["signal_name"]) == (
        143,
        signal.SIGTERM,
        "SIGTERM",
    )
    assert command["finished"] is not None and command["duration_seconds"] >= 0


def test_sigterm_trapped_by_the_command_is_no_death(
    make_project: MakeProject, base_dir: Path, tmp_path: Path
) -> None:
    project = make_project("demo", ["beta"])
    with started(project, TRAPPER, tmp_path) as running:
        running.command_pid()
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=300) == 0, running.err.read_text()
    [snap] = published(base_dir)
    command = run_record(snap)
    assert (command["exit_code"], command["signal"], command["signal_name"]) == (0, None, None)
    assert command["finished"] is not None


# --- 4. the env outside the project ---------------------------------------------------------------


PREFIX = "import sys; print(sys.prefix); print('%d.%d.%d' % sys.version_info[:3])"


def assert_runs_in(project: Project, base_dir: Path, env_path: Path) -> dict[str, Any]:
    """`--check` and `snapshot -- CMD` both use `env_path`; returns the snapshot's manifest."""
    code, report = project.check_json()
    assert code == 0, report
    assert report["environment"] == str(env_path)
    result = snapshot(project, "--", "python", "-c", PREFIX)
    assert result.returncode == 0, result.stderr
    prefix, version = result.stdout.split()
    assert prefix == str(env_path)
    data = manifest(published(base_dir)[-1])
    assert data["verification"]["report"]["environment"] == str(env_path)
    assert data["interpreter"]["executable"].startswith(str(env_path) + os.sep)
    assert data["interpreter"]["version"] == version
    return data


def test_env_outside_the_project(
    make_project: MakeProject, base_dir: Path, environ: dict[str, str], tmp_path: Path
) -> None:
    venvs = tmp_path / "virtualenvs"
    environ["POETRY_VIRTUALENVS_IN_PROJECT"] = "false"
    environ["POETRY_VIRTUALENVS_PATH"] = str(venvs)
    project = make_project("demo", ["beta"])
    env_path = Path(project.poetry("env", "info", "-p").stdout.strip())
    assert env_path.parent == venvs and not project.venv.exists()
    assert_runs_in(project, base_dir, env_path)


def other_cpython() -> str:
    """A CPython >= 3.9 of another minor version than the tests', when pyenv has one, so that
    the env `poetry env use` picks cannot be mistaken for the first one; else this one."""
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = []
    for candidate in versions.glob("3.*/bin/python3"):
        parts = candidate.parents[1].name.split(".")
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        minor = int(parts[1])
        if minor >= 9 and minor != sys.version_info[1]:
            found.append((minor, str(candidate)))
    for _, python in sorted(found, reverse=True):
        if subprocess.run([python, "-c", "import venv"], capture_output=True).returncode == 0:
            return python
    return sys.executable


def test_env_chosen_with_poetry_env_use(
    make_project: MakeProject, base_dir: Path, environ: dict[str, str], tmp_path: Path
) -> None:
    venvs = tmp_path / "virtualenvs"
    environ["POETRY_VIRTUALENVS_IN_PROJECT"] = "false"
    environ["POETRY_VIRTUALENVS_PATH"] = str(venvs)
    project = make_project("demo", ["beta"])  # a first env, with the tests' Python
    first = Path(project.poetry("env", "info", "-p").stdout.strip())
    python = other_cpython()
    project.poetry("env", "use", python)
    project.poetry("install")
    env_path = Path(project.poetry("env", "info", "-p").stdout.strip())
    assert env_path.parent == venvs
    if python != sys.executable:
        assert env_path != first and first.is_dir()  # two envs: only envs.toml tells which
    data = assert_runs_in(project, base_dir, env_path)
    # The manifest names what the chosen env really runs. That is not always the Python asked
    # for: Poetry 2.0.0 names the env after it but builds it with its own interpreter.
    expected = run(
        [
            str(env_path / "bin" / "python"),
            "-c",
            "import platform; print(platform.python_version())",
        ],
        environ,
    ).stdout.strip()
    assert data["interpreter"]["version"] == expected


# --- 5. group, extra and root options ------------------------------------------------------------


def test_install_options_reach_verification_and_the_manifest(
    make_project: MakeProject, base_dir: Path
) -> None:
    project = make_project(
        "demo",
        ["beta"],
        groups={"docs": {"optional": True, "dependencies": {"docsdep": "*"}}},
        extras={"fast": ["gamma"]},
        install=["--with", "docs", "-E", "fast", "--no-root"],
    )
    options = ("--with", "docs", "-E", "fast", "--no-root")
    result = snapshot(project, *options, "--", "python", "-c", "import docsdep, gamma")
    assert result.returncode == 0, result.stderr
    [snap] = published(base_dir)
    data = manifest(snap)
    assert (data["groups"], data["extras"], data["with_root"]) == (
        ["docs", "main"],
        ["fast"],
        False,
    )
    report = data["verification"]["report"]
    assert report["ok"] is True
    assert (report["groups"], report["extras"]) == (["docs", "main"], ["fast"])
    installed = {p["name"] for p in data["packages"]}
    assert {"beta", "docsdep", "gamma"} <= installed and "demo" not in installed

    # The same env without each option is drift: each one reached verification.
    without = {
        "--with docs": (("-E", "fast", "--no-root"), "docsdep"),
        "-E fast": (("--with", "docs", "--no-root"), "gamma"),
        "--no-root": (("--with", "docs", "-E", "fast"), "Project not installed"),
        "all": ((), "docsdep"),
    }
    for label, (args, named) in without.items():
        drifted = snapshot(project, *args, "--", "true")
        assert drifted.returncode == 1, (label, drifted.stderr)
        assert named in drifted.stderr, (label, drifted.stderr)
    assert published(base_dir) == [snap]


# --- 6. link = true, --no-link, linking against the newest ---------------------------------------


def inodes(snapshot_dir: Path) -> dict[str, int]:
    return {
        f["path"]: (snapshot_dir / f["path"]).stat().st_ino
        for f in manifest(snapshot_dir)["files"]
        if f["type"] == "file"
    }


def test_link_from_config_no_link_and_the_newest_base(
    make_project: MakeProject, base_dir: Path
) -> None:
    project = make_project("demo", ["beta"])
    for i in range(5):
        (project.path / f"file{i}.txt").write_text(f"content {i}\n" * 50)
    project.edit({"tool": {"poetry-snapshot": {"link": True}}})
    project.poetry("lock")

    # Ids whose alphabetical order is not their age: z-one < b-two < m-three < a-four.
    assert snapshot(project, "--id", "z-one").returncode == 0
    one = base_dir / "z-one"
    assert manifest(one)["copy"]["linked_from"] is None  # nothing to link against yet

    second = snapshot(project, "--id", "b-two")  # link = true in the config, no flag
    assert second.returncode == 0, second.stderr
    two = base_dir / "b-two"
    copy = manifest(two)["copy"]
    assert copy["linked_from"] == "z-one"
    assert copy["files_linked"] == copy["files"] == len(inodes(two))
    assert inodes(two) == inodes(one)

    (project.path / "file3.txt").write_text("changed\n")
    third = snapshot(project, "--id", "m-three", "--no-link")
    assert third.returncode == 0, third.stderr
    three = base_dir / "m-three"
    copy = manifest(three)["copy"]
    assert (copy["linked_from"], copy["files_linked"], copy["bytes_linked"]) == (None, 0, 0)
    shared = set(inodes(three).values()) & (set(inodes(one).values()) | set(inodes(two).values()))
    assert shared == set()
    assert (three / "file3.txt").read_text() == "changed\n"

    fourth = snapshot(project, "--id", "a-four")
    assert fourth.returncode == 0, fourth.stderr
    four = base_dir / "a-four"
    copy = manifest(four)["copy"]
    assert copy["linked_from"] == "m-three"
    assert inodes(four) == inodes(three)  # file3.txt too: only m-three has its new content
    assert copy["files_linked"] == copy["files"]
    assert [p.name for p in published(base_dir)] == ["z-one", "b-two", "m-three", "a-four"]
