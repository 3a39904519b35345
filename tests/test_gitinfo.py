"""Git facts for the manifest, from the git binary and from dulwich, against real git repos."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

from poetry_snapshot import gitinfo
from poetry_snapshot.gitinfo import read_git_info
from poetry_snapshot.gitinfo import strip_credentials

if TYPE_CHECKING:
    from pathlib import Path


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
        ("ssh://git@host/r.git", "ssh://git@host/r.git"),
        ("ssh://git:secret@host/r.git", "ssh://host/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
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
    monkeypatch.setattr(gitinfo.shutil, "which", lambda name: None)
    fallback = read_git_info(repo)
    assert binary is not None and fallback is not None
    assert (fallback.commit, fallback.branch, fallback.remote_url, fallback.dirty) == (
        binary.commit,
        binary.branch,
        binary.remote_url,
        binary.dirty,
    )
    assert binary.diff_written is False  # no file was asked for
    assert read_git_info(repo, repo.parent / "diff") is not None
    assert not (repo.parent / "diff").exists()  # dulwich: recorded as unavailable, never guessed


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

    monkeypatch.setattr(gitinfo.subprocess, "run", counting_run)
    info = read_git_info(repo, repo.parent / "diff")
    assert info is not None and info.diff_written
    assert (repo.parent / "diff").read_bytes().count(b"new file mode") == 300
    assert len(calls) <= 6
    assert (repo / ".git" / "index").read_bytes() == index_before
    assert "?? new0.txt" in git(repo, "status", "--short")
