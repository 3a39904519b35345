"""What git says about the project tree: commit, branch, remote, dirty flag, and the diff.

The `git` binary answers when it is installed; otherwise dulwich (which Poetry ships) gives
commit, branch, remote and the dirty flag, and the diff is recorded as unavailable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.parse import urlunsplit


@dataclass(frozen=True)
class GitInfo:
    commit: str | None  # None in a repository without commits
    branch: str | None  # None on a detached HEAD
    remote_url: str | None  # credentials removed
    dirty: bool
    diff: bytes | None  # `git diff --binary HEAD` plus untracked files; None if unavailable

    def to_json(self, diff_file: str | None) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "branch": self.branch,
            "remote_url": self.remote_url,
            "dirty": self.dirty,
            "diff_file": diff_file,
        }


def read_git_info(root: Path) -> GitInfo | None:
    """Git facts for the work tree holding `root`, or None outside git."""
    git = shutil.which("git")
    if git is not None:
        return _from_binary(git, root)
    return _from_dulwich(root)


def strip_credentials(url: str) -> str:
    """`https://user:token@host/repo` -> `https://host/repo`; scp-like `git@host:repo` stays."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    # ssh usernames name an account, not a secret; anything with a password loses it all.
    if parts.scheme in ("ssh", "git+ssh") and parts.password is None:
        host = f"{parts.username}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _git(git: str, root: Path, *args: str) -> bytes | None:
    result = subprocess.run(
        [git, *args],
        cwd=root,
        capture_output=True,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
    )
    return result.stdout if result.returncode == 0 else None


def _from_binary(git: str, root: Path) -> GitInfo | None:
    top = _git(git, root, "rev-parse", "--show-toplevel")
    if top is None:
        return None
    commit = _text(_git(git, root, "rev-parse", "--verify", "-q", "HEAD"))
    branch = _text(_git(git, root, "symbolic-ref", "-q", "--short", "HEAD"))
    remote = (
        _text(_git(git, root, "config", "--get", f"branch.{branch}.remote")) if branch else None
    )
    url = _text(_git(git, root, "remote", "get-url", remote or "origin"))
    # "-- ." limits everything to the project's subtree of a larger repository.
    status = _git(git, root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".")
    dirty = bool(status)
    diff = b""
    if commit is not None:
        # --binary: the diff applies back exactly, binary files included.
        diff = (
            _git(git, root, "diff", "--binary", "--no-color", "--no-ext-diff", "HEAD", "--", ".")
            or b""
        )
    for path in _untracked(status or b""):
        # An untracked file as a diff against nothing; `git diff --no-index` exits 1 on difference.
        result = subprocess.run(
            [git, "diff", "--binary", "--no-color", "--no-index", "--", os.devnull, path],
            cwd=Path(os.fsdecode(top.strip())),
            capture_output=True,
        )
        diff += result.stdout
    return GitInfo(commit, branch, strip_credentials(url) if url else None, dirty, diff)


def _untracked(status: bytes) -> list[str]:
    entries = status.split(b"\0")
    return [os.fsdecode(e[3:]) for e in entries if e.startswith(b"?? ")]


def _from_dulwich(root: Path) -> GitInfo | None:
    from dulwich import porcelain
    from dulwich.errors import NotGitRepository
    from dulwich.repo import Repo

    try:
        repo = Repo.discover(str(root))
    except NotGitRepository:
        return None
    with repo:
        try:
            commit: str | None = repo.head().decode("ascii")
        except KeyError:
            commit = None
        ref = repo.refs.read_ref(b"HEAD") or b""  # type: ignore[arg-type]  # Ref is bytes
        branch = (
            ref[len(b"ref: refs/heads/") :].decode()
            if ref.startswith(b"ref: refs/heads/")
            else None
        )
        config = repo.get_config()
        try:
            url: str | None = config.get((b"remote", b"origin"), b"url").decode()
        except KeyError:
            url = None
        status = porcelain.status(repo)
        dirty = bool(any(status.staged.values()) or status.unstaged or status.untracked)
    return GitInfo(commit, branch, strip_credentials(url) if url else None, dirty, None)


def _text(output: bytes | None) -> str | None:
    if output is None:
        return None
    text = output.decode("utf-8", "replace").strip()
    return text or None
