"""Which files belong in a snapshot: git's view of the project, or the tree minus the usual clutter.

In a git work tree the selection is what git sees: tracked files still on disk plus untracked
files no ignore rule hides (nested `.gitignore`, `!` re-includes, `.git/info/exclude`,
`core.excludesFile`), submodules and nested repositories each by their own rules. The `git`
binary answers when it is on PATH; otherwise dulwich (Poetry ships it) reads the index and a
walk applies the same rules. Patterns are always matched by `gitignore`, git's own rules:
dulwich's matching changed across the releases Poetry 2.x brings, so dulwich only reads the
index, the config and the repository. Outside git, everything is taken except VCS metadata,
caches, build output and virtualenvs.

On top of that base, `SelectionRules.include` brings back files the base left out, `exclude`
removes files and wins over `include` (write `data/*` then `!data/small.csv` to keep one file
of an excluded directory), and `excluded_dirs` and a root `.snapshot` are never entered.

This module decides and never copies. Paths stay bytes until they become `SelectedEntry.path`
(os.fsdecode, so names that are not UTF-8 survive the round trip), and every file is stat'ed
once: from the walk's DirEntry, or one lstat per path git lists.
"""

from __future__ import annotations

import errno
import heapq
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import NamedTuple

from poetry_snapshot.errors import SelectionError
from poetry_snapshot.snapshot.git import Git
from poetry_snapshot.snapshot.gitignore import InvalidPattern
from poetry_snapshot.snapshot.gitignore import Pattern
from poetry_snapshot.snapshot.gitignore import compile_pattern
from poetry_snapshot.snapshot.gitignore import read_lines

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Sequence
    from typing import Callable

    from dulwich.config import Config
    from dulwich.repo import Repo

# Past either limit the command warns and shows largest_directories() before copying.
TOO_BIG_BYTES = 1 << 30
TOO_BIG_FILES = 50_000

# The snapshot keeps its metadata here; a project file of that name would collide with it.
RESERVED_NAME = ".snapshot"

GIT_MODES = ("auto", "binary", "dulwich", "off")

# Never selected outside git: VCS metadata, caches and tool state that no run should read.
_DEFAULT_EXCLUDED_NAMES = frozenset(
    {b".git", b"__pycache__", b".pytest_cache", b".mypy_cache", b".ruff_cache", b".tox", b".nox"}
)
_DEFAULT_EXCLUDED_AT_ROOT = frozenset({b"build", b"dist"})  # build output, directories only

_UNREADABLE_DIRECTORY = re.compile(rb"^warning: could not open directory '(.*)': (.*)$", re.M)
_GITLINK = 0o160000


class SelectedEntry(NamedTuple):
    """One file or symlink to copy; a NamedTuple so that 100,000 of them stay small."""

    path: str  # relative to the root, '/'-separated, os.fsdecode'd
    kind: str  # "file" or "symlink"
    size: int  # st_size; for a symlink, the length of its target
    mode: int  # stat.S_IMODE(st_mode)
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int
    link_target: str | None  # os.readlink of a symlink, else None
    blocks: int  # st_blocks, 512-byte units allocated: fewer than the size needs when sparse


@dataclass(frozen=True)
class SkippedEntry:
    """Something present that is deliberately not copied, and why ("fifo", "excluded directory")."""

    path: str
    reason: str


@dataclass(frozen=True)
class SelectionRules:
    include: tuple[str, ...] = ()  # gitignore syntax: bring back files the base left out
    exclude: tuple[str, ...] = ()  # gitignore syntax: remove files; wins over include
    # Never entered: absolute, or relative to the root (the snapshot base dir when inside).
    excluded_dirs: tuple[Path, ...] = ()


_NO_RULES = SelectionRules()


@dataclass(frozen=True)
class Selection:
    """The files of one snapshot, decided before anything is copied."""

    root: Path
    source: str  # "git" or "filesystem"
    entries: tuple[SelectedEntry, ...]  # sorted by path; directories are implied
    skipped: tuple[SkippedEntry, ...]
    warnings: tuple[str, ...]
    git_backend: str | None = None  # "binary" or "dulwich" when source is "git"

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries if e.kind == "file")

    @property
    def file_count(self) -> int:
        """Files and symlinks: every entry the copy engine creates."""
        return len(self.entries)

    def largest_files(self, n: int) -> list[SelectedEntry]:
        files = (e for e in self.entries if e.kind == "file")
        return heapq.nlargest(n, files, key=lambda e: e.size)

    def largest_directories(self, n: int, depth: int = 1) -> list[tuple[str, int, int]]:
        """The n directories holding the most bytes, as (directory, bytes, files).

        Entries are grouped by their first `depth` directories ("data", or "data/raw" with
        depth=2); entries with fewer directories count under their own directory, root files
        under ".". The groups partition the selection: they add up to total_bytes and file_count.
        """
        totals: dict[str, list[int]] = {}
        for entry in self.entries:
            parts = entry.path.split("/")[:-1]
            key = "/".join(parts[:depth]) or "."
            total = totals.setdefault(key, [0, 0])
            if entry.kind == "file":
                total[0] += entry.size
            total[1] += 1
        ranked = sorted(totals.items(), key=lambda item: (-item[1][0], -item[1][1], item[0]))
        return [(name, size, count) for name, (size, count) in ranked[:n]]

    def too_big(self) -> bool:
        return self.total_bytes > TOO_BIG_BYTES or self.file_count > TOO_BIG_FILES


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
    compiled = _CompiledRules.of(root_b, rules)
    collector = _Collector(root_b)
    work_tree = None if git == "off" else _work_tree_of(root_b)

    backend: str | None = None
    if work_tree is None:
        _walk_tree(compiled, collector, base=True)
    else:
        binary = Git.find() if git in ("auto", "binary") else None
        if git == "binary" and binary is None:
            raise SelectionError(
                "Cannot select files with git: no `git` on PATH.",
                "Install git, or select with dulwich instead.",
            )
        if binary is not None:
            backend = "binary"
            lister = _GitBinary(binary, compiled, collector)
            lister.list_unit(root_b, b"")
            if root_b != work_tree and lister.ignores(real_root):
                collector.warnings.append(
                    f"{real_root} lies in a directory its git repository ignores: only files"
                    " git tracks there are selected (--include brings back others)"
                )
        else:
            backend = "dulwich"
            start = os.path.relpath(real_root, os.fsdecode(work_tree))
            _list_with_dulwich(
                work_tree, b"" if start == "." else os.fsencode(start), b"", compiled, collector
            )
        if compiled.include is not None:
            _walk_tree(compiled, collector, base=False)

    return collector.finish(
        Path(real_root), "filesystem" if work_tree is None else "git", backend, compiled
    )


# --- rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CompiledRules:
    """SelectionRules resolved against one root: byte paths and compiled patterns."""

    root_b: bytes
    excluded: frozenset[bytes]  # root-relative paths never entered
    include: _RuleSet | None
    exclude: _RuleSet | None

    @classmethod
    def of(cls, root_b: bytes, rules: SelectionRules) -> _CompiledRules:
        excluded = {RESERVED_NAME.encode()}
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
            root_b,
            frozenset(excluded),
            _RuleSet(rules.include, "include") if rules.include else None,
            _RuleSet(rules.exclude, "exclude") if rules.exclude else None,
        )

    def is_excluded(self, rel: bytes) -> bool:
        """Whether a path lies in (or is) an excluded directory."""
        if rel in self.excluded:
            return True
        return any(rel.startswith(x + b"/") for x in self.excluded)

    def removes_dir(self, rel: bytes) -> bool:
        return rel in self.excluded or (self.exclude is not None and self.exclude.covers_dir(rel))

    def removes_file(self, rel: bytes) -> bool:
        return rel in self.excluded or (self.exclude is not None and self.exclude.covers_file(rel))


class _PatternFile:
    """The patterns of one ignore file (or rule list) in order; the last match decides.

    Asking each pattern about each path costs ~0.3 µs per pattern: 5 s for 100,000 files
    against the 150 lines of a common Python .gitignore. Most paths match no pattern, so
    combined regexes first answer "does any pattern match?" and the per-pattern scan runs
    only on a hit. Patterns without a slash (most of them) only ever look at the last path
    component, so their combined regex runs on the name alone and never backtracks over the
    directories.
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


class _RuleSet:
    """The user's include or exclude patterns: gitignore syntax, relative to the root.

    A path is covered when the last pattern matching it, or one of its directories, is not a
    negation: the rule git applies to decide that a path is ignored. Directory answers are
    cached, so checking 100,000 files costs one pattern check per file and per directory.
    """

    def __init__(self, patterns: tuple[str, ...], what: str) -> None:  # what: include, exclude
        # Parsed as lines of a .gitignore: comments, blank lines and trailing spaces alike.
        text = b"\n".join(os.fsencode(p) for p in patterns)
        self._file = _PatternFile(read_lines(text), ignorecase=False, strict=what)
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


# --- the filesystem walk: outside git, and for include patterns in git ----------------------


def _walk_tree(rules: _CompiledRules, collector: _Collector, *, base: bool) -> None:
    """Walk the tree under the root without following symlinks.

    base=True selects by the filesystem defaults and include patterns (outside git); base=False
    only looks for include matches the git listing did not already select. Directories the
    defaults leave out are entered only to look for include matches, and failing to read them
    is a warning, not an error: they are often caches or volumes owned by someone else.
    """
    include = rules.include
    selected = None if base else {os.fsencode(e.path) for e in collector.entries}
    todo: list[tuple[bytes, bool]] = [(b"", base)]
    while todo:
        directory, selecting = todo.pop()
        entries = collector.scan(directory, required=selecting)
        if directory and selecting and any(e.name == b"pyvenv.cfg" for e in entries):
            selecting = False  # a virtualenv: machine-specific, rebuilt from the lock
        if not selecting and include is None:
            continue
        for entry in entries:
            name = entry.name
            rel = directory + b"/" + name if directory else name
            if name == b".git":
                continue
            if entry.is_dir(follow_symlinks=False):
                if rules.removes_dir(rel):
                    continue
                inner = selecting and not _default_excluded_dir(directory, name)
                if inner or include is not None:
                    todo.append((rel, inner))
            elif rules.removes_file(rel):
                continue
            elif (selecting and not name.endswith(b".egg-info")) or (
                include is not None
                and include.covers_file(rel)
                and (selected is None or rel not in selected)
            ):
                collector.add_dir_entry(rel, entry)


def _default_excluded_dir(parent: bytes, name: bytes) -> bool:
    return (
        name in _DEFAULT_EXCLUDED_NAMES
        or name.endswith(b".egg-info")
        or (not parent and name in _DEFAULT_EXCLUDED_AT_ROOT)
    )


# --- git: the binary ------------------------------------------------------------------------


class _GitBinary:
    """Lists a work tree with `git ls-files`: two runs per repository, never one per file."""

    def __init__(self, git: Git, rules: _CompiledRules, collector: _Collector) -> None:
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
        submodules = set()
        nested = set()
        for path, mode in tracked.items():
            if mode == _GITLINK:
                submodules.add(path)
            elif not self.rules.removes_file(join + path):
                self.collector.add_listed(join + path)
        for path in untracked:
            if path.endswith(b"/"):  # a nested repository: git lists it and does not enter
                nested.add(path[:-1])
            elif not self.rules.removes_file(join + path):
                self.collector.add_listed(join + path)
        for path in sorted(submodules | nested):
            inner = directory + b"/" + path
            if self.rules.removes_dir(join + path) or not _is_repository(inner):
                continue
            if path in nested and path not in submodules:
                self.collector.note_nested_repository(join + path)
            self.list_unit(inner, join + path)

    def _ls_files(self, directory: bytes, prefix: bytes, *options: str) -> list[bytes]:
        # Excluded directories are left out by pathspec, so git does not even walk them.
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
                f"git cannot list the files of {_display(directory)}: "
                f"{message.splitlines()[0] if message else f'exit code {result.returncode}'}",
                "Fix the repository, or snapshot without git.",
            )
        unreadable = _UNREADABLE_DIRECTORY.search(result.stderr)
        if unreadable is not None:
            # git warns and goes on, leaving the directory's files out; the path it names is
            # relative to the top of the work tree, not to where it ran.
            top = _work_tree_of(directory) or directory
            raise _unreadable(
                top + b"/" + unreadable.group(1).rstrip(b"/"),
                unreadable.group(2).decode("utf-8", "backslashreplace"),
            )
        return [path for path in result.stdout.split(b"\0") if path]


# --- git: dulwich ---------------------------------------------------------------------------


def _list_with_dulwich(
    top: bytes, start: bytes, prefix: bytes, rules: _CompiledRules, collector: _Collector
) -> None:
    """Select what git would list under `top/start`, reading the repository with dulwich.

    `top` is the work tree, `start` the top-relative directory to list ("" for all of it) and
    `prefix` its root-relative path. Tracked files come from the index; a walk that never
    enters an ignored directory finds untracked ones, as `git ls-files --others` does.
    """
    from dulwich.errors import NotGitRepository
    from dulwich.repo import Repo

    try:
        repo = Repo(os.fsdecode(top))
        if not Path(repo.controldir()).is_dir():  # a .git file pointing nowhere
            raise NotGitRepository(f"no repository at {repo.controldir()}")
    except (NotGitRepository, OSError) as e:
        raise SelectionError(
            f"Cannot read the git repository at {_display(top)}: {e}.",
            "Fix the repository, or snapshot without git.",
        ) from None
    try:
        tracked = _read_index(repo)
        config = repo.get_config_stack()
        ignores = _RepositoryIgnores(top, repo, config)
    finally:
        repo.close()
    gitlinks = sorted(path for path, mode in tracked.items() if mode == _GITLINK)
    start_slash = start + b"/" if start else b""
    join = prefix + b"/" if prefix else b""

    def to_root(rel: bytes) -> bytes:
        return join + rel[len(start_slash) :]

    walk = _DulwichWalk(top, ignores, tracked, rules, collector, to_root)
    stack = ignores.stack_for(start)
    if stack is not None:
        walk.run(start, stack)
    for path, mode in tracked.items():
        if mode == _GITLINK or not path.startswith(start_slash) or path in walk.seen:
            continue
        if not rules.removes_file(to_root(path)) and not rules.is_excluded(to_root(path)):
            collector.add_listed(to_root(path))  # in an ignored directory, or deleted
    for path in gitlinks:
        if not path.startswith(start_slash) or rules.is_excluded(to_root(path)):
            continue
        if rules.exclude is not None and rules.exclude.covers_dir(to_root(path)):
            continue
        inner = top + b"/" + path
        if _is_repository(inner):
            _list_with_dulwich(inner, b"", to_root(path), rules, collector)


def _read_index(repo: Repo) -> dict[bytes, int]:
    """Top-relative path -> mode of every index entry (a conflict counts once)."""
    from dulwich.errors import NoIndexPresent
    from dulwich.index import ConflictedIndexEntry

    try:
        index = repo.open_index()
    except NoIndexPresent:
        return {}  # a repository nothing was ever added to
    except Exception as e:  # an index format this dulwich cannot read
        raise SelectionError(
            f"dulwich cannot read the git index of {repo.path}: {e}.",
            "Install git, or snapshot without git.",
        ) from None
    tracked = {}
    for path, entry in index.items():
        if isinstance(entry, ConflictedIndexEntry):
            side = entry.this or entry.other or entry.ancestor
            if side is None:
                continue
            entry = side
        if not stat.S_ISDIR(entry.mode):  # sparse-index directory entries hold no file
            tracked[path] = entry.mode
    return tracked


# Ignore files that apply to a directory, deepest last, each with the length of the
# top-relative prefix its patterns are relative to.
_IgnoreStack = tuple[tuple[int, _PatternFile], ...]


class _RepositoryIgnores:
    """git's ignore rules for one work tree: per-directory `.gitignore`, then info/exclude,
    then core.excludesFile (`$XDG_CONFIG_HOME/git/ignore` by default).

    dulwich's IgnoreFilterManager reads the same files but asks core.excludesFile before
    info/exclude (git asks info/exclude first), and re-decides every parent directory for every
    path; here each directory is decided once, on the way down.
    """

    def __init__(self, top: bytes, repo: Repo, config: Config) -> None:
        from dulwich.ignore import default_user_ignore_filter_path

        self.top = top
        self.ignorecase = _git_boolean(config, b"core", b"ignorecase")
        info_exclude = Path(repo.commondir(), "info", "exclude")  # shared by linked worktrees
        user = Path(default_user_ignore_filter_path(config)).expanduser()
        self.global_files = [
            f
            for f in (
                self._read(os.fsencode(info_exclude), gitignore=False),
                self._read(os.fsencode(user), gitignore=False),
            )
            if f is not None
        ]

    def _read(self, path: bytes, *, gitignore: bool) -> _PatternFile | None:
        # git does not follow a symlinked .gitignore (O_NOFOLLOW refuses it the same way), but
        # follows info/exclude and core.excludesFile, which dotfile managers often link.
        flags = os.O_RDONLY | (getattr(os, "O_NOFOLLOW", 0) if gitignore else 0)
        try:
            fd = os.open(path, flags)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                data = f.read()
        except OSError as e:  # a directory: git skips it as .gitignore, fails on the others
            if gitignore:
                return None
            raise SelectionError(
                f"Cannot use {_display(path)} as an exclude file: {e.strerror}.",
                "Fix core.excludesFile or .git/info/exclude.",
            ) from None
        return _PatternFile(read_lines(data), ignorecase=self.ignorecase, strict=None)

    def extend(self, stack: _IgnoreStack, directory: bytes) -> _IgnoreStack:
        """The stack for `directory`'s entries: its parent's plus its own .gitignore."""
        directory_path = self.top + (b"/" + directory if directory else b"")
        found = self._read(directory_path + b"/.gitignore", gitignore=True)
        if found is None:
            return stack
        return (*stack, (len(directory) + 1 if directory else 0, found))

    def is_ignored(self, stack: _IgnoreStack, rel: bytes, is_dir: bool) -> bool:
        """git's verdict on `rel`, whose parent directories are known not to be ignored."""
        for offset, patterns in reversed(stack):
            pattern = patterns.last_match(rel[offset:], is_dir)
            if pattern is not None:
                return not pattern.negated
        for patterns in self.global_files:
            pattern = patterns.last_match(rel, is_dir)
            if pattern is not None:
                return not pattern.negated
        return False

    def stack_for(self, start: bytes) -> _IgnoreStack | None:
        """The ignore files of `start`'s ancestors (the walk adds `start`'s own), or None when
        `start` or an ancestor is ignored: git then lists nothing untracked below it."""
        stack: _IgnoreStack = ()
        current = b""
        for part in start.split(b"/") if start else ():
            stack = self.extend(stack, current)
            current = current + b"/" + part if current else part
            if self.is_ignored(stack, current, True):
                return None
        return stack


class _DulwichWalk:
    """The untracked half of `git ls-files --others --exclude-standard`, plus tracked files
    met on the way (stat'ed from the walk instead of once more later)."""

    def __init__(
        self,
        top: bytes,
        ignores: _RepositoryIgnores,
        tracked: dict[bytes, int],
        rules: _CompiledRules,
        collector: _Collector,
        to_root: Callable[[bytes], bytes],
    ) -> None:
        self.top = top
        self.ignores = ignores
        self.tracked = tracked
        self.rules = rules
        self.collector = collector
        self.to_root = to_root
        self.seen: set[bytes] = set()
        self._tracked_dirs: set[bytes] | None = None

    def run(self, start: bytes, stack: _IgnoreStack) -> None:
        todo = [(start, stack)]
        while todo:
            directory, parent_stack = todo.pop()
            entries = self.collector.scan_absolute(
                self.top + b"/" + directory if directory else self.top
            )
            stack = (
                self.ignores.extend(parent_stack, directory)
                if any(e.name == b".gitignore" for e in entries)
                else parent_stack
            )
            for entry in entries:
                name = entry.name
                if name == b".git":
                    continue
                rel = directory + b"/" + name if directory else name
                if entry.is_dir(follow_symlinks=False):
                    if self._enters(rel, stack):
                        todo.append((rel, stack))
                    continue
                mode = self.tracked.get(rel)
                if mode is None:
                    if not (entry.is_file(follow_symlinks=False) or entry.is_symlink()):
                        continue  # git lists no untracked fifo, socket or device
                    if self.ignores.is_ignored(stack, rel, False):
                        continue
                elif mode == _GITLINK:
                    continue  # a submodule whose directory became a file
                else:
                    self.seen.add(rel)
                if not self.rules.removes_file(self.to_root(rel)):
                    self.collector.add_dir_entry(self.to_root(rel), entry)

    def _enters(self, rel: bytes, stack: _IgnoreStack) -> bool:
        if self.tracked.get(rel) == _GITLINK:
            return False  # listed on its own, as a repository
        if self.rules.removes_dir(self.to_root(rel)) or self.ignores.is_ignored(stack, rel, True):
            return False
        if _is_repository(self.top + b"/" + rel) and not self._holds_tracked(rel):
            # git lists a nested repository as "dir/" and does not enter it: list it on its own.
            self.collector.note_nested_repository(self.to_root(rel))
            inner = self.top + b"/" + rel
            _list_with_dulwich(inner, b"", self.to_root(rel), self.rules, self.collector)
            return False
        return True

    def _holds_tracked(self, rel: bytes) -> bool:
        # git enters a directory with tracked files even when it holds a .git of its own.
        if self._tracked_dirs is None:
            dirs: set[bytes] = set()
            for path in self.tracked:
                cut = path.rfind(b"/")
                while cut > 0 and path[:cut] not in dirs:
                    dirs.add(path[:cut])
                    cut = path.rfind(b"/", 0, cut)
            self._tracked_dirs = dirs
        return rel in self._tracked_dirs


def _is_repository(directory: bytes) -> bool:
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


def _work_tree_of(directory: bytes) -> bytes | None:
    """The nearest directory at or above `directory` holding a repository, as git discovers it:
    a `.git` file counts even when it is broken (git then fails, and so do we), a `.git`
    directory only when it is a repository."""
    current = directory
    while True:
        dotgit = current + b"/.git"
        if _has(dotgit, stat.S_ISREG) or _is_repository(current):
            return current
        if current == b"/":
            return None
        current = current.rpartition(b"/")[0] or b"/"


def _has(path: bytes, kind: Callable[[int], bool]) -> bool:
    try:
        return kind(os.stat(path).st_mode)
    except OSError:
        return False


# --- entries --------------------------------------------------------------------------------


class _Collector:
    """Turns stat results into entries and gathers what is skipped or worth a warning."""

    def __init__(self, root_b: bytes) -> None:
        self.root_b = root_b
        self.entries: list[SelectedEntry] = []
        self.skipped: list[SkippedEntry] = []
        self.warnings: list[str] = []
        self._ints: dict[int, int] = {}  # one int object per distinct device and mode
        self._real_dirs: dict[bytes, bool] = {b"": True}

    def scan(self, rel_dir: bytes, *, required: bool) -> list[os.DirEntry[bytes]]:
        path = self.root_b + b"/" + rel_dir if rel_dir else self.root_b
        if required:
            return self.scan_absolute(path)
        try:
            with os.scandir(path) as it:
                return list(it)
        except FileNotFoundError:
            return []
        except OSError as e:
            self.warnings.append(
                f"{_display(rel_dir)}/: not searched for include patterns ({e.strerror})"
            )
            return []

    def scan_absolute(self, path: bytes) -> list[os.DirEntry[bytes]]:
        try:
            with os.scandir(path) as it:
                return list(it)
        except (FileNotFoundError, NotADirectoryError):
            return []  # removed while we walked
        except OSError as e:
            raise _unreadable(path, e.strerror or str(e)) from None

    def add_dir_entry(self, rel: bytes, entry: os.DirEntry[bytes]) -> None:
        try:
            st = entry.stat(follow_symlinks=False)  # cached by the scan where the OS allows
        except FileNotFoundError:
            return
        self._add(rel, st)

    def add_listed(self, rel: bytes) -> None:
        """A path git listed: tracked files may be gone, or hide behind a symlinked directory."""
        cut = rel.rfind(b"/")
        if cut > 0 and not self._real_directory(rel[:cut]):
            return  # git reports such a file as deleted; following the link would leave the tree
        try:
            st = os.lstat(self.root_b + b"/" + rel)
        except (FileNotFoundError, NotADirectoryError):
            return  # tracked but deleted from disk: not in git's view of the work tree
        except OSError as e:
            where = _display(self.root_b + b"/" + rel)
            raise SelectionError(f"Cannot read {where}: {e.strerror}.") from None
        if not stat.S_ISDIR(st.st_mode):
            self._add(rel, st)

    def note_nested_repository(self, rel: bytes) -> None:
        self.warnings.append(
            f"{_display(rel)}/ is a git repository but not a submodule;"
            " its files are selected by its own rules"
        )

    def _real_directory(self, rel: bytes) -> bool:
        known = self._real_dirs.get(rel)
        if known is None:
            cut = rel.rfind(b"/")
            known = self._real_directory(rel[:cut] if cut > 0 else b"")
            if known:
                try:
                    known = stat.S_ISDIR(os.lstat(self.root_b + b"/" + rel).st_mode)
                except OSError:
                    known = False
            self._real_dirs[rel] = known
        return known

    def _add(self, rel: bytes, st: os.stat_result) -> None:
        path = os.fsdecode(rel)
        mode = st.st_mode
        if stat.S_ISREG(mode):
            kind, target = "file", None
        elif stat.S_ISLNK(mode):
            # bytes in, bytes out: the target may not be UTF-8 either
            target = os.fsdecode(os.readlink(self.root_b + b"/" + rel))
            kind = "symlink"
        else:
            what = _special_kind(mode)
            self.skipped.append(SkippedEntry(path, what))
            self.warnings.append(f"{_display(rel)}: skipped, a {what} cannot be copied")
            return
        ints = self._ints
        permissions = stat.S_IMODE(mode)
        mtime = st.st_mtime_ns
        ctime = st.st_ctime_ns
        self.entries.append(
            SelectedEntry(
                path,
                kind,
                st.st_size,
                ints.setdefault(permissions, permissions),
                mtime,
                mtime if ctime == mtime else ctime,  # one int object: 3 MB per 100,000 files
                st.st_ino,
                ints.setdefault(st.st_dev, st.st_dev),
                target,
                ints.setdefault(st.st_blocks, st.st_blocks),
            )
        )

    def finish(
        self, root: Path, source: str, backend: str | None, rules: _CompiledRules
    ) -> Selection:
        self.entries.sort(key=lambda e: e.path)
        unique: list[SelectedEntry] = []
        for entry in self.entries:  # git lists a conflicted path once per stage
            if not unique or unique[-1].path != entry.path:
                unique.append(entry)
        for excluded in sorted(rules.excluded):
            if os.path.lexists(self.root_b + b"/" + excluded):
                reserved = excluded == RESERVED_NAME.encode()
                reason = "reserved for snapshot metadata" if reserved else "excluded directory"
                self.skipped.append(SkippedEntry(os.fsdecode(excluded), reason))
                if reserved:
                    self.warnings.append(
                        f"{RESERVED_NAME} at the project root is not copied: the snapshot keeps"
                        " its metadata there; rename it"
                    )
        self.warnings.extend(_link_warnings(os.fsdecode(self.root_b), unique))
        self.warnings.extend(_virtualenv_warnings(unique))
        return Selection(
            root=root,
            source=source,
            entries=tuple(unique),
            skipped=tuple(sorted(set(self.skipped), key=lambda s: (s.path, s.reason))),
            warnings=tuple(sorted(set(self.warnings))),
            git_backend=backend,
        )


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISCHR(mode):
        return "character device"
    return "special file"


def _link_warnings(root: str, entries: Sequence[SelectedEntry]) -> list[str]:
    """One line per symlink that will not resolve inside the snapshot as it does here."""
    warnings = []
    selected: set[str] | None = None
    for entry in entries:
        if entry.kind != "symlink" or entry.link_target is None:
            continue
        shown = _display(os.fsencode(entry.path))
        target = _display(os.fsencode(entry.link_target))
        link = Path(root, entry.path)
        try:
            link.stat()
        except OSError as e:
            problem = "is part of a symlink loop" if e.errno == errno.ELOOP else "is dangling"
            warnings.append(f"symlink {shown} -> {target} {problem}; it is copied as is")
            continue
        resolved = os.path.realpath(link)
        if resolved != root and not resolved.startswith(root + os.sep):
            warnings.append(
                f"symlink {shown} -> {target} points outside the project; the snapshot"
                " will read whatever is there when it runs"
            )
            continue
        if entry.link_target.startswith("/"):
            warnings.append(
                f"symlink {shown} -> {target} is absolute; in the snapshot it still points"
                " into the project, not into the snapshot"
            )
            continue
        if selected is None:
            selected = _selected_paths(entries)
        inside = os.path.relpath(resolved, root).replace(os.sep, "/")
        if inside != "." and inside not in selected:
            warnings.append(
                f"symlink {shown} -> {target} points to {_display(os.fsencode(inside))},"
                " which is not selected; it dangles in the snapshot"
            )
    return warnings


def _selected_paths(entries: Sequence[SelectedEntry]) -> set[str]:
    """Selected paths and the directories they imply."""
    paths: set[str] = set()
    for entry in entries:
        paths.add(entry.path)
        cut = entry.path.rfind("/")
        while cut > 0 and entry.path[:cut] not in paths:
            paths.add(entry.path[:cut])
            cut = entry.path.rfind("/", 0, cut)
    return paths


def _virtualenv_warnings(entries: Sequence[SelectedEntry]) -> list[str]:
    return [
        f"{_display(os.fsencode(e.path[: -len('/pyvenv.cfg')]))}/ is a virtualenv and is"
        " selected; ignore it in .gitignore or exclude it"
        for e in entries
        if e.path.endswith("/pyvenv.cfg")
    ]


def _unreadable(path: bytes, reason: str) -> SelectionError:
    return SelectionError(
        f"Cannot read directory {_display(path)}: {reason}.",
        "Make it readable, or exclude it from the snapshot.",
    )


def _display(path: bytes) -> str:
    """A path for messages: bytes that are not UTF-8 shown as \\xNN instead of failing to print."""
    return path.decode("utf-8", "backslashreplace")


def _git_boolean(config: Config, section: bytes, name: bytes) -> bool:
    """A boolean as git reads it: dulwich's get_boolean knows only true/false and raises on
    yes/on/1 (and their negations), which git accepts."""
    try:
        raw = config.get(section, name)
    except KeyError:
        return False
    value = raw.strip().lower()
    if value in (b"true", b"yes", b"on", b"1", b""):
        return True
    if value in (b"false", b"no", b"off", b"0"):
        return False
    raise SelectionError(
        f"Invalid boolean in git config {section.decode()}.{name.decode()}:"
        f" {raw.decode(errors='replace')!r}.",
        "Fix the git configuration.",
    )
