"""Git facts for the manifest, from the git binary and from dulwich, against real git repos."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from poetry_snapshot.snapshot import git as gitcommand
from poetry_snapshot.snapshot.git_facts import read_git_info
from poetry_snapshot.snapshot.git_facts import strip_credentials


@pytest.fixture(autouse=True)
def git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{key}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{key}_EMAIL", "test@example.invalid")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "a.txt").write_text("one\n")
    (path / "b.txt").write_text("two\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    git(path, "remote", "add", "origin", "https://alice:tok3n@example.invalid/r.git")
    return path


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://alice:tok3n@example.invalid/r.git", "https://example.invalid/r.git"),
        ("https://ghp_token@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://host:8443/r.git", "https://host:8443/r.git"),
        ("https://host/r.git?access_token=abc#frag", "https://host/r.git"),
        ("https://u:p@host:8443?token=x", "https://host:8443"),
        ("https://host:not-a-port@evil/r", "https://evil/r"),
        ("https://host/a@b/r.git", "https://host/a@b/r.git"),
        # User info goes from every URL: the same rule for ssh, where it is an account name.
        ("ssh://git@host/r.git", "ssh://host/r.git"),
        ("ssh://git:secret@host:2222/r.git", "ssh://host:2222/r.git"),
        ("git@github.com:o/r.git", "github.com:o/r.git"),
        ("user@host:repo?token=x#f", "host:repo"),
        ("host:repo", "host:repo"),
        ("file:///srv/r.git?x=1", "file:///srv/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
        ("./a:b/r?.git", "./a:b/r?.git"),
    ],
)
def test_strip_credentials(url: str, clean: str) -> None:
    assert strip_credentials(url) == clean


def test_clean_repository(repo: Path) -> None:
    info = read_git_info(repo, repo.parent / "diff")
    assert info is not None
    assert (info.commit, info.branch, info.remote_url, info.dirty) == (
        git(repo, "rev-parse", "HEAD").strip(),
        "main",
        "https://example.invalid/r.git",
        False,
    )
    assert info.diff_written and (repo.parent / "diff").read_bytes() == b""


def test_dirty_tree_diff_applies_back(repo: Path, tmp_path: Path) -> None:
    git(repo, "config", "diff.noprefix", "true")  # a user's taste must not break `git apply`
    git(repo, "config", "diff.mnemonicPrefix", "true")
    (repo / "a.txt").write_text("one, edited\n")
    git(repo, "mv", "b.txt", "renamed.txt")
    (repo / "new.bin").write_bytes(bytes(range(256)))
    info = read_git_info(repo, tmp_path / "patch")
    assert info is not None and info.dirty and info.diff_written
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    git(clone, "apply", "--binary", str(tmp_path / "patch"))
    for name in ("a.txt", "renamed.txt", "new.bin"):
        assert (clone / name).read_bytes() == (repo / name).read_bytes()
    assert not (clone / "b.txt").exists()


def test_subdirectory_sees_only_its_subtree(repo: Path) -> None:
    (repo / "sub").mkdir()
    (repo / "sub" / "c.txt").write_text("three\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sub")
    (repo / "a.txt").write_text("changed outside the project\n")
    info = read_git_info(repo / "sub", repo.parent / "diff")
    assert info is not None
    assert (info.dirty, (repo.parent / "diff").read_bytes()) == (False, b"")


def test_detached_head_and_repository_without_commits(repo: Path, tmp_path: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    info = read_git_info(repo)
    assert info is not None and info.branch is None and info.commit is not None
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "trunk")
    (empty / "x.py").write_text("X = 1\n")
    info = read_git_info(empty, tmp_path / "diff")
    assert info is not None
    assert (info.commit, info.branch, info.remote_url, info.dirty) == (None, "trunk", None, True)
    assert b"+X = 1" in (tmp_path / "diff").read_bytes()


def test_outside_git(tmp_path: Path) -> None:
    assert read_git_info(tmp_path) is None


def test_dulwich_without_the_git_binary(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "a.txt").write_text("edited\n")
    binary = read_git_info(repo)
    monkeypatch.setenv("PATH", str(repo.parent / "no-git-here"))
    fallback = read_git_info(repo)
    assert binary is not None and fallback is not None
    assert (fallback.commit, fallback.branch, fallback.remote_url, fallback.dirty) == (
        binary.commit,
        binary.branch,
        binary.remote_url,
        binary.dirty,
    )
    assert binary.diff_written is False  # no file was asked for
    assert fallback.diff_unavailable is None and fallback.warnings == ()
    asked = read_git_info(repo, repo.parent / "diff")
    assert asked is not None and asked.diff_unavailable == "git binary not found"
    assert not (repo.parent / "diff").exists()  # dulwich: recorded as unavailable, never guessed
    assert len(asked.warnings) == 1 and "install git" in asked.warnings[0]
    assert asked.to_json(".snapshot/git.diff")["diff_file"] is None


def test_untracked_files_cost_a_fixed_number_of_git_calls_and_leave_the_index_alone(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(300):
        (repo / f"new{i}.txt").write_text(f"{i}\n")
    index_before = (repo / ".git" / "index").read_bytes()
    calls: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        calls.append(args)
        return real_run(args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(gitcommand.subprocess, "run", counting_run)
    info = read_git_info(repo, repo.parent / "diff")
    assert info is not None and info.diff_written
    assert (repo.parent / "diff").read_bytes().count(b"new file mode") == 300
    assert len(calls) <= 5
    assert (repo / ".git" / "index").read_bytes() == index_before
    assert "?? new0.txt" in git(repo, "status", "--short")


def counted_git_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[bytes]]:
    calls: list[list[bytes]] = []
    real_run = subprocess.run

    def counting_run(args: list[bytes], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        calls.append(args)
        return real_run(args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(gitcommand.subprocess, "run", counting_run)
    return calls


def test_a_clean_tree_costs_two_git_calls(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    git(lib, "init", "-q", "-b", "main")
    (lib / "l.txt").write_text("l\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-q", "-m", "lib")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    git(repo, "commit", "-q", "-m", "lib")
    calls = counted_git_calls(monkeypatch)
    info = read_git_info(repo, tmp_path / "diff")
    assert info is not None and not info.dirty and info.submodules == ()
    assert (tmp_path / "diff").read_bytes() == b""
    # status and the remote's URL: a clean tree's diff is known to be empty, a clean
    # submodule needs no call of its own.
    assert [call[1:2] for call in calls] == [[b"status"], [b"ls-remote"]]


@pytest.mark.parametrize("backend", ["binary", "dulwich"])
@pytest.mark.parametrize("given", ["relative", "absolute", "symlink-inside", "nested"])
def test_excluded_directories_are_no_change_of_the_project(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, backend: str
) -> None:
    project = repo / "project"
    project.mkdir()
    (project / "main.py").write_text("MAIN = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project")
    store = project / ("data/runs" if given == "nested" else "snapshots")
    (store / "one" / ".snapshot").mkdir(parents=True)
    (store / "one" / "main.py").write_text("MAIN = 1\n")
    (store / "one" / ".snapshot" / "git.diff").write_text("an earlier diff\n")
    excluded = {
        "relative": Path("snapshots"),
        "absolute": store,
        "symlink-inside": Path("snaps"),
        "nested": Path("data/runs"),
    }[given]
    if given == "symlink-inside":
        (project / "snaps").symlink_to("snapshots")
    if backend == "dulwich":
        monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    info = read_git_info(project, tmp_path / "diff", excluded=[excluded])
    assert info is not None and info.dirty is False
    unasked = read_git_info(project, excluded=[excluded])  # no diff asked: the same facts
    assert unasked is not None and (unasked.commit, unasked.dirty) == (info.commit, False)
    (project / "main.py").write_text("MAIN = 2\n")
    (project / "new.py").write_text("NEW = 1\n")
    info = read_git_info(project, tmp_path / "diff", excluded=[excluded])
    assert info is not None and info.dirty is True
    if backend == "binary":
        diff = (tmp_path / "diff").read_bytes()
        assert diff.count(b"diff --git") == 2 and b"+MAIN = 2" in diff and b"+NEW = 1" in diff


@pytest.mark.parametrize("backend", ["binary", "dulwich"])
def test_callers_repository_variables_are_ignored(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "elsewhere")
    (other / "o.txt").write_text("o\n")
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "other")
    (other / "o.txt").write_text("changed\n")
    commit = git(repo, "rev-parse", "HEAD").strip()
    for name, value in {
        "GIT_DIR": other / ".git",
        "GIT_WORK_TREE": other,
        "GIT_INDEX_FILE": other / ".git" / "index",
        "GIT_COMMON_DIR": other / ".git",
        "GIT_OBJECT_DIRECTORY": other / ".git" / "objects",
    }.items():
        monkeypatch.setenv(name, str(value))
    if backend == "dulwich":
        monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    info = read_git_info(repo, tmp_path / "diff")
    assert info is not None
    assert (info.commit, info.branch, info.dirty) == (commit, "main", False)
    if backend == "binary":
        assert (tmp_path / "diff").read_bytes() == b""


def submodule(repo: Path, upstream: Path, path: str) -> Path:
    upstream.mkdir(parents=True)
    git(upstream, "init", "-q", "-b", "main")
    (upstream / "s.txt").write_text("s\n")
    git(upstream, "add", "-A")
    git(upstream, "commit", "-q", "-m", "s")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(upstream), path)
    git(repo, "commit", "-q", "-m", path)
    return repo / path


def test_submodules_each_get_their_record_and_diff(repo: Path, tmp_path: Path) -> None:
    moved = submodule(repo, tmp_path / "up-moved", "libs/moved")
    dirty = submodule(repo, tmp_path / "up-dirty", "libs/dirty")
    submodule(repo, tmp_path / "up-clean", "libs/clean")
    (moved / "s.txt").write_text("s2\n")
    git(moved, "commit", "-q", "-am", "moved on")
    (dirty / "s.txt").write_text("edited\n")
    (dirty / "new.txt").write_text("untracked\n")
    (dirty / "runs").mkdir()
    (dirty / "runs" / "old.diff").write_text("an earlier snapshot\n")
    target = tmp_path / "meta" / "git.diff"
    target.parent.mkdir()
    info = read_git_info(repo, target, excluded=[Path("libs/dirty/runs")])
    assert info is not None and info.dirty and info.diff_unavailable is None
    assert info.submodules is not None
    assert [(s.path, s.commit, s.dirty, s.diff_name) for s in info.submodules] == [
        (
            "libs/dirty",
            git(dirty, "rev-parse", "HEAD").strip(),
            True,
            "git/submodules/libs%2Fdirty.diff",
        ),
        ("libs/moved", git(moved, "rev-parse", "HEAD").strip(), False, None),
    ]
    diff = (tmp_path / "meta" / "git" / "submodules" / "libs%2Fdirty.diff").read_text()
    assert "+edited" in diff and "+untracked" in diff and "earlier snapshot" not in diff
    assert diff.startswith("diff --git a/new.txt b/new.txt")  # paths inside the submodule
    as_json = info.to_json(".snapshot/git.diff")["submodules"]
    assert as_json[0]["diff_file"] == ".snapshot/git/submodules/libs%2Fdirty.diff"
    assert as_json[1]["diff_file"] is None


def test_a_failed_diff_is_said_and_leaves_no_partial_file(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = gitcommand.Git.run

    def failing_diff(
        self: gitcommand.Git, cwd: Path, *args: str, **kwargs: Any
    ) -> subprocess.CompletedProcess[bytes]:
        if args[0] != "diff":
            return real_run(self, cwd, *args, **kwargs)
        kwargs["stdout"].write(b"diff --git a/a.txt b/a.txt\n")  # cut short
        return subprocess.CompletedProcess(args, 128, None, b"fatal: out of memory\n")

    monkeypatch.setattr(gitcommand.Git, "run", failing_diff)
    (repo / "a.txt").write_text("edited\n")
    info = read_git_info(repo, tmp_path / "diff")
    assert info is not None and info.dirty and not info.diff_written
    assert info.diff_unavailable == "git diff failed: fatal: out of memory"
    assert info.warnings == ("git.diff is incomplete: git diff failed: fatal: out of memory",)
    assert not (tmp_path / "diff").exists()


def test_a_same_second_same_size_edit_is_in_the_diff(repo: Path, tmp_path: Path) -> None:
    # git trusts an index entry whose stat matches, unless the entry is "racily clean": its
    # mtime is not older than the index file's own. A throwaway index given a new mtime
    # loses that protection, and an edit made in the index's second with the size kept
    # vanished from git.diff (seen on a slow CI machine).
    git(repo, "config", "core.trustctime", "false")  # the edit keeps the stat git compares
    (repo / "main.py").write_text("MAIN = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main")
    then = 1_600_000_000
    os.utime(repo / "main.py", (then, then))
    git(repo, "update-index", "--refresh")
    os.utime(repo / ".git" / "index", (then, then))
    (repo / "main.py").write_text("MAIN = 2\n")
    os.utime(repo / "main.py", (then, then))
    (repo / "new.py").write_text("NEW = 1\n")  # an untracked file: the throwaway index is used
    info = read_git_info(repo, tmp_path / "diff")
    assert info is not None and info.dirty is True
    diff = (tmp_path / "diff").read_bytes()
    assert diff.count(b"diff --git") == 2 and b"+MAIN = 2" in diff and b"+NEW = 1" in diff
