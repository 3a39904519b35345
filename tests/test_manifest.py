"""The manifest's file records: the fast writer gives json.dumps's bytes, and they read back."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest

from poetry_snapshot.snapshot.copier import CopiedFile
from poetry_snapshot.snapshot.manifest import file_json
from poetry_snapshot.snapshot.manifest import file_line
from poetry_snapshot.snapshot.manifest import read_files

if TYPE_CHECKING:
    from pathlib import Path

RECORDS = [
    CopiedFile("plain.py", "file", 12, 0o644, 1, bytes(range(32)), None, False, 2, 3, 4, 5, 6, 7),
    CopiedFile(
        'q"uote\\back\nnl\t.txt', "file", 0, 0o755, 1, b"\xff" * 32, None, True, 2, 3, 4, 5, 6, 7
    ),
    CopiedFile(
        "caf\u00e9/\u2603.txt",
        "file",
        1,
        0o600,
        1,
        b"\x00" * 32,
        None,
        False,
        2,
        3,
        4,
        None,
        None,
        None,
    ),
    CopiedFile(
        os.fsdecode(b"raw\xff\xfe.bin"),
        "file",
        1,
        0o4755,
        1,
        b"\x01" * 32,
        None,
        False,
        2,
        3,
        4,
        5,
        6,
        7,
    ),
    CopiedFile(
        "link",
        "symlink",
        7,
        0o777,
        1,
        None,
        os.fsdecode(b"t\xffarget") + "\u00e9",
        False,
        2,
        3,
        4,
        None,
        None,
        None,
    ),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: repr(r.path))
def test_file_line_is_compact_json_of_file_json(record: CopiedFile) -> None:
    assert file_line(record) == json.dumps(file_json(record), separators=(",", ":"))


def test_records_read_back_exactly(tmp_path: Path) -> None:
    metadata = tmp_path / ".snapshot"
    metadata.mkdir()
    lines = ",\n    ".join(file_line(r) for r in RECORDS)
    (metadata / "manifest.json").write_text(
        '{\n  "schema_version": 2,\n  "files": [\n    ' + lines + "\n  ]\n}\n"
    )
    assert read_files(tmp_path) == {r.path: r for r in RECORDS}


def test_a_torn_manifest_is_an_error_not_a_partial_list(tmp_path: Path) -> None:
    metadata = tmp_path / ".snapshot"
    metadata.mkdir()
    text = '{\n  "schema_version": 2,\n  "files": [\n    ' + file_line(RECORDS[0]) + ",\n    "
    (metadata / "manifest.json").write_text(text + file_line(RECORDS[1])[:40])
    with pytest.raises(ValueError):
        read_files(tmp_path)
