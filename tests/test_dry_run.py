"""What `poetry snapshot --dry-run` prints about the selection: apparent and allocated sizes."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from cleo.formatters.formatter import Formatter

from poetry_snapshot.snapshot.selection import select
from poetry_snapshot.snapshot.summary import selection_summary

if TYPE_CHECKING:
    from pathlib import Path


def test_dry_run_shows_apparent_and_allocated_size(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with open(project / "hollow.img", "wb") as stream:
        stream.truncate(2 << 30)  # 2 GiB, no data blocks
    (project / "data.bin").write_bytes(os.urandom(1 << 20))
    selection = select(project)
    allocated = sum(os.lstat(project / e.path).st_blocks * 512 for e in selection.entries)
    lines = [Formatter().remove_format(line) for line in selection_summary(selection, tmp_path)]
    assert lines[0] == (
        f"Would copy 2 files, 2.0 GiB apparent, {allocated / (1 << 20):.1f} MiB allocated"
        f" (filesystem selection) from {project}"
    )
    assert "     2.0 GiB  hollow.img (0 B allocated)" in lines
    assert "     1.0 MiB  data.bin" in lines  # dense: no allocated size shown
