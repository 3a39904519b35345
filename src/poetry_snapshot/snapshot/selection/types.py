"""The selection's public types: the rules a caller gives, and the files decided on."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import NamedTuple

if TYPE_CHECKING:
    from pathlib import Path

# Past either limit the command warns and shows largest_directories() before copying.
TOO_BIG_BYTES = 1 << 30
TOO_BIG_FILES = 50_000


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
