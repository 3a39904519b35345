"""The --deep RECORD check on hand-made installed distributions."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from typing import TYPE_CHECKING

from poetry_snapshot.record import InstalledDistribution
from poetry_snapshot.record import check_records

if TYPE_CHECKING:
    from pathlib import Path


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def install(
    site: Path, name: str, files: dict[str, bytes], extra_rows: list[list[str]] = ()
) -> InstalledDistribution:  # type: ignore[assignment]
    dist_info = site / f"{name}-1.0.dist-info"
    dist_info.mkdir(parents=True)
    out = io.StringIO()
    writer = csv.writer(out)
    for rel, data in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        writer.writerow([rel, f"sha256={b64(data)}", len(data)])
    writer.writerow([f"{dist_info.name}/RECORD", "", ""])
    for row in extra_rows:
        writer.writerow(row)
    (dist_info / "RECORD").write_text(out.getvalue())
    return InstalledDistribution(name, dist_info)


def test_clean_distribution_has_no_problems(tmp_path: Path) -> None:
    site = tmp_path / "venv/lib/site-packages"
    big = bytes(range(256)) * 8192  # 2 MiB: takes the chunked path
    dist = install(site, "pkg", {"pkg/__init__.py": b"x = 1\n", "pkg/big.bin": big})
    check = check_records([dist], tmp_path / "venv/bin", tmp_path / "venv")
    assert check.problems == ()
    assert (check.distributions, check.files, check.bytes) == (1, 2, len(big) + 6)
    assert [u.reason for u in check.unchecked] == ["no hash in RECORD"]


def test_modified_same_size_missing_and_resized_files(tmp_path: Path) -> None:
    site = tmp_path / "venv/lib/site-packages"
    dist = install(
        site, "pkg", {"pkg/a.py": b"a = 1\n", "pkg/b.py": b"b = 2\n", "pkg/c.py": b"c = 3\n"}
    )
    (site / "pkg/a.py").write_bytes(b"a = 9\n")  # same size, other bytes: only the hash can tell
    (site / "pkg/b.py").unlink()
    (site / "pkg/c.py").write_bytes(b"c = 3  # longer\n")
    check = check_records([dist], tmp_path / "venv/bin", tmp_path / "venv", workers=2)
    assert [(p.path, p.problem) for p in check.problems] == [
        ("pkg/a.py", "modified"),
        ("pkg/b.py", "missing"),
        ("pkg/c.py", "modified"),
    ]
    assert check.problems[0].expected == "sha256=" + b64(b"a = 1\n") + ", 6 bytes"
    assert check.problems[0].found == "sha256=" + b64(b"a = 9\n") + ", 6 bytes"
    assert check.problems[2].found == "16 bytes"


def test_unverifiable_entries_are_counted_not_drift(tmp_path: Path) -> None:
    site = tmp_path / "venv/lib/site-packages"
    dist = install(
        site,
        "pkg",
        {"pkg/__init__.py": b""},
        extra_rows=[
            ["pkg/__pycache__/__init__.cpython-311.pyc", "", ""],
            ["pkg/weird.py", "whirlpool=abc", "3"],
        ],
    )
    missing_record = InstalledDistribution("norecord", site / "norecord-1.0.dist-info")
    (site / "norecord-1.0.dist-info").mkdir()
    check = check_records([dist, missing_record], tmp_path / "venv/bin", tmp_path / "venv")
    assert check.problems == ()
    reasons = sorted(u.reason for u in check.unchecked)
    assert reasons == [
        "no RECORD",
        "no hash in RECORD",
        "no hash in RECORD",
        "unsupported hash 'whirlpool'",
    ]


def test_scripts_with_foreign_shebang_are_unchecked_own_shebang_checked(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    site = venv / "lib/site-packages"
    own = f"#!{venv}/bin/python\n".encode()
    dist = install(
        site,
        "tool",
        {"../../bin/tool": own + b"print(1)\n", "../../bin/other": own + b"print(2)\n"},
    )
    (venv / "bin/tool").write_bytes(b"#!/somewhere/else/python\nprint(1)\n")  # relocated
    (venv / "bin/other").write_bytes(own + b"print(3)\n")  # edited under its own shebang
    check = check_records([dist], venv / "bin", venv)
    assert [(p.path, p.problem) for p in check.problems] == [("../../bin/other", "modified")]
    assert ("../../bin/tool", "script shebang rewritten") in {
        (u.path, u.reason) for u in check.unchecked
    }
