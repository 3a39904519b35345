"""Where repositories are, decided as git decides: the work tree holding a directory, and
which directories below it are repositories of their own (submodules, nested repositories)."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Callable

GITLINK = 0o160000  # the index mode of a submodule: a commit of another repository, not a file


def is_repository(directory: bytes) -> bool:
    """Whether a directory is the work tree of a repository, as git decides for nested ones."""
    dotgit = directory + b"/.git"
    try:
        st = os.lstat(dotgit)
    except OSError:
        return False
    if stat.S_ISDIR(st.st_mode):
        return _has(dotgit + b"/HEAD", stat.S_ISREG) and _has(dotgit + b"/objects", stat.S_ISDIR)
    if stat.S_ISREG(st.st_mode):  # a submodule's or worktree's "gitdir: ..." pointer
        try:
            with open(dotgit, "rb") as f:
                return f.read(8) == b"gitdir: "
        except OSError:
            return False
    return False


def work_tree_of(directory: bytes) -> bytes | None:
    """The nearest directory at or above `directory` holding a repository, as git discovers it:
    a `.git` file counts even when it is broken (git then fails, and so do we), a `.git`
    directory only when it is a repository."""
    current = directory
    while True:
        dotgit = current + b"/.git"
        if _has(dotgit, stat.S_ISREG) or is_repository(current):
            return current
        if current == b"/":
            return None
        current = current.rpartition(b"/")[0] or b"/"


def _has(path: bytes, kind: Callable[[int], bool]) -> bool:
    try:
        return kind(os.stat(path).st_mode)
    except OSError:
        return False
