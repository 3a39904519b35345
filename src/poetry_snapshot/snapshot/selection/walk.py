"""The filesystem walk: the base outside git, and the search for include matches in git.

Outside git the base is everything except VCS metadata, caches, build output and virtualenvs:
machine-specific or rebuilt, and no run should read them. The walk never follows a symlink.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from poetry_snapshot.snapshot.selection.collector import Collector
    from poetry_snapshot.snapshot.selection.rules import Rules

# Never selected outside git: VCS metadata, caches and tool state that no run should read.
_DEFAULT_EXCLUDED_NAMES = frozenset(
    {b".git", b"__pycache__", b".pytest_cache", b".mypy_cache", b".ruff_cache", b".tox", b".nox"}
)
_DEFAULT_EXCLUDED_AT_ROOT = frozenset({b"build", b"dist"})  # build output, directories only


def walk_tree(rules: Rules, collector: Collector, *, base: bool) -> None:
    """Walk the tree under the root without following symlinks.

    base=True selects by the filesystem defaults and include patterns (outside git); base=False
    only looks for include matches the git listing did not already select. Directories the
    defaults leave out are entered only to look for include matches, and failing to read them
    is a warning, not an error: they are often caches or volumes owned by someone else.
    """
    includes = rules.includes
    enters = rules.enters
    selects = rules.selects
    selected = None if base else {os.fsencode(e.path) for e in collector.entries}
    todo: list[tuple[bytes, bool]] = [(b"", base)]
    while todo:
        directory, selecting = todo.pop()
        entries = collector.scan(directory, required=selecting)
        if directory and selecting and any(e.name == b"pyvenv.cfg" for e in entries):
            selecting = False  # a virtualenv: machine-specific, rebuilt from the lock
        if not selecting and not includes:
            continue
        for entry in entries:
            name = entry.name
            rel = directory + b"/" + name if directory else name
            if name == b".git":
                continue
            if entry.is_dir(follow_symlinks=False):
                if not enters(rel):
                    continue
                inner = selecting and not _default_excluded_dir(directory, name)
                if inner or includes:
                    todo.append((rel, inner))
            elif selects(rel, selecting and not name.endswith(b".egg-info")) and (
                selected is None or rel not in selected
            ):
                collector.add_dir_entry(rel, entry)


def _default_excluded_dir(parent: bytes, name: bytes) -> bool:
    return (
        name in _DEFAULT_EXCLUDED_NAMES
        or name.endswith(b".egg-info")
        or (not parent and name in _DEFAULT_EXCLUDED_AT_ROOT)
    )
