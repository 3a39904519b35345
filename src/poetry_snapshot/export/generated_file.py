"""Files this plugin generates: written atomically, or compared byte for byte (`--check`).

Every export goes through here, so "is the file on disk what we would write?" has one answer
everywhere: the same bytes. Content is text, encoded as UTF-8 with `\\n` line ends.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from poetry_snapshot.atomic import write_atomic
from poetry_snapshot.errors import OutputFileError

if TYPE_CHECKING:
    from collections.abc import Iterable


@dataclass(frozen=True)
class GeneratedFile:
    """A file's path and the exact text it must hold."""

    path: Path
    content: str

    @property
    def data(self) -> bytes:
        return self.content.encode("utf-8")


@dataclass(frozen=True)
class Comparison:
    """What `--check` found: whether the file holds exactly the content, and a diff if not."""

    path: Path
    exists: bool
    up_to_date: bool
    diff: str


def compare(file: GeneratedFile) -> Comparison:
    """Compare the file on disk with `file.content`, byte for byte; never writes."""
    try:
        found = file.path.read_bytes()
    except FileNotFoundError:
        found = None
    except OSError as e:
        raise OutputFileError(
            f"Cannot read {file.path}: {e.strerror or e}.", "Check the path and its permissions."
        ) from None
    if found == file.data:
        return Comparison(file.path, exists=True, up_to_date=True, diff="")
    old = "" if found is None else found.decode("utf-8", errors="replace")
    diff = "".join(
        _terminated(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                file.content.splitlines(keepends=True),
                fromfile=f"{file.path} ({'on disk' if found is not None else 'missing'})",
                tofile=f"{file.path} (export)",
            )
        )
    )
    if not diff:  # same text, different bytes (a BOM, CRLF line ends, invalid UTF-8...)
        diff = f"{file.path}: same text, different bytes (line endings or encoding).\n"
    return Comparison(file.path, exists=found is not None, up_to_date=False, diff=diff)


def _terminated(lines: Iterable[str]) -> list[str]:
    # difflib keeps a last line without "\n" as is; print it as `diff` does.
    out: list[str] = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return out


def write_atomically(file: GeneratedFile) -> None:
    """Replace the file with `file.content` so readers see the old or the new file, never half.

    An existing file keeps its permission bits; a symlink keeps pointing where it pointed.
    """
    target = Path(os.path.realpath(file.path))
    directory = target.parent
    if not directory.is_dir():
        raise OutputFileError(
            f"Cannot write {file.path}: directory {directory} does not exist.",
            "Create the directory first.",
        )
    try:
        mode: int | None = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None  # a new file: as open() creates it, the umask applied by the kernel
    except OSError as e:
        raise OutputFileError(f"Cannot write {file.path}: {e.strerror or e}.") from None
    try:
        write_atomic(target, file.data, mode)
    except OSError as e:
        raise OutputFileError(
            f"Cannot write {file.path}: {e.strerror or e}.", "Check the path and its permissions."
        ) from None
