"""`--deep`: every installed file of a distribution checked against its RECORD (hash and size).

RECORD (the wheel spec's installed-files list) holds `path,algorithm=urlsafe-b64-digest,size`
for each file the installer wrote; paths are relative to the directory holding `.dist-info`.
Lines without a hash (RECORD itself, `.pyc`, files Poetry or pip append such as
`direct_url.json` and `INSTALLER`) cannot be verified: they are counted, never drift.

Hashing runs in a thread pool (hashlib releases the GIL), in batches to keep the pool's
per-task cost off small files; each file is read once, and not at all when its size is
already wrong.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from poetry_snapshot.drift import UncheckedFile

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Iterator
    from collections.abc import Sequence
    from pathlib import Path

_SMALL_FILE = 1 << 20  # read in one call below this size
_CHUNK = 1 << 20
_BATCH = 64
_HEAD = 512  # enough for a `#!` line


@dataclass(frozen=True)
class InstalledDistribution:
    """A distribution to verify: its name and the `.dist-info` directory holding RECORD."""

    name: str
    dist_info: Path


@dataclass(frozen=True)
class FileProblem:
    package: str
    path: str
    problem: str  # "modified" or "missing"
    expected: str
    found: str


@dataclass(frozen=True)
class RecordCheck:
    distributions: int
    files: int
    bytes: int
    problems: tuple[FileProblem, ...]
    unchecked: tuple[UncheckedFile, ...]


@dataclass(frozen=True)
class _Entry:
    package: str
    record_path: str
    path: str
    algorithm: str
    digest: str
    size: int | None


def check_records(
    distributions: Iterable[InstalledDistribution],
    scripts_dir: Path,
    env_prefix: Path,
    workers: int | None = None,
) -> RecordCheck:
    """Verify the installed files of `distributions` against their RECORDs.

    A script in `scripts_dir` whose `#!` line no longer points into `env_prefix` was rewritten
    after installation (conda and venv relocation tools do this): its RECORD hash cannot be
    checked. A script whose `#!` line is still this env's is checked like any other file.
    """
    entries: list[_Entry] = []
    unchecked: list[UncheckedFile] = []
    count = 0
    for dist in distributions:
        count += 1
        _read_record(dist, entries, unchecked)

    batches = [entries[i : i + _BATCH] for i in range(0, len(entries), _BATCH)]
    problems: list[FileProblem] = []
    hashed = 0
    scripts = os.path.normpath(scripts_dir) + os.sep
    own_shebang = b"#!" + os.fsencode(os.path.normpath(env_prefix)) + os.sep.encode()
    workers = workers or min(32, (os.cpu_count() or 1) + 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for results in pool.map(_check_batch, batches):
            for entry, (state, found, size, head) in results:
                hashed += size if state != "missing" else 0
                if state == "ok":
                    continue
                if state == "missing":
                    problems.append(
                        FileProblem(
                            entry.package, entry.record_path, "missing", _expect(entry), "missing"
                        )
                    )
                elif entry.path.startswith(scripts) and _foreign_shebang(head, own_shebang):
                    # Installers write the env's interpreter into `#!` and hash the result;
                    # relocation tools rewrite that line later, so RECORD cannot vouch for it.
                    unchecked.append(
                        UncheckedFile(entry.package, entry.record_path, "script shebang rewritten")
                    )
                else:
                    problems.append(
                        FileProblem(
                            entry.package, entry.record_path, "modified", _expect(entry), found
                        )
                    )
    problems.sort(key=lambda p: (p.package, p.path))
    return RecordCheck(count, len(entries), hashed, tuple(problems), tuple(unchecked))


def _foreign_shebang(head: bytes, own_shebang: bytes) -> bool:
    first_line = head.split(b"\n", 1)[0]
    return (
        first_line.startswith(b"#!")
        and not first_line.startswith(own_shebang)
        # installer's form for long or spaced interpreter paths: a /bin/sh trampoline
        and first_line != b"#!/bin/sh"
    )


def _read_record(
    dist: InstalledDistribution, entries: list[_Entry], unchecked: list[UncheckedFile]
) -> None:
    record = dist.dist_info / "RECORD"
    try:
        text = record.read_text(encoding="utf-8")
    except OSError:
        unchecked.append(UncheckedFile(dist.name, str(dist.dist_info.name), "no RECORD"))
        return
    root = dist.dist_info.parent
    for row in csv.reader(text.splitlines()):
        if not row or not row[0]:
            continue
        rel = row[0]
        hash_field = row[1] if len(row) > 1 else ""
        if not hash_field:
            unchecked.append(UncheckedFile(dist.name, rel, "no hash in RECORD"))
            continue
        algorithm, _, digest = hash_field.partition("=")
        if algorithm not in hashlib.algorithms_guaranteed or not digest:
            unchecked.append(UncheckedFile(dist.name, rel, f"unsupported hash {algorithm!r}"))
            continue
        size_field = row[2] if len(row) > 2 else ""
        entries.append(
            _Entry(
                package=dist.name,
                record_path=rel,
                path=os.path.normpath(os.path.join(root, rel)),
                algorithm=algorithm,
                digest=digest,
                size=int(size_field) if size_field.isdigit() else None,
            )
        )


def _check_batch(batch: Sequence[_Entry]) -> list[tuple[_Entry, tuple[str, str, int, bytes]]]:
    buffer = bytearray(_CHUNK)
    return [(entry, _check_file(entry, buffer)) for entry in batch]


def _check_file(entry: _Entry, buffer: bytearray) -> tuple[str, str, int, bytes]:
    """(state, what was found, bytes read, the file's first bytes) for one RECORD entry."""
    try:
        fd = os.open(entry.path, os.O_RDONLY)
    except FileNotFoundError:
        return "missing", "missing", 0, b""
    except OSError as e:
        return "unreadable", f"unreadable ({e.strerror})", 0, b""
    try:
        size = os.fstat(fd).st_size
        if entry.size is not None and size != entry.size:
            return "modified", f"{size} bytes", 0, os.read(fd, _HEAD)
        digest, head = _digest(fd, entry.algorithm, size, buffer)
    finally:
        os.close(fd)
    if digest == entry.digest:
        return "ok", "", size, b""
    return "modified", f"{entry.algorithm}={digest}, {size} bytes", size, head


def _digest(fd: int, algorithm: str, size: int, buffer: bytearray) -> tuple[str, bytes]:
    hasher = hashlib.new(algorithm)
    if size < _SMALL_FILE:
        data = _read_all(fd, size)
        hasher.update(data)
        head = data[:_HEAD]
    else:
        view = memoryview(buffer)
        head = b""
        while True:
            n = os.readv(fd, [view]) if hasattr(os, "readv") else _readinto(fd, view)
            if not n:
                break
            if not head:
                head = bytes(view[: min(n, _HEAD)])
            hasher.update(view[:n])
    return base64.urlsafe_b64encode(hasher.digest()).rstrip(b"=").decode("ascii"), head


def _read_all(fd: int, size: int) -> bytes:
    parts = list(_read_until_eof(fd, size + 1))
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _read_until_eof(fd: int, hint: int) -> Iterator[bytes]:
    while True:
        chunk = os.read(fd, max(hint, 4096))
        if not chunk:
            return
        yield chunk


def _readinto(fd: int, view: memoryview) -> int:
    data = os.read(fd, len(view))
    view[: len(data)] = data
    return len(data)


def _expect(entry: _Entry) -> str:
    size = f", {entry.size} bytes" if entry.size is not None else ""
    return f"{entry.algorithm}={entry.digest}{size}"
