"""What `poetry snapshot` says about a selection and a snapshot taken (cleo tags)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cleo.formatters.formatter import Formatter

from poetry_snapshot.display import human_size

if TYPE_CHECKING:
    from pathlib import Path

    from poetry_snapshot.snapshot.manifest import CopySummary
    from poetry_snapshot.snapshot.selection import Selection


def selection_summary(selection: Selection, base_dir: Path) -> list[str]:
    """What `--dry-run` shows: counts, bytes, where it would go, the biggest files and dirs.

    Bytes are shown apparent (the files' sizes) and allocated (their blocks on disk): a sparse
    file's holes cost the snapshot nothing, as they cost the project nothing.
    """
    allocated = sum(e.blocks * 512 for e in selection.entries if e.kind == "file")
    lines = [
        f"Would copy <c1>{selection.file_count}</> files,"
        f" {human_size(selection.total_bytes)} apparent, {human_size(allocated)} allocated"
        f" ({_e(selection.source)} selection)"
        f" from <c1>{_e(str(selection.root))}</>",
        f"into a new snapshot under <c1>{_e(str(base_dir))}</>",
    ]
    largest = selection.largest_files(10)
    if largest:
        lines.append("")
        lines.append("Largest files:")
        lines.extend(
            f"  {human_size(e.size):>10}  {_e(e.path)}"
            + (f" ({human_size(e.blocks * 512)} allocated)" if e.blocks * 512 < e.size else "")
            for e in largest
        )
    directories = selection.largest_directories(10)
    if directories:
        lines.append("")
        lines.append("Largest directories:")
        lines.extend(
            f"  {human_size(size):>10}  {files:>7} files  {_e(path)}"
            for path, size, files in directories
        )
    if selection.skipped:
        lines.append("")
        lines.append(f"Skipped: {len(selection.skipped)}")
        lines.extend(f"  {_e(s.path)} ({_e(s.reason)})" for s in selection.skipped[:20])
    return lines


def selection_too_big(selection: Selection) -> list[str]:
    lines = [
        f"<warning>The snapshot selects {selection.file_count} files,"
        f" {human_size(selection.total_bytes)}; the biggest contributors:</>"
    ]
    lines.extend(
        f"<warning>  {human_size(size):>10}  {files:>7} files  {_e(path)}</>"
        for path, size, files in selection.largest_directories(5)
    )
    lines.append("<warning>Exclude what the run does not need: --exclude PATTERN or .gitignore.</>")
    return lines


def snapshot_line(snapshot_id: str, path: Path, copy: CopySummary) -> str:
    linked = (
        f", {copy.files_linked} hard-linked from {copy.linked_from}" if copy.files_linked else ""
    )
    return (
        f"Snapshot <c1>{_e(snapshot_id)}</>: {copy.files} files, {human_size(copy.bytes)}{linked}"
        f" in <c1>{_e(str(path))}</>"
    )


def _e(text: str) -> str:
    return Formatter.escape(text)
