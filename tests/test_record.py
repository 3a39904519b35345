"""The --deep RECORD check on hand-made installed distributions."""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import os
import socket
import stat
import threading
from typing import TYPE_CHECKING
from typing import Any
from typing import Callable

import pytest

from poetry_snapshot.check import installed_files as record_module
from poetry_snapshot.check.env_layout import EnvLayout
from poetry_snapshot.check.installed_files import InstalledDistribution
from poetry_snapshot.check.installed_files import RecordCheck
from poetry_snapshot.check.installed_files import check_records
from poetry_snapshot.check.installed_files import read_installed_files
from poetry_snapshot.check.installed_files import read_record

if TYPE_CHECKING:
    from collections.abc import Iterator
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


def layout_of(venv: Path) -> EnvLayout:
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    return EnvLayout.from_paths(
        str(venv), [str(venv / "lib/site-packages")], str(venv / "bin"), (3, 11)
    )


def check(
    dists: list[InstalledDistribution], venv: Path, workers: int | None = None
) -> RecordCheck:
    layout = layout_of(venv)
    return check_records([read_record(d, layout) for d in dists], layout, workers=workers)


def finishes(call: Callable[[], Any], timeout: float = 60) -> Any:
    """call() in a thread: a regression that blocks fails the test instead of hanging it."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still running after {timeout} s: blocked"
    return result[0]


@pytest.fixture
def fifo_releaser() -> Iterator[list[Path]]:
    """FIFOs a blocked reader may wait on: opened for writing at the end, so it gets EOF."""
    fifos: list[Path] = []
    yield fifos
    for fifo in fifos:
        with contextlib.suppress(OSError):  # no reader waiting: nothing blocked
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_clean_distribution_has_no_problems(tmp_path: Path) -> None:
    site = tmp_path / "venv/lib/site-packages"
    big = bytes(range(256)) * 8192  # 2 MiB: takes the chunked path
    dist = install(site, "pkg", {"pkg/__init__.py": b"x = 1\n", "pkg/big.bin": big})
    result = check([dist], tmp_path / "venv")
    assert result.problems == ()
    assert (result.distributions, result.files, result.bytes) == (1, 2, len(big) + 6)
    assert [u.reason for u in result.unchecked] == ["no hash in RECORD"]


def test_modified_same_size_missing_and_resized_files(tmp_path: Path) -> None:
    site = tmp_path / "venv/lib/site-packages"
    dist = install(
        site, "pkg", {"pkg/a.py": b"a = 1\n", "pkg/b.py": b"b = 2\n", "pkg/c.py": b"c = 3\n"}
    )
    (site / "pkg/a.py").write_bytes(b"a = 9\n")  # same size, other bytes: only the hash can tell
    (site / "pkg/b.py").unlink()
    (site / "pkg/c.py").write_bytes(b"c = 3  # longer\n")
    result = check([dist], tmp_path / "venv", workers=2)
    assert [(p.path, p.problem) for p in result.problems] == [
        ("pkg/a.py", "modified"),
        ("pkg/b.py", "missing"),
        ("pkg/c.py", "modified"),
    ]
    assert result.problems[0].expected == "sha256=" + b64(b"a = 1\n") + ", 6 bytes"
    assert result.problems[0].found == "sha256=" + b64(b"a = 9\n") + ", 6 bytes"
    assert result.problems[2].found == "16 bytes"


def test_unverifiable_entries_are_counted_not_drift(tmp_path: Path) -> None:
    site = tmp_path / "venv/lib/site-packages"
    dist = install(
        site,
        "pkg",
        {"pkg/__init__.py": b""},
        extra_rows=[
            ["pkg/__pycache__/__init__.cpython-311.pyc", "", ""],
            ["pkg/weird.py", "whirlpool=abc", "3"],
            ["pkg/odd.py", f"sha256={b64(b'')}", "\u00b2"],  # isdigit() but not a number
        ],
    )
    (site / "pkg/odd.py").write_bytes(b"")
    missing_record = InstalledDistribution("norecord", site / "norecord-1.0.dist-info")
    (site / "norecord-1.0.dist-info").mkdir()
    result = check([dist, missing_record], tmp_path / "venv")
    assert result.problems == ()
    reasons = sorted(u.reason for u in result.unchecked)
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
    result = check([dist], venv)
    assert [(p.path, p.problem) for p in result.problems] == [("../../bin/other", "modified")]
    assert ("../../bin/tool", "script shebang rewritten") in {
        (u.path, u.reason) for u in result.unchecked
    }


# --- never block, never leave the env ---------------------------------------------------------


def test_fifo_socket_and_directory_entries_are_reported_not_opened(
    tmp_path: Path, fifo_releaser: list[Path]
) -> None:
    venv = tmp_path / "venv"
    site = venv / "lib/site-packages"
    dist = install(
        site,
        "pkg",
        {"pkg/fifo.py": b"x\n", "pkg/sock.py": b"y\n", "pkg/dir.py": b"z\n", "pkg/ok.py": b"o\n"},
    )
    (site / "pkg/fifo.py").unlink()
    os.mkfifo(site / "pkg/fifo.py")
    fifo_releaser.append(site / "pkg/fifo.py")
    (site / "pkg/sock.py").unlink()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(site / "pkg/sock.py"))
    (site / "pkg/dir.py").unlink()
    (site / "pkg/dir.py").mkdir()
    try:
        result = finishes(lambda: check([dist], venv))
    finally:
        server.close()
    assert [(p.path, p.problem, p.found) for p in result.problems] == [
        ("pkg/dir.py", "refused", "a directory; not opened"),
        ("pkg/fifo.py", "refused", "a fifo; not opened"),
        ("pkg/sock.py", "refused", "a socket; not opened"),
    ]
    assert result.problems[0].expected == f"sha256={b64(b'z' + bytes([10]))}, 2 bytes"


def test_entries_outside_the_env_are_reported_not_opened(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    site = venv / "lib/site-packages"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s\n")
    dist = install(
        site,
        "pkg",
        {"pkg/ok.py": b"o\n", "pkg/zero": b"\0\0", "pkg/via/secret": b"s\n"},
        extra_rows=[
            ["/dev/zero", f"sha256={b64(b'')}", "0"],
            ["../../../outside/secret", f"sha256={b64(b's' + bytes([10]))}", "2"],
            ["../../../outside/unhashed", "", ""],
        ],
    )
    # a symlink out of the env, to a device; a directory on the way that leads out
    (site / "pkg/zero").unlink()
    (site / "pkg/zero").symlink_to("/dev/zero")
    (site / "pkg/via/secret").unlink()
    (site / "pkg/via").rmdir()
    (site / "pkg/via").symlink_to(outside)
    result = finishes(lambda: check([dist], venv))
    found = {p.path: (p.problem, p.found) for p in result.problems}
    real_outside = os.path.realpath(outside)
    assert found == {
        "/dev/zero": ("refused", "outside the environment: /dev/zero; not opened"),
        "../../../outside/secret": (
            "refused",
            f"outside the environment: {real_outside}/secret; not opened",
        ),
        "../../../outside/unhashed": (
            "refused",
            f"outside the environment: {real_outside}/unhashed; not opened",
        ),
        "pkg/via/secret": (
            "refused",
            f"outside the environment: {real_outside}/secret; not opened",
        ),
        "pkg/zero": ("refused", "a symlink to /dev/zero, outside the environment; not opened"),
    }
    assert result.bytes == 2  # only pkg/ok.py was read


def test_symlink_inside_the_env_is_followed(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    site = venv / "lib/site-packages"
    dist = install(site, "pkg", {"pkg/a.py": b"a\n", "pkg/b.py": b"a\n"})
    (site / "pkg/b.py").unlink()
    (site / "pkg/b.py").symlink_to("a.py")
    assert check([dist], venv).problems == ()


def test_file_replaced_by_a_fifo_after_lstat_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fifo_releaser: list[Path]
) -> None:
    venv = tmp_path / "venv"
    site = venv / "lib/site-packages"
    dist = install(site, "pkg", {"pkg/race.py": b"r\n"})
    layout = layout_of(venv)
    read = read_record(dist, layout)
    (site / "pkg/race.py").unlink()
    os.mkfifo(site / "pkg/race.py")
    fifo_releaser.append(site / "pkg/race.py")
    regular = os.stat_result((stat.S_IFREG | 0o644, 0, 0, 1, 0, 0, 2, 0, 0, 0))
    real_lstat = os.lstat
    monkeypatch.setattr(
        record_module.os,
        "lstat",
        lambda p, *a, **k: regular if str(p).endswith("race.py") else real_lstat(p, *a, **k),
    )
    result = finishes(lambda: check_records([read], layout))
    assert [(p.path, p.found) for p in result.problems] == [("pkg/race.py", "a fifo; not opened")]


def test_record_that_is_a_fifo_is_reported_not_opened(
    tmp_path: Path, fifo_releaser: list[Path]
) -> None:
    venv = tmp_path / "venv"
    site = venv / "lib/site-packages"
    dist = install(site, "pkg", {"pkg/a.py": b"a\n"})
    (dist.dist_info / "RECORD").unlink()
    os.mkfifo(dist.dist_info / "RECORD")
    fifo_releaser.append(dist.dist_info / "RECORD")
    result = finishes(lambda: check([dist], venv))
    assert [(p.path, p.problem, p.found) for p in result.problems] == [
        (
            "pkg-1.0.dist-info/RECORD",
            "record",
            "RECORD is a fifo; not opened; its files were not checked",
        )
    ]


# --- RECORDs that cannot be read ----------------------------------------------------------------


def test_record_not_utf8_is_reported_and_its_paths_still_known(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    site = venv / "lib/site-packages"
    bad = install(site, "bad", {"bad/__init__.py": b"b\n"})
    good = install(site, "good", {"good/__init__.py": b"g\n"})
    (site / "good/__init__.py").write_bytes(b"G\n")
    latin = "bad/caf\xe9.py".encode("latin-1")  # a name written in Latin-1, not UTF-8
    (site / os.fsdecode(latin)).write_bytes(b"")
    record = bad.dist_info / "RECORD"
    record.write_bytes(record.read_bytes() + latin + b",,\n")
    layout = layout_of(venv)
    read = read_record(bad, layout)
    assert [(p.path, p.problem) for p in read.problems] == [("bad-1.0.dist-info/RECORD", "record")]
    assert read.problems[0].found.startswith("not UTF-8 (byte ")
    assert read.problems[0].found.endswith("; unreadable, its files were not checked")
    assert read.entries == ()
    # os.scandir returns the same str for that name: the file is still known to be bad's.
    assert os.path.join(layout.site_dirs[0], os.fsdecode(latin)) in read.paths
    result = check_records([read, read_record(good, layout)], layout)
    assert [(p.package, p.path) for p in result.problems] == [
        ("bad", "bad-1.0.dist-info/RECORD"),
        ("good", "good/__init__.py"),
    ]


def test_record_not_csv_is_reported(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    site = venv / "lib/site-packages"
    dist = install(site, "pkg", {"pkg/a.py": b"a\n"})
    record = dist.dist_info / "RECORD"
    record.write_text(record.read_text() + "x" * 200_000 + ",,\n")  # beyond csv's field limit
    result = check([dist], venv)
    assert [(p.path, p.problem) for p in result.problems] == [
        ("pkg-1.0.dist-info/RECORD", "record")
    ]
    assert result.problems[0].found.startswith("not parseable as CSV (line 3: field larger")


def test_installed_files_of_an_egg_info(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    site = venv / "lib/site-packages"
    egg = site / "legacy-1.0-py3.11.egg-info"
    egg.mkdir(parents=True)
    (egg / "installed-files.txt").write_text("../legacy/__init__.py\nPKG-INFO\n\n")
    layout = layout_of(venv)
    real_site = layout.site_dirs[0]
    assert set(read_installed_files(egg, layout)) == {
        f"{real_site}/legacy/__init__.py",
        f"{real_site}/legacy-1.0-py3.11.egg-info/PKG-INFO",
        f"{real_site}/legacy-1.0-py3.11.egg-info/installed-files.txt",
    }
    assert read_installed_files(site / "none.egg-info", layout) == ()
