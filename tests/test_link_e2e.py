"""`poetry snapshot --link` end to end: the manifest describes the bytes each snapshot holds."""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import TYPE_CHECKING
from typing import Any

import pytest

from tests.test_snapshot_e2e import manifest
from tests.test_snapshot_e2e import published
from tests.test_snapshot_e2e import snapshot

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import MakeProject
    from tests.projects import Project

pytestmark = pytest.mark.e2e

HOUR_NS = 3600 * 10**9


@pytest.fixture
def base_dir(tmp_path: Path, environ: dict[str, str]) -> Path:
    path = tmp_path / "store"
    environ["POETRY_SNAPSHOT_BASE_DIR"] = str(path)
    return path


def project_with_files(make_project: MakeProject) -> Project:
    """A project with 20 text files, half written long ago (their recorded digests are
    trusted unread by the next --link) and half just now (re-read and hashed)."""
    project = make_project("demo", ["beta"])
    old = time.time_ns() - HOUR_NS
    for i in range(20):
        path = project.path / f"file{i}.txt"
        path.write_text(f"content {i}\n" * 100)
        if i % 2 == 0:
            os.utime(path, ns=(old, old + i))
    return project


def files_of(snapshot_dir: Path) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in manifest(snapshot_dir)["files"]}


def assert_manifest_describes_the_bytes(snapshot_dir: Path) -> None:
    for path, record in files_of(snapshot_dir).items():
        if record["type"] == "file":
            data = (snapshot_dir / path).read_bytes()
            assert record["sha256"] == hashlib.sha256(data).hexdigest(), path
            assert record["size"] == len(data), path


def tamper(path: Path) -> None:
    """Overwrite in place with other bytes of the same size, mtime set back: only ctime tells."""
    before = path.stat()
    path.chmod(0o644)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"content", b"CONTENT"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_link_never_shares_bytes_edited_inside_the_previous_snapshot(
    make_project: MakeProject, base_dir: Path
) -> None:
    project = project_with_files(make_project)
    assert snapshot(project, "--exclude", ".venv/").returncode == 0
    [first] = published(base_dir)
    tamper(first / "file2.txt")  # old mtime: its source's digest is trusted unread
    tamper(first / "file3.txt")  # recent mtime: its source is read and hashed
    result = snapshot(project, "--exclude", ".venv/", "--link")
    assert result.returncode == 0, result.stderr
    _, second = published(base_dir)
    assert_manifest_describes_the_bytes(second)
    for name in ("file2.txt", "file3.txt"):
        assert (second / name).read_bytes() == (project.path / name).read_bytes()
        assert (second / name).stat().st_ino != (first / name).stat().st_ino
        assert not files_of(second)[name]["linked"]
    # Everything else is still shared.
    assert (second / "file0.txt").stat().st_ino == (first / "file0.txt").stat().st_ino
    assert (second / "file1.txt").stat().st_ino == (first / "file1.txt").stat().st_ino


def test_three_successive_link_snapshots_share_the_first_ones_files(
    make_project: MakeProject, base_dir: Path
) -> None:
    project = project_with_files(make_project)
    for link in ([], ["--link"], ["--link"]):
        result = snapshot(project, "--exclude", ".venv/", *link)
        assert result.returncode == 0, result.stderr
    first, second, third = published(base_dir)
    copy = manifest(third)["copy"]
    records = files_of(first)
    assert copy["linked_from"] == second.name
    assert copy["files_linked"] == copy["files"] == len(records)
    for path in records:
        assert (third / path).stat().st_ino == (first / path).stat().st_ino, path
    for snap in (first, second, third):
        assert_manifest_describes_the_bytes(snap)


def test_a_manifest_from_before_copy_records_is_read_but_never_linked_from(
    make_project: MakeProject, base_dir: Path
) -> None:
    project = project_with_files(make_project)
    assert snapshot(project, "--exclude", ".venv/").returncode == 0
    [first] = published(base_dir)
    path = first / ".snapshot" / "manifest.json"
    lines = path.read_text().splitlines(keepends=True)
    old = []
    for line in lines:  # as an older poetry-snapshot wrote it: no "copy_stat" in file records
        text = line.strip().rstrip(",")
        if text.startswith('{"path"'):
            record = json.loads(text)
            assert record.pop("copy_stat", None) is not None or record["type"] == "symlink"
            line = line.replace(text, json.dumps(record, separators=(",", ":")))
        old.append(line)
    path.write_text("".join(old))
    result = snapshot(project, "--exclude", ".venv/", "--link")
    assert result.returncode == 0, result.stderr
    _, second = published(base_dir)
    assert manifest(second)["copy"]["files_linked"] == 0
    assert_manifest_describes_the_bytes(second)
