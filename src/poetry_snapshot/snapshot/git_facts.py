"""What git says about the project tree: commit, branch, remote, dirty flag, and the diffs.

The `git` binary answers when it is installed (through gitcommand, so that nothing in the
caller's environment points it at another repository); otherwise dulwich (which Poetry ships)
gives commit, branch, remote and the dirty flag, and the diff is recorded as unavailable.

The facts are about the project only: its subtree of the repository, minus the directories
it is told to leave out (the snapshot base dir, when it lies inside the project: otherwise
every snapshot would be a change of the project, and each diff would hold all earlier ones).
Submodules that changed get a record and a diff of their own, nested ones too.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import NamedTuple
from urllib.parse import quote

from poetry_snapshot.snapshot.git import Git
from poetry_snapshot.snapshot.layout import SUBMODULE_DIFFS

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Sequence

    from dulwich.repo import Repo

# Beside git.diff: one diff per changed submodule, named after its path.
NO_GIT_BINARY = "git binary not found"


@dataclass(frozen=True)
class SubmoduleInfo:
    """A submodule whose checkout differs from what the superproject's HEAD records."""

    path: str  # relative to the top of the repository's work tree, as in git.diff
    commit: str | None  # checked out in the submodule
    dirty: bool  # changed or untracked files inside it (nested submodules included)
    diff_name: str | None  # relative to git.diff's directory; None when clean or not written


@dataclass(frozen=True)
class GitInfo:
    commit: str | None  # None in a repository without commits
    branch: str | None  # None on a detached HEAD
    remote_url: str | None  # user info, query and fragment removed
    dirty: bool
    diff_written: bool  # whether the diff against HEAD was written where read_git_info was told
    # Changed submodules, each before the ones nested in it; None when not examined (dulwich).
    submodules: tuple[SubmoduleInfo, ...] | None = ()
    diff_unavailable: str | None = None  # why a diff that was asked for is missing

    @property
    def warnings(self) -> tuple[str, ...]:
        """One line for the user when a diff could not be recorded."""
        if self.diff_unavailable is None:
            return ()
        if self.diff_unavailable == NO_GIT_BINARY:
            return (
                "No git on PATH: git.diff is not recorded, so uncommitted changes are only"
                " in the copied files; install git to record them",
            )
        return (f"git.diff is incomplete: {self.diff_unavailable}",)

    def to_json(self, diff_file: str) -> dict[str, Any]:
        where = posixpath.dirname(diff_file)
        return {
            "commit": self.commit,
            "branch": self.branch,
            "remote_url": self.remote_url,
            "dirty": self.dirty,
            "diff_file": diff_file if self.diff_written else None,
            "diff_unavailable": self.diff_unavailable,
            "submodules": None
            if self.submodules is None
            else [
                {
                    "path": s.path,
                    "commit": s.commit,
                    "dirty": s.dirty,
                    "diff_file": None
                    if s.diff_name is None
                    else posixpath.join(where, s.diff_name),
                }
                for s in self.submodules
            ],
        }


def read_git_info(
    root: Path, diff_file: Path | None = None, *, excluded: Iterable[Path] = ()
) -> GitInfo | None:
    """Git facts for the work tree holding `root`, or None outside git.

    With `diff_file`, the diff of the project's subtree against HEAD (untracked files included,
    binary-safe, as `git apply` takes it back) is streamed there: it can be as big as the
    untracked files themselves, so it never sits in memory. Each changed submodule's diff goes
    to SUBMODULE_DIFFS beside it. `excluded` directories (absolute, or relative to `root`;
    those outside it do not matter) are no part of the project: not in the dirty flag, not in
    any diff.
    """
    real_root = os.path.realpath(root)
    leave_out = _excluded_paths(real_root, excluded)
    git = Git.find()
    if git is not None:
        return _from_binary(git, real_root, leave_out, diff_file)
    return _from_dulwich(real_root, leave_out, diff_file is not None)


def strip_credentials(url: str) -> str:
    """The URL without user info, query or fragment, wherever it may hide a secret:
    `https://user:token@host/r?access_token=x#f` -> `https://host/r`. scp-like
    `git@host:repo` becomes `host:repo` (the same rule for every URL); local paths stay."""
    scheme, separator, rest = url.partition("://")
    if separator:
        cut = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
        host = rest[:cut].rpartition("@")[2]
        return f"{scheme}://{host}{_without_query(rest[cut:])}"
    colon, slash = url.find(":"), url.find("/")
    if colon > 0 and (slash < 0 or colon < slash):  # git's test for `[user@]host:path`
        host, _, path = url.partition(":")
        return f"{host.rpartition('@')[2]}:{_without_query(path)}"
    return url


def _without_query(path: str) -> str:
    for mark in "?#":
        path = path.partition(mark)[0]
    return path


def _excluded_paths(real_root: str, excluded: Iterable[Path]) -> tuple[str, ...]:
    """Real absolute paths of the excluded directories inside the root, as selection decides
    them: resolved, and as written (a symlink inside the project that leads to the base
    directory is an entry of its own)."""
    found: set[str] = set()
    for directory in excluded:
        given = Path(real_root, directory)
        resolved = os.path.realpath(given)
        if resolved.startswith(real_root + os.sep):  # else selection copies the link, if any
            found.add(resolved)
            written = os.path.join(os.path.realpath(given.parent), given.name)
            if written.startswith(real_root + os.sep):
                found.add(written)
    return tuple(sorted(found))


# --- the git binary --------------------------------------------------------------------------


class _Status(NamedTuple):
    commit: str | None
    branch: str | None
    dirty: bool
    untracked: bool
    submodules: list[bytes]  # top-relative paths of submodules git reports as changed


class _Unit(NamedTuple):
    """One repository to describe: the project's, or a submodule's."""

    directory: str  # real absolute path git runs in
    pathspecs: tuple[bytes, ...]  # the subtree, minus the excluded directories


def _unit(directory: str, excluded: Sequence[str]) -> _Unit:
    pathspecs = [b"."]
    for path in excluded:
        if path.startswith(directory + os.sep):
            inside = os.fsencode(os.path.relpath(path, directory))
            pathspecs.append(b":(exclude,literal)" + inside)
    return _Unit(directory, tuple(pathspecs))


def _from_binary(
    git: Git, real_root: str, excluded: Sequence[str], diff_file: Path | None
) -> GitInfo | None:
    unit = _unit(real_root, excluded)
    status = _status(git, unit)
    if status is None:
        return None  # not a work tree
    # The URL of the branch's remote, else origin's; never contacts it.
    url = _text(git.output(real_root, "ls-remote", "--get-url"))
    writer = _DiffWriter(git, excluded, diff_file)
    written = writer.write(unit, status, diff_file)
    return GitInfo(
        status.commit,
        status.branch,
        strip_credentials(url) if url else None,
        status.dirty,
        written,
        tuple(writer.submodules),
        writer.failure,
    )


def _status(git: Git, unit: _Unit) -> _Status | None:
    # One status call answers commit, branch, dirtiness and which submodules changed; the
    # pathspecs keep to the project's subtree of a larger repository, without the excluded
    # directories; "normal" untracked listing names an untracked directory once instead of
    # every file in it. Every call here is on the path of each snapshot.
    output = git.output(
        unit.directory,
        "status",
        "--porcelain=v2",
        "--branch",
        "-z",
        "--untracked-files=normal",
        "--",
        *unit.pathspecs,
    )
    if output is None:
        return None
    commit: str | None = None
    branch: str | None = None
    dirty = untracked = False
    submodules: list[bytes] = []
    records = iter(output.split(b"\0"))
    for record in records:
        if record.startswith(b"# branch.oid "):
            oid = record[len(b"# branch.oid ") :].decode()
            commit = None if oid == "(initial)" else oid
        elif record.startswith(b"# branch.head "):
            head = record[len(b"# branch.head ") :].decode("utf-8", "replace")
            branch = None if head == "(detached)" else head
        elif record.startswith(b"? "):
            dirty = untracked = True
        elif record[:2] in (b"1 ", b"2 ", b"u "):
            dirty = True  # changed, renamed or unmerged
            # `1 XY sub mH mI mW hH hI path`, `2` has one field more, `u` three more; a
            # submodule's `sub` is `S<c><m><u>`: commit changed, tracked changes, untracked.
            fields = record.split(b" ", {b"1": 8, b"2": 9, b"u": 10}[record[:1]])
            if fields[2].startswith(b"S"):
                submodules.append(fields[-1])
            if record.startswith(b"2 "):
                next(records, None)  # a rename's source path: a record of its own
    return _Status(commit, branch, dirty, untracked, submodules)


class _DiffWriter:
    """Writes the diff of one repository and, recursively, of its changed submodules."""

    def __init__(self, git: Git, excluded: Sequence[str], diff_file: Path | None) -> None:
        self.git = git
        self.excluded = excluded
        self.submodule_dir = None if diff_file is None else diff_file.parent / SUBMODULE_DIFFS
        self.submodules: list[SubmoduleInfo] = []
        self.failure: str | None = None

    def write(self, unit: _Unit, status: _Status, target: Path | None, prefix: str = "") -> bool:
        """Write `unit`'s diff to `target` (when given); describe its changed submodules.
        `prefix` is the unit's path from the top of the project's repository."""
        top: str | None = None
        index: str | None = None
        if status.untracked or status.submodules:
            # Relative to the unit (git < 2.31 has no --path-format); worktrees have their own.
            found = self.git.output(
                unit.directory, "rev-parse", "--show-toplevel", "--git-path", "index"
            )
            lines = (found or b"").decode("utf-8", "surrogateescape").splitlines()
            if len(lines) == 2:
                top = lines[0]
                index = os.path.join(unit.directory, lines[1])
        written = False
        if target is not None:
            if not status.dirty:
                target.write_bytes(b"")  # nothing to ask git: the diff is empty
                written = True
            else:
                written = self._diff(unit, status, index, target, prefix)
        if status.submodules and top is None:
            self._failed(prefix, "git rev-parse failed; changed submodules not recorded")
        elif top is not None:
            for path in map(os.fsdecode, status.submodules):
                self._submodule(os.path.join(top, path), prefix + path)
        return written

    def _submodule(self, directory: str, path: str) -> None:
        # Removed, or not checked out (git would then describe the superproject): git.diff
        # has the superproject's side of it.
        if not os.path.lexists(os.path.join(directory, ".git")):
            return
        unit = _unit(directory, self.excluded)
        status = _status(self.git, unit)
        if status is None:
            return
        target = None
        if self.submodule_dir is not None and status.dirty:
            self.submodule_dir.mkdir(parents=True, exist_ok=True)
            target = self.submodule_dir / _diff_name(path)
        record = len(self.submodules)  # before the nested ones: restored in this order
        self.submodules.append(SubmoduleInfo(path, status.commit, status.dirty, None))
        if self.write(unit, status, target, path + "/") and target is not None:
            diff_name = posixpath.join(SUBMODULE_DIFFS, target.name)
            self.submodules[record] = replace(self.submodules[record], diff_name=diff_name)

    def _diff(
        self, unit: _Unit, status: _Status, index: str | None, target: Path, where: str
    ) -> bool:
        """Stream `git diff --binary` of the unit against HEAD, untracked files included.

        Untracked files are marked intent-to-add in a throwaway copy of the index
        (GIT_INDEX_FILE), so one diff covers them all as new files, and the repository's own
        index is untouched.
        """
        try:
            if self._run_diff(unit, status, index, target, where):
                return True
        except OSError as e:  # git could not be started after all
            self._failed(where, f"cannot run git: {e.strerror}")
        target.unlink(missing_ok=True)  # a partial diff would restore a tree that never was
        return False

    def _run_diff(
        self, unit: _Unit, status: _Status, index: str | None, target: Path, where: str
    ) -> bool:
        git = self.git
        with tempfile.TemporaryDirectory(prefix="poetry-snapshot-index-") as scratch:
            env: dict[str, str] = {}
            if status.untracked:
                if index is None:
                    return self._failed(where, "git rev-parse failed")
                copy = os.path.join(scratch, "index")
                if os.path.exists(index):
                    # copy2 keeps the index's mtime: git rehashes an entry whose stat matches
                    # only when it is "racily clean" (mtime not older than the index file's),
                    # so a fresh mtime would hide a same-second edit that kept the size.
                    shutil.copy2(index, copy)
                env["GIT_INDEX_FILE"] = copy
                added = git.run(
                    unit.directory,
                    "add",
                    "--intent-to-add",
                    "--all",
                    "--",
                    *unit.pathspecs,
                    env=env,
                )
                if added.returncode != 0:
                    return self._failed(where, _message("git add --intent-to-add", added.stderr))
            base = status.commit or _text(
                git.output(unit.directory, "hash-object", "-t", "tree", os.devnull)
            )
            if base is None:
                return self._failed(where, "git hash-object failed")
            with target.open("wb") as stream:
                diff = git.run(
                    unit.directory,
                    "diff",
                    "--binary",
                    "--full-index",  # blob ids that stay unambiguous as the repository grows
                    "--src-prefix=a/",  # what `git apply` expects, whatever diff.noprefix says
                    "--dst-prefix=b/",
                    "--no-color",
                    "--no-ext-diff",
                    base,
                    "--",
                    *unit.pathspecs,
                    env=env,
                    stdout=stream,
                )
        if diff.returncode != 0:
            return self._failed(where, _message("git diff", diff.stderr))
        return True

    def _failed(self, where: str, reason: str) -> bool:
        if self.failure is None:
            self.failure = f"{reason} (in {where.rstrip('/')})" if where else reason
        return False


def _diff_name(path: str) -> str:
    """A file name for a submodule's diff: its path with `/` and anything unusual
    percent-encoded, so that names never collide; a hash when that is too long a name."""
    raw = os.fsencode(path)
    name = quote(raw, safe="") + ".diff"
    return name if len(name) <= 200 else hashlib.sha256(raw).hexdigest() + ".diff"


def _message(what: str, stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "backslashreplace").strip().splitlines()
    return f"{what} failed: {lines[0]}" if lines else f"{what} failed"


# --- dulwich ---------------------------------------------------------------------------------


def _from_dulwich(real_root: str, excluded: Sequence[str], diff_wanted: bool) -> GitInfo | None:
    # An explicit path (and a Repo object) makes dulwich ignore GIT_DIR and its kin, as the
    # binary does through gitcommand.
    from dulwich import porcelain
    from dulwich.errors import NotGitRepository
    from dulwich.repo import Repo

    try:
        repo = Repo.discover(real_root)
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
        # Newer dulwich refreshes the index's stat cache unless told not to; git does not
        # with GIT_OPTIONAL_LOCKS=0, and neither may we.
        if "optional_locks" in inspect.signature(porcelain.status).parameters:
            status = porcelain.status(repo, optional_locks=False)
        else:
            status = porcelain.status(repo)
        project = _DulwichProject(repo, real_root, excluded)
        changed = [*(p for paths in status.staged.values() for p in paths), *status.unstaged]
        dirty = any(map(project.owns, changed)) or any(map(project.has_untracked, status.untracked))
    return GitInfo(
        commit,
        branch,
        strip_credentials(url) if url else None,
        dirty,
        False,
        None,
        NO_GIT_BINARY if diff_wanted else None,
    )


class _DulwichProject:
    """Which of the top-relative paths dulwich's status reports are the project's: under the
    root, not under an excluded directory, as the binary's pathspecs decide."""

    def __init__(self, repo: Repo, real_root: str, excluded: Sequence[str]) -> None:
        self.repo = repo
        self.top = os.fsencode(os.path.realpath(repo.path))
        self.root = _relative(self.top, real_root)
        self.excluded = {_relative(self.top, x) for x in excluded}

    def owns(self, path: bytes | str) -> bool:
        p = os.fsencode(path).rstrip(b"/")
        if self.root and not (_under(p, self.root) or _under(self.root, p)):
            return False  # outside the project (an untracked directory holding it counts)
        return not any(_under(p, x) for x in self.excluded)

    def has_untracked(self, path: bytes | str) -> bool:
        """dulwich names an untracked directory once: one that holds an excluded directory
        counts only when something else in it is neither excluded nor ignored."""
        if not self.owns(path):
            return False
        p = os.fsencode(path).rstrip(b"/")
        if not any(x.startswith(p + b"/") for x in self.excluded):
            return True
        from dulwich.ignore import IgnoreFilterManager

        ignores = IgnoreFilterManager.from_repo(self.repo)
        todo = [p]
        while todo:
            directory = todo.pop()
            try:
                with os.scandir(self.top + b"/" + directory) as it:
                    entries = list(it)
            except OSError:
                return True  # cannot tell: say dirty rather than clean
            for entry in entries:
                inner = directory + b"/" + entry.name
                if entry.name == b".git" or inner in self.excluded:
                    continue
                is_dir = entry.is_dir(follow_symlinks=False)
                if ignores.is_ignored(os.fsdecode(inner) + ("/" if is_dir else "")):
                    continue
                if not is_dir:
                    return True
                todo.append(inner)
        return False


def _relative(top: bytes, path: str) -> bytes:
    relative = os.path.relpath(os.fsencode(path), top)
    return b"" if relative == b"." else relative.replace(os.sep.encode(), b"/")


def _under(path: bytes, directory: bytes) -> bool:
    return path == directory or path.startswith(directory + b"/")


def _text(output: bytes | None) -> str | None:
    if output is None:
        return None
    text = output.decode("utf-8", "replace").strip()
    return text or None
