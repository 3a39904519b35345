"""What git says about the project tree: commit, branch, remote, dirty flag, and the diff.

The `git` binary answers when it is installed; otherwise dulwich (which Poetry ships) gives
commit, branch, remote and the dirty flag, and the diff is recorded as unavailable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
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
    diff_written: bool  # whether the diff against HEAD was written where read_git_info was told

    def to_json(self, diff_file: str) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "branch": self.branch,
            "remote_url": self.remote_url,
            "dirty": self.dirty,
            "diff_file": diff_file if self.diff_written else None,
        }


def read_git_info(root: Path, diff_file: Path | None = None) -> GitInfo | None:
    """Git facts for the work tree holding `root`, or None outside git.

    With `diff_file`, the diff of the project's subtree against HEAD (untracked files included,
    binary-safe, as `git apply` takes it back) is streamed there: it can be as big as the
    untracked files themselves, so it never sits in memory.
    """
    git = shutil.which("git")
    if git is not None:
        return _from_binary(git, root, diff_file)
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


def _environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C", **(extra or {})}


def _git(git: str, root: Path, *args: str, env: dict[str, str] | None = None) -> bytes | None:
    result = subprocess.run([git, *args], cwd=root, capture_output=True, env=_environ(env))
    return result.stdout if result.returncode == 0 else None


def _from_binary(git: str, root: Path, diff_file: Path | None) -> GitInfo | None:
    # One status call answers commit, branch and dirtiness; "-- ." keeps to the project's
    # subtree of a larger repository; "normal" untracked listing names an untracked directory
    # once instead of every file in it. Every call here is on the path of each snapshot.
    status = _git(
        git,
        root,
        "status",
        "--porcelain=v2",
        "--branch",
        "-z",
        "--untracked-files=normal",
        "--",
        ".",
    )
    if status is None:
        return None  # not a work tree
    commit: str | None = None
    branch: str | None = None
    dirty = untracked = False
    records = iter(status.split(b"\0"))
    for record in records:
        if record.startswith(b"# branch.oid "):
            oid = record[len(b"# branch.oid ") :].decode()
            commit = None if oid == "(initial)" else oid
        elif record.startswith(b"# branch.head "):
            head = record[len(b"# branch.head ") :].decode("utf-8", "replace")
            branch = None if head == "(detached)" else head
        elif record.startswith(b"? "):
            dirty = untracked = True
        elif record.startswith(b"2 "):
            next(records, None)  # a rename's source path: a record of its own
            dirty = True
        elif record and not record.startswith(b"#"):
            dirty = True  # changed or unmerged
    # The URL of the branch's remote, else origin's; never contacts it.
    url = _text(_git(git, root, "ls-remote", "--get-url"))
    written = diff_file is not None and _write_diff(git, root, commit, untracked, diff_file)
    return GitInfo(commit, branch, strip_credentials(url) if url else None, dirty, written)


def _write_diff(git: str, root: Path, commit: str | None, untracked: bool, target: Path) -> bool:
    """Stream `git diff --binary` of the subtree against HEAD, untracked files included.

    Untracked files are marked intent-to-add in a throwaway copy of the index (GIT_INDEX_FILE),
    so one diff covers them all as new files, and the repository's own index is untouched.
    """
    diff = ["diff", "--binary", "--no-color", "--no-ext-diff"]
    with tempfile.TemporaryDirectory(prefix="poetry-snapshot-index-") as scratch:
        env: dict[str, str] = {}
        if untracked:
            # Relative to `root` (git < 2.31 has no --path-format); linked worktrees have their own.
            index = _text(_git(git, root, "rev-parse", "--git-path", "index"))
            copy = Path(scratch, "index")
            if index and (root / index).exists():
                shutil.copyfile(root / index, copy)
            env["GIT_INDEX_FILE"] = str(copy)
            if _git(git, root, "add", "--intent-to-add", "--all", "--", ".", env=env) is None:
                return False
        base = commit or _text(_git(git, root, "hash-object", "-t", "tree", os.devnull))
        if base is None:
            return False
        with target.open("wb") as stream:
            result = subprocess.run(
                [git, *diff, base, "--", "."],
                cwd=root,
                stdout=stream,
                stderr=subprocess.DEVNULL,
                env=_environ(env),
            )
    return result.returncode == 0


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
    return GitInfo(commit, branch, strip_credentials(url) if url else None, dirty, False)


def _text(output: bytes | None) -> str | None:
    if output is None:
        return None
    text = output.decode("utf-8", "replace").strip()
    return text or None
