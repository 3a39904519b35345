"""Which files belong in a snapshot: git's view of the project, or the tree minus the usual clutter.

In a git work tree the selection is what git sees: tracked files still on disk plus untracked
files no ignore rule hides (nested `.gitignore`, `!` re-includes, `.git/info/exclude`,
`core.excludesFile`), submodules and nested repositories each by their own rules. The `git`
binary answers when it is on PATH (git_binary.py); otherwise dulwich (Poetry ships it) reads the
index and a walk applies the same rules (git_dulwich.py). Patterns are always matched by
`gitignore`, git's own rules: dulwich's matching changed across the releases Poetry 2.x brings,
so dulwich only reads the index, the config and the repository. Outside git, everything is
taken except VCS metadata, caches, build output and virtualenvs (walk.py).

On top of that base, `SelectionRules.include` brings back files the base left out, `exclude`
removes files and wins over `include` (write `data/*` then `!data/small.csv` to keep one file
of an excluded directory), and `excluded_dirs` and a root `.snapshot` are never entered: every
backend asks rules.py, the one place these are decided.

This package decides and never copies. Paths stay bytes until they become `SelectedEntry.path`
(os.fsdecode, so names that are not UTF-8 survive the round trip), and every file is stat'ed
once: from the walk's DirEntry, or one lstat per path git lists (collector.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from poetry_snapshot.errors import SelectionError
from poetry_snapshot.snapshot.git import Git
from poetry_snapshot.snapshot.selection.collector import Collector
from poetry_snapshot.snapshot.selection.git_binary import GitBinary
from poetry_snapshot.snapshot.selection.git_dulwich import list_with_dulwich
from poetry_snapshot.snapshot.selection.repository import work_tree_of
from poetry_snapshot.snapshot.selection.rules import Rules
from poetry_snapshot.snapshot.selection.types import TOO_BIG_BYTES
from poetry_snapshot.snapshot.selection.types import TOO_BIG_FILES
from poetry_snapshot.snapshot.selection.types import SelectedEntry
from poetry_snapshot.snapshot.selection.types import Selection
from poetry_snapshot.snapshot.selection.types import SelectionRules
from poetry_snapshot.snapshot.selection.types import SkippedEntry
from poetry_snapshot.snapshot.selection.walk import walk_tree

__all__ = [
    "GIT_MODES",
    "TOO_BIG_BYTES",
    "TOO_BIG_FILES",
    "SelectedEntry",
    "Selection",
    "SelectionRules",
    "SkippedEntry",
    "select",
]

GIT_MODES = ("auto", "binary", "dulwich", "off")

_NO_RULES = SelectionRules()


def select(root: Path, rules: SelectionRules = _NO_RULES, *, git: str = "auto") -> Selection:
    """Decide which files under `root` a snapshot holds; reads the tree, changes nothing.

    git: "auto" (in a work tree the git binary when it is on PATH, else dulwich; outside one
    the filesystem rules), "binary" or "dulwich" (that backend in a work tree, the filesystem
    rules outside), or "off" (the filesystem rules everywhere). `root` may lie below the top of
    its work tree; paths are then relative to `root` and only files under it are selected.
    Selection.root is `root` resolved. Raises SelectionError for what the user must fix: an
    unreadable directory, a repository git cannot read, an invalid pattern.
    """
    if git not in GIT_MODES:
        raise ValueError(f"git must be one of {', '.join(GIT_MODES)}, not {git!r}")
    real_root = os.path.realpath(root)
    if not Path(real_root).is_dir():
        raise SelectionError(f"Cannot select files: {root} is not a directory.")
    root_b = os.fsencode(real_root)
    compiled = Rules.of(root_b, rules)
    collector = Collector(root_b)
    work_tree = None if git == "off" else work_tree_of(root_b)

    backend: str | None = None
    if work_tree is None:
        walk_tree(compiled, collector, base=True)
    else:
        binary = Git.find() if git in ("auto", "binary") else None
        if git == "binary" and binary is None:
            raise SelectionError(
                "Cannot select files with git: no `git` on PATH.",
                "Install git, or select with dulwich instead.",
            )
        if binary is not None:
            backend = "binary"
            lister = GitBinary(binary, compiled, collector)
            lister.list_unit(root_b, b"")
            if root_b != work_tree and lister.ignores(real_root):
                collector.warnings.append(
                    f"{real_root} lies in a directory its git repository ignores: only files"
                    " git tracks there are selected (--include brings back others)"
                )
        else:
            backend = "dulwich"
            start = os.path.relpath(real_root, os.fsdecode(work_tree))
            list_with_dulwich(
                work_tree, b"" if start == "." else os.fsencode(start), b"", compiled, collector
            )
        if compiled.includes:
            walk_tree(compiled, collector, base=False)

    return collector.finish(
        Path(real_root), "filesystem" if work_tree is None else "git", backend, compiled.excluded
    )
