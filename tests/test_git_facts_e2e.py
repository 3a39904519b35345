"""The manifest's git facts through real `poetry snapshot` runs: about this project only.

A base dir inside the project, a caller's GIT_DIR, credentials in the remote URL, dirty
submodules and a machine without git, each in a real git project.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.projects import run
from tests.test_snapshot_e2e import manifest
from tests.test_snapshot_e2e import published
from tests.test_snapshot_e2e import snapshot

if TYPE_CHECKING:
    from tests.conftest import MakeProject
    from tests.projects import Project

pytestmark = pytest.mark.e2e

FILE_PROTOCOL = ("-c", "protocol.file.allow=always")  # local submodules, git >= 2.38.1


def git(cwd: Path, environ: dict[str, str], *args: str) -> str:
    return run(["git", "-C", str(cwd), *args], environ).stdout


@pytest.fixture
def store(tmp_path: Path, environ: dict[str, str]) -> Path:
    path = tmp_path / "store"
    environ["POETRY_SNAPSHOT_BASE_DIR"] = str(path)
    return path


def committed_project(make_project: MakeProject) -> Project:
    """A project whose every file (the venv aside) is committed on `main`."""
    project = make_project("demo", ["beta"])
    (project.path / ".gitignore").write_text(".venv/\n")
    (project.path / "notes.txt").write_text("tracked\n")
    git(project.path, project.environ, "init", "-q", "-b", "main")
    git(project.path, project.environ, "add", "-A")
    git(project.path, project.environ, "commit", "-q", "-m", "one")
    return project


def edit_notes(project: Project) -> str:
    """Change notes.txt; return the exact diff git records for that change."""
    env = project.environ
    before = git(project.path, env, "rev-parse", "HEAD:notes.txt").strip()
    (project.path / "notes.txt").write_text("tracked, edited\n")
    after = git(project.path, env, "hash-object", "notes.txt").strip()
    return (
        "diff --git a/notes.txt b/notes.txt\n"
        f"index {before}..{after} 100644\n"  # full blob ids: they stay unambiguous
        "--- a/notes.txt\n"
        "+++ b/notes.txt\n"
        "@@ -1 +1 @@\n"
        "-tracked\n"
        "+tracked, edited\n"
    )


def git_diff(snap: Path) -> str:
    data = manifest(snap)["git"]
    assert data["diff_file"] == ".snapshot/git.diff" and data["diff_unavailable"] is None
    return (snap / ".snapshot" / "git.diff").read_text()


def path_without_git(tmp_path: Path) -> str:
    """A PATH holding the interpreter's bin directory and nothing else: no git on it."""
    empty = tmp_path / "no-git-here"
    empty.mkdir(exist_ok=True)
    path = os.pathsep.join([str(Path(sys.executable).parent), str(empty)])
    assert shutil.which("git", path=path) is None
    return path


# --- a base dir inside the project -----------------------------------------------------------

BASE_DIRS = ["config-relative", "absolute", "through-symlinked-project", "symlink-inside", "nested"]


@pytest.mark.parametrize("given", BASE_DIRS)
def test_snapshots_inside_the_project_are_no_change_of_it(
    make_project: MakeProject, environ: dict[str, str], tmp_path: Path, given: str
) -> None:
    project = committed_project(make_project)
    environ.pop("POETRY_SNAPSHOT_BASE_DIR", None)
    options: list[str] = []
    store = project.path / "snapshots"
    if given == "config-relative":
        project.edit({"tool": {"poetry-snapshot": {"base-dir": "snapshots"}}})
        project.poetry("lock")
        git(project.path, environ, "commit", "-q", "-am", "config")
    elif given == "absolute":
        options = ["--base-dir", str(store)]
    elif given == "through-symlinked-project":
        (tmp_path / "alias").symlink_to(project.path)
        options = ["--base-dir", str(tmp_path / "alias" / "snapshots")]
    elif given == "symlink-inside":
        store.mkdir()
        (project.path / "snaps").symlink_to("snapshots")
        options = ["--base-dir", "snaps"]
    else:
        store = project.path / "data" / "runs"
        options = ["--base-dir", "data/runs"]

    facts = []  # unfixed, each diff held the earlier snapshots: (True, 5k), (True, 12k), ...
    for _ in range(3):
        result = snapshot(project, *options)
        assert result.returncode == 0, result.stderr
        snap = Path(result.stdout.strip())
        assert snap.parent.resolve() == store.resolve()
        diff = (snap / ".snapshot" / "git.diff").stat().st_size
        facts.append((manifest(snap)["git"]["dirty"], diff))
    assert facts == [(False, 0)] * 3

    expected = edit_notes(project)
    result = snapshot(project, *options)
    assert result.returncode == 0, result.stderr
    snap = Path(result.stdout.strip())
    assert manifest(snap)["git"]["dirty"] is True
    assert git_diff(snap) == expected


# --- the caller's git variables --------------------------------------------------------------


@pytest.mark.parametrize("backend", ["binary", "dulwich"])
def test_caller_git_variables_do_not_redirect_the_facts(
    make_project: MakeProject, store: Path, tmp_path: Path, backend: str
) -> None:
    project = committed_project(make_project)
    env = project.environ
    other = tmp_path / "other"
    other.mkdir()
    git(other, env, "init", "-q", "-b", "elsewhere")
    (other / "theirs.txt").write_text("not ours\n")
    git(other, env, "add", "-A")
    git(other, env, "commit", "-q", "-m", "theirs")
    (other / "theirs.txt").write_text("dirty there\n")
    commit = git(project.path, env, "rev-parse", "HEAD").strip()
    expected = edit_notes(project)

    caller = {
        "GIT_DIR": str(other / ".git"),
        "GIT_WORK_TREE": str(other),
        "GIT_INDEX_FILE": str(other / ".git" / "index"),
        "GIT_COMMON_DIR": str(other / ".git"),
        "GIT_OBJECT_DIRECTORY": str(other / ".git" / "objects"),
        "GIT_PREFIX": "sub/",
    }
    if backend == "dulwich":
        caller["PATH"] = path_without_git(tmp_path)
    result = project.poetry("snapshot", check=False, env=caller)
    assert result.returncode == 0, result.stderr
    [snap] = published(store)
    data = manifest(snap)
    facts = data["git"]
    assert (facts["commit"], facts["branch"], facts["dirty"]) == (commit, "main", True)
    assert data["copy"]["selection"] == "git"
    paths = {f["path"] for f in data["files"]}
    assert "notes.txt" in paths and "theirs.txt" not in paths
    if backend == "binary":
        assert git_diff(snap) == expected
    else:
        assert facts["diff_file"] is None


# --- the remote URL --------------------------------------------------------------------------


def test_remote_url_keeps_no_user_info_query_or_fragment(
    make_project: MakeProject, store: Path
) -> None:
    project = committed_project(make_project)
    env = project.environ
    git(project.path, env, "remote", "add", "origin", "https://x")
    for url, recorded in [
        (
            "https://user:t0ken@example.invalid/repo.git?access_token=abc#frag",
            "https://example.invalid/repo.git",
        ),
        ("ssh://git@example.invalid/x", "ssh://example.invalid/x"),
        ("user@example.invalid:repo", "example.invalid:repo"),
    ]:
        git(project.path, env, "remote", "set-url", "origin", url)
        result = snapshot(project)
        assert result.returncode == 0, result.stderr
        snap = Path(result.stdout.strip())
        assert manifest(snap)["git"]["remote_url"] == recorded


# --- submodules --------------------------------------------------------------------------------


def repository(path: Path, environ: dict[str, str], files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    git(path, environ, "init", "-q", "-b", "main")
    for name, text in files.items():
        (path / name).write_text(text)
    git(path, environ, "add", "-A")
    git(path, environ, "commit", "-q", "-m", "init")
    return path


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root but git's own metadata, by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def test_dirty_submodules_are_recorded_so_that_they_restore(
    make_project: MakeProject, store: Path, tmp_path: Path
) -> None:
    project = committed_project(make_project)
    env = project.environ
    upstream = tmp_path / "upstream"
    inner = repository(upstream / "inner", env, {"deep.txt": "deep\n"})
    lib = repository(upstream / "lib", env, {"lib.txt": "lib\n", "keep.bin": "k\n"})
    git(lib, env, *FILE_PROTOCOL, "submodule", "add", "-q", str(inner), "inner")
    git(lib, env, "commit", "-q", "-m", "inner")
    git(project.path, env, *FILE_PROTOCOL, "submodule", "add", "-q", str(lib), "lib")
    git(project.path, env, *FILE_PROTOCOL, "submodule", "update", "--init", "--recursive")
    git(project.path, env, "commit", "-q", "-m", "lib")
    commit = git(project.path, env, "rev-parse", "HEAD").strip()
    lib_commit = git(project.path / "lib", env, "rev-parse", "HEAD").strip()
    inner_commit = git(project.path / "lib" / "inner", env, "rev-parse", "HEAD").strip()

    (project.path / "lib" / "lib.txt").write_text("lib, edited\n")
    (project.path / "lib" / "new.bin").write_bytes(bytes(range(256)))
    (project.path / "lib" / "keep.bin").unlink()
    (project.path / "lib" / "inner" / "deep.txt").write_text("deep, edited\n")
    (project.path / "lib" / "inner" / "fresh.txt").write_text("untracked in inner\n")

    result = snapshot(project)
    assert result.returncode == 0, result.stderr
    [snap] = published(store)
    facts = manifest(snap)["git"]
    assert (facts["commit"], facts["dirty"]) == (commit, True)
    submodules = facts["submodules"]
    assert [(s["path"], s["commit"], s["dirty"]) for s in submodules] == [
        ("lib", lib_commit, True),
        ("lib/inner", inner_commit, True),
    ]

    # Restore: clone at the commit, apply git.diff, then each submodule, parents first.
    clone = tmp_path / "restored"
    run(["git", "clone", "-q", str(project.path), str(clone)], env)
    git(clone, env, "checkout", "-q", commit)
    git(clone, env, "apply", "--binary", str(snap / facts["diff_file"]))
    git(clone, env, *FILE_PROTOCOL, "submodule", "update", "-q", "--init", "--recursive")
    for submodule in submodules:
        where = clone / submodule["path"]
        git(where, env, "checkout", "-q", submodule["commit"])
        git(where, env, "apply", "--binary", str(snap / submodule["diff_file"]))
    restored = tree(clone / "lib")
    assert restored == {k[len("lib/") :]: v for k, v in tree(snap).items() if k.startswith("lib/")}
    assert restored["new.bin"] == bytes(range(256)) and "keep.bin" not in restored
    assert restored["inner/fresh.txt"] == b"untracked in inner\n"


# --- no git binary -----------------------------------------------------------------------------


def test_without_git_the_manifest_says_why_there_is_no_diff(
    make_project: MakeProject, environ: dict[str, str], tmp_path: Path
) -> None:
    project = committed_project(make_project)
    environ.pop("POETRY_SNAPSHOT_BASE_DIR", None)
    no_git = {"PATH": path_without_git(tmp_path)}
    options = ("snapshot", "--base-dir", "snapshots")
    first = project.poetry(*options, check=False, env=no_git)
    assert first.returncode == 0, first.stderr
    again = project.poetry(*options, check=False, env=no_git)
    assert again.returncode == 0, again.stderr
    for result in (first, again):
        snap = Path(result.stdout.strip())
        data = manifest(snap)
        assert data["copy"]["selection"] == "git"  # selected by dulwich
        facts = data["git"]
        assert facts["commit"] == git(project.path, environ, "rev-parse", "HEAD").strip()
        assert (facts["dirty"], facts["diff_file"]) == (False, None)
        assert facts["diff_unavailable"] == "git binary not found"
        assert not (snap / ".snapshot" / "git.diff").exists()
        lines = result.stderr.splitlines()
        [warning] = [line for line in lines if not line.startswith("Snapshot ")]
        assert "git.diff" in warning and "install git" in warning.lower()
    edit_notes(project)
    dirty = project.poetry(*options, check=False, env=no_git)
    assert dirty.returncode == 0, dirty.stderr
    assert manifest(Path(dirty.stdout.strip()))["git"]["dirty"] is True
