"""Atomic writes and byte-for-byte comparison of generated files."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from poetry_snapshot.errors import OutputFileError
from poetry_snapshot.export.generated_file import GeneratedFile
from poetry_snapshot.export.generated_file import compare
from poetry_snapshot.export.generated_file import write_atomically

if TYPE_CHECKING:
    from pathlib import Path


def test_write_then_compare(tmp_path: Path) -> None:
    file = GeneratedFile(tmp_path / "environment.yml", "name: demo\nünïcode: ✓\n")
    assert not compare(file).exists
    write_atomically(file)
    assert (tmp_path / "environment.yml").read_bytes() == "name: demo\nünïcode: ✓\n".encode()
    assert compare(file).up_to_date
    assert [p.name for p in tmp_path.iterdir()] == ["environment.yml"]  # no temp file left


def test_diff_names_the_change(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_text("a==1\nb==1\n")
    result = compare(GeneratedFile(path, "a==1\nb==2\n"))
    assert not result.up_to_date and result.exists
    assert f"--- {path} (on disk)" in result.diff
    assert "-b==1\n+b==2\n" in result.diff


def test_missing_file_and_missing_newline(tmp_path: Path) -> None:
    result = compare(GeneratedFile(tmp_path / "x", "a\n"))
    assert not result.exists and "(missing)" in result.diff and "+a\n" in result.diff
    (tmp_path / "y").write_text("a")
    result = compare(GeneratedFile(tmp_path / "y", "a\n"))
    assert "\\ No newline at end of file" in result.diff


def test_crlf_is_a_difference(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"a\r\n")
    result = compare(GeneratedFile(tmp_path / "x", "a\n"))
    assert not result.up_to_date and result.diff


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_keeps_mode_and_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.yml"
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "link.yml"
    link.symlink_to(real)
    write_atomically(GeneratedFile(link, "new\n"))
    assert link.is_symlink() and real.read_text() == "new\n"
    assert real.stat().st_mode & 0o777 == 0o640


@pytest.mark.skipif(os.name == "nt", reason="POSIX umask")
def test_new_file_follows_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_atomically(GeneratedFile(tmp_path / "n", "x\n"))
    finally:
        os.umask(old)
    assert (tmp_path / "n").stat().st_mode & 0o777 == 0o640


def test_unwritable_places_are_one_error(tmp_path: Path) -> None:
    with pytest.raises(OutputFileError, match="does not exist"):
        write_atomically(GeneratedFile(tmp_path / "nope" / "x", ""))
    (tmp_path / "dir").mkdir()
    with pytest.raises(OutputFileError, match="Cannot write"):
        write_atomically(GeneratedFile(tmp_path / "dir", "x"))  # a directory in the way
