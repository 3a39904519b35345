"""The git-binary backend: a work tree listed by `git ls-files`, two runs per repository and
never one per file, through `Git`, the one way this tool runs git."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from poetry_snapshot.errors import SelectionError
from poetry_snapshot.snapshot.selection.collector import shown
from poetry_snapshot.snapshot.selection.collector import unreadable_directory
from poetry_snapshot.snapshot.selection.repository import GITLINK
from poetry_snapshot.snapshot.selection.repository import is_repository
from poetry_snapshot.snapshot.selection.repository import work_tree_of

if TYPE_CHECKING:
    from poetry_snapshot.snapshot.git import Git
    from poetry_snapshot.snapshot.selection.collector import Collector
    from poetry_snapshot.snapshot.selection.rules import Rules

_UNREADABLE_DIRECTORY = re.compile(rb"^warning: could not open directory '(.*)': (.*)$", re.M)


class GitBinary:
    """Lists a work tree with `git ls-files`: two runs per repository, never one per file."""

    def __init__(self, git: Git, rules: Rules, collector: Collector) -> None:
        self.git = git  # its English messages: the unreadable-directory warning is matched
        self.rules = rules
        self.collector = collector

    def ignores(self, directory: str) -> bool:
        """Whether the repository ignores `directory` itself. A project kept in an ignored
        directory of a larger repository (scratch space, build output) keeps only its tracked
        files: easy to miss, so worth one more git call when the project is not the top."""
        result = self.git.run(directory, "check-ignore", "-q", "--no-index", "--", ".")
        return result.returncode == 0

    def list_unit(self, directory: bytes, prefix: bytes) -> None:
        """Select what git lists under `directory`, whose root-relative path is `prefix`."""
        # `--stage` tells gitlinks (submodules) from files; `--recurse-submodules` would not
        # combine with `--others`, so submodules are listed by recursion like any repository.
        tracked: dict[bytes, int] = {}
        for record in self._ls_files(directory, prefix, "--stage"):
            info, _, path = record.partition(b"\t")
            tracked[path] = int(info.split(b" ", 1)[0], 8)
        untracked = self._ls_files(directory, prefix, "--others", "--exclude-standard")
        join = (prefix + b"/") if prefix else b""
        selects = self.rules.selects
        submodules = set()
        nested = set()
        for path, mode in tracked.items():
            if mode == GITLINK:
                submodules.add(path)
            elif selects(join + path, True):
                self.collector.add_listed(join + path)
        for path in untracked:
            if path.endswith(b"/"):  # a nested repository: git lists it and does not enter
                nested.add(path[:-1])
            elif selects(join + path, True):
                self.collector.add_listed(join + path)
        for path in sorted(submodules | nested):
            inner = directory + b"/" + path
            if not self.rules.enters(join + path) or not is_repository(inner):
                continue
            if path in nested and path not in submodules:
                self.collector.note_nested_repository(join + path)
            self.list_unit(inner, join + path)

    def _ls_files(self, directory: bytes, prefix: bytes, *options: str) -> list[bytes]:
        # Excluded directories are left out by pathspec as well, so git does not even walk them.
        pathspecs = [b"."]
        for excluded in sorted(self.rules.excluded):
            if not prefix or excluded.startswith(prefix + b"/"):
                inner = excluded[len(prefix) + 1 :] if prefix else excluded
                pathspecs.append(b":(exclude,literal)" + inner)
        try:
            result = self.git.run(directory, "ls-files", "-z", *options, "--", *pathspecs)
        except OSError as e:
            raise SelectionError(f"Cannot run {self.git.binary}: {e.strerror}.") from None
        if result.returncode != 0:
            message = result.stderr.decode("utf-8", "backslashreplace").strip()
            raise SelectionError(
                f"git cannot list the files of {shown(directory)}: "
                f"{message.splitlines()[0] if message else f'exit code {result.returncode}'}",
                "Fix the repository, or snapshot without git.",
            )
        unreadable = _UNREADABLE_DIRECTORY.search(result.stderr)
        if unreadable is not None:
            # git warns and goes on, leaving the directory's files out; the path it names is
            # relative to the top of the work tree, not to where it ran.
            top = work_tree_of(directory) or directory
            raise unreadable_directory(
                top + b"/" + unreadable.group(1).rstrip(b"/"),
                unreadable.group(2).decode("utf-8", "backslashreplace"),
            )
        return [path for path in result.stdout.split(b"\0") if path]
