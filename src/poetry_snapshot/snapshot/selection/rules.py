"""The user's rules on top of every backend's base, decided in this one place.

Each backend has its own base: git's view of the work tree, or the filesystem defaults. On top
of it, every backend asks `Rules` the same two questions: may this directory be entered
(`enters`), is this file selected (`selects`). A path is removed when it is, or lies below, an
excluded directory (`excluded_dirs`, and `.snapshot` at the root), or when the exclude patterns
cover it or one of its directories; nothing removed is ever selected, whatever the base or the
include patterns say. A file that is not removed is selected when its base takes it, or when
the include patterns cover it.

Patterns are gitignore lines; `PatternFile` holds one file of them, and the dulwich backend
uses it for the repository's own ignore files too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from poetry_snapshot.errors import SelectionError
from poetry_snapshot.snapshot.layout import METADATA_DIR
from poetry_snapshot.snapshot.selection.gitignore import InvalidPattern
from poetry_snapshot.snapshot.selection.gitignore import compile_pattern
from poetry_snapshot.snapshot.selection.gitignore import read_lines

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Sequence

    from poetry_snapshot.snapshot.selection.gitignore import Pattern
    from poetry_snapshot.snapshot.selection.types import SelectionRules

# The snapshot keeps its metadata there; a project file of that name would collide with it.
RESERVED = os.fsencode(METADATA_DIR)


class Rules:
    """SelectionRules resolved against one root: byte paths and compiled patterns."""

    __slots__ = ("_below_excluded", "_exclude", "_include", "_prefixes", "excluded", "includes")

    def __init__(
        self, excluded: frozenset[bytes], include: _RuleSet | None, exclude: _RuleSet | None
    ) -> None:
        self.excluded = excluded  # root-relative paths never entered, RESERVED among them
        self.includes = include is not None  # whether the base is searched for include matches
        # One startswith rules out nearly every path; only a path that starts like an excluded
        # one (".snapshot", but also ".snapshots") is looked at again.
        self._prefixes = tuple(excluded)
        self._below_excluded = tuple(x + b"/" for x in excluded)
        self._include = include
        self._exclude = exclude

    @classmethod
    def of(cls, root_b: bytes, rules: SelectionRules) -> Rules:
        excluded = {RESERVED}
        root = os.fsdecode(root_b)
        for directory in rules.excluded_dirs:
            given = Path(root, directory)
            # Resolved, and as written: a symlink inside the project that leads to the base
            # directory is an entry of its own and must not be copied into every snapshot.
            for relative in {
                os.path.relpath(os.path.realpath(given), root),
                os.path.relpath(os.path.realpath(given.parent) + os.sep + given.name, root),
            }:
                if relative == ".":
                    raise SelectionError(
                        f"Cannot select files: the excluded directory {directory} is the project.",
                        "Keep snapshots outside the project, or in a directory inside it.",
                    )
                if relative != ".." and not relative.startswith(".." + os.sep):
                    excluded.add(os.fsencode(relative).replace(os.sep.encode(), b"/"))
        return cls(
            frozenset(excluded),
            _RuleSet(rules.include, "include") if rules.include else None,
            _RuleSet(rules.exclude, "exclude") if rules.exclude else None,
        )

    def enters(self, rel: bytes) -> bool:
        """Whether the directory `rel` (root-relative) may be entered; its base decides whether
        there is anything to look for in it."""
        if rel.startswith(self._prefixes) and self._is_excluded(rel):
            return False
        return self._exclude is None or not self._exclude.covers_dir(rel)

    def selects(self, rel: bytes, by_base: bool) -> bool:
        """Whether the file (symlink, fifo...) `rel` (root-relative) is selected; `by_base` says
        whether the backend's base takes it. Callers need not have asked about its directories:
        git lists paths without entering them."""
        if rel.startswith(self._prefixes) and self._is_excluded(rel):
            return False
        if self._exclude is not None and self._exclude.covers_file(rel):
            return False
        return by_base or (self._include is not None and self._include.covers_file(rel))

    def _is_excluded(self, rel: bytes) -> bool:
        """Whether `rel` is, or lies below, an excluded directory."""
        return rel in self.excluded or rel.startswith(self._below_excluded)


class _RuleSet:
    """The user's include or exclude patterns: gitignore syntax, relative to the root.

    A path is covered when the last pattern matching it, or one of its directories, is not a
    negation: the rule git applies to decide that a path is ignored. Directory answers are
    cached, so checking 100,000 files costs one pattern check per file and per directory.
    """

    def __init__(self, patterns: tuple[str, ...], what: str) -> None:  # what: include, exclude
        # Parsed as lines of a .gitignore: comments, blank lines and trailing spaces alike.
        text = b"\n".join(os.fsencode(p) for p in patterns)
        self._file = PatternFile(read_lines(text), ignorecase=False, strict=what)
        self._dirs: dict[bytes, bool] = {b"": False}

    def covers_dir(self, rel: bytes) -> bool:
        known = self._dirs.get(rel)
        if known is None:
            parent = rel[: rel.rfind(b"/")] if b"/" in rel else b""
            known = self.covers_dir(parent) or _excludes(self._file.last_match(rel, True))
            self._dirs[rel] = known
        return known

    def covers_file(self, rel: bytes) -> bool:
        parent = rel[: rel.rfind(b"/")] if b"/" in rel else b""
        return self.covers_dir(parent) or _excludes(self._file.last_match(rel, False))


def _excludes(pattern: Pattern | None) -> bool:
    return pattern is not None and not pattern.negated


class PatternFile:
    """The patterns of one ignore file (or rule list) in order; the last match decides.

    Asking each pattern about each path costs time in proportion to both, and a common Python
    .gitignore has some 150 lines. Most paths match no pattern, so combined regexes first
    answer "does any pattern match?" and the per-pattern scan runs only on a hit. Patterns
    without a slash (most of them) only ever look at the last path component, so their
    combined regex runs on the name alone and never backtracks over the directories.
    """

    def __init__(self, lines: Iterable[bytes], *, ignorecase: bool, strict: str | None) -> None:
        """strict names the user's rule list ("include") whose bad patterns are errors; a bad
        line of an ignore file is skipped: git keeps it, and it never matches."""
        self.patterns: list[Pattern] = []
        for line in lines:
            try:
                self.patterns.append(compile_pattern(line, ignorecase=ignorecase))
            except InvalidPattern as e:
                if strict:
                    raise SelectionError(
                        f"Invalid {strict} pattern {os.fsdecode(line)!r}: {e}.",
                        "Patterns use .gitignore syntax.",
                    ) from None
        self._for_dirs = self.patterns[::-1]  # the last matching pattern decides: scan from the end
        self._for_files = [p for p in self._for_dirs if not p.directory_only]
        self._dir_check = _Prefilter(self.patterns)
        self._file_check = _Prefilter(self._for_files)

    def last_match(self, rel: bytes, is_dir: bool) -> Pattern | None:
        """The last pattern deciding `rel` (relative to this file's directory), if any."""
        if not (self._dir_check if is_dir else self._file_check).may_match(rel):
            return None
        for pattern in self._for_dirs if is_dir else self._for_files:
            if pattern.matches(rel, is_dir):
                return pattern
        return None


class _Prefilter:
    """Says quickly that no pattern of a list can match a path (never that one does)."""

    def __init__(self, patterns: Sequence[Pattern]) -> None:
        # Each pattern's regex is self-contained (flags scoped, anchored at the end), so an
        # alternation of them matches where any one does.
        by_name = [p.regex.pattern for p in patterns if p.basename_only]
        by_path = [p.regex.pattern for p in patterns if not p.basename_only]
        self._by_name = re.compile(b"|".join(by_name)) if by_name else None
        self._by_path = re.compile(b"|".join(by_path)) if by_path else None

    def may_match(self, rel: bytes) -> bool:
        if self._by_name is not None and self._by_name.match(rel, rel.rfind(b"/") + 1):
            return True
        return self._by_path is not None and self._by_path.match(rel) is not None
