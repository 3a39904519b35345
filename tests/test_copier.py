"""The copy engine on a real filesystem: fidelity, hashes, --link dedup, failures."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import NamedTuple

import pytest

from poetry_snapshot.errors import CopyError
from poetry_snapshot.errors import SnapshotError
from poetry_snapshot.hashing import CHUNK
from poetry_snapshot.snapshot import copier
from poetry_snapshot.snapshot.copier import CopiedFile
from poetry_snapshot.snapshot.copier import CopyResult
from poetry_snapshot.snapshot.copier import LinkBase
from poetry_snapshot.snapshot.copier import copy_selection

# The copier never imports Poetry: one run, against the newest Poetry, covers it.
pytestmark = pytest.mark.poetry_independent

if TYPE_CHECKING:
    from collections.abc import Iterator


# --- a stand-in for selection.select(): every file and symlink under a root ------------------


class Entry(NamedTuple):
    path: str
    kind: str
    size: int
    mode: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int
    link_target: str | None


@dataclass(frozen=True)
class Tree:
    root: Path
    entries: tuple[Entry, ...]
    source: str = "filesystem"
    skipped: tuple[object, ...] = ()
    warnings: tuple[str, ...] = ()


def select_tree(root: Path) -> Tree:
    """Every file and symlink under `root`, like selection.select() outside git."""
    entries: list[Entry] = []

    def walk(directory: bytes, prefix: bytes) -> None:
        with os.scandir(directory) as items:
            for item in items:
                relative = prefix + item.name
                st = item.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    walk(item.path, relative + b"/")
                    continue
                if stat.S_ISLNK(st.st_mode):
                    kind, target = "symlink", os.fsdecode(os.readlink(item.path))
                elif stat.S_ISREG(st.st_mode):
                    kind, target = "file", None
                else:
                    continue
                entries.append(
                    Entry(
                        os.fsdecode(relative),
                        kind,
                        st.st_size,
                        stat.S_IMODE(st.st_mode),
                        st.st_mtime_ns,
                        st.st_ctime_ns,
                        st.st_ino,
                        st.st_dev,
                        target,
                    )
                )

    walk(os.fsencode(root), b"")
    entries.sort(key=lambda e: os.fsencode(e.path))
    return Tree(root, tuple(entries))


def write(path: Path, data: bytes, mode: int = 0o644, mtime_ns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


HOUR = 3600 * 10**9
OLD = time.time_ns() - 24 * HOUR  # well before any LinkBase.created_ns - RACY_NS
NOW = time.time_ns() + HOUR  # a LinkBase.created_ns that trusts every source's signature


def copy(tree: Tree, destination: Path, **options: object) -> CopyResult:
    destination.mkdir()
    return copy_selection(tree, destination, **options)  # type: ignore[arg-type]


def link_base(result: CopyResult, root: Path, created_ns: int | None = None) -> LinkBase:
    return LinkBase(root, {f.path: f for f in result.files}, created_ns or time.time_ns())


# --- fidelity ------------------------------------------------------------------------------


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    write(root / "README.md", b"# demo\n", 0o644, OLD)
    write(root / "empty", b"", 0o600, OLD + 1)
    write(root / "run.sh", b"#!/bin/sh\necho hi\n", 0o755, OLD + 123_456_789)
    write(root / "frozen.txt", b"read only\n", 0o444, OLD)
    write(root / "setuid", b"x", 0o4750, OLD)
    write(root / "src/pkg/__init__.py", b"", 0o644, OLD)
    write(root / "src/pkg/mod.py", os.urandom(5000), 0o640, OLD + 7)
    # Around the in-memory limit, and a streamed one in several chunks.
    write(root / "data/almost.bin", os.urandom(copier._LARGE - 1), 0o644, OLD)
    write(root / "data/big.bin", os.urandom(3 * CHUNK + 12345), 0o644, OLD)
    (root / "links").mkdir()
    (root / "links/relative").symlink_to("../README.md")
    (root / "links/absolute").symlink_to("/etc/hostname")
    (root / "links/dangling").symlink_to("nowhere/at/all")
    (root / "links/to-dir").symlink_to("../src")
    for link in (root / "links").iterdir():
        os.utime(link, ns=(OLD, OLD + 99), follow_symlinks=False)
    # Directory modes and times, read-only ones included; set last, deepest first.
    (root / "data").chmod(0o555)
    (root / "src/pkg").chmod(0o750)
    for directory, when in [
        ("src/pkg", OLD + 5),
        ("src", OLD + 6),
        ("data", OLD + 8),
        ("links", OLD + 9),
    ]:
        os.utime(root / directory, ns=(OLD, when))
    return root


@pytest.fixture(autouse=True)
def writable_tmp(tmp_path: Path) -> Iterator[None]:
    """Read-only directories and links would stop pytest's cleanup of tmp_path."""
    yield
    for root, directories, _ in os.walk(tmp_path):
        for name in directories:
            child = Path(root, name)
            if not child.is_symlink():
                child.chmod(0o755)


def assert_same_tree(source: Path, copy: Path) -> None:
    seen = []
    for root, directories, files in os.walk(os.fsencode(source)):
        relative = os.path.relpath(root, os.fsencode(source))
        for name in directories + files:
            a = os.path.join(root, name)
            b = os.path.join(os.fsencode(copy), relative, name)
            sa, sb = os.lstat(a), os.lstat(b)
            seen.append(os.path.join(relative, name))
            assert stat.S_IFMT(sa.st_mode) == stat.S_IFMT(sb.st_mode), a
            assert sa.st_mtime_ns == sb.st_mtime_ns, a
            if stat.S_ISLNK(sa.st_mode):
                assert os.readlink(a) == os.readlink(b)
                continue
            assert stat.S_IMODE(sa.st_mode) == stat.S_IMODE(sb.st_mode), a
            if stat.S_ISREG(sa.st_mode):
                with open(a, "rb") as fa, open(b, "rb") as fb:
                    assert fa.read() == fb.read(), a
    copied = [
        os.path.join(os.path.relpath(root, os.fsencode(copy)), name)
        for root, directories, files in os.walk(os.fsencode(copy))
        for name in directories + files
    ]
    assert sorted(copied) == sorted(seen)


def test_copy_keeps_content_modes_times_and_symlinks(source: Path, tmp_path: Path) -> None:
    tree = select_tree(source)
    result = copy(tree, tmp_path / "snap")
    assert_same_tree(source, tmp_path / "snap")
    assert [f.path for f in result.files] == [e.path for e in tree.entries]
    for entry, copied in zip(tree.entries, result.files):
        assert copied.kind == entry.kind
        assert (copied.size, copied.mode, copied.mtime_ns) == (
            entry.size,
            entry.mode,
            entry.mtime_ns,
        )
        assert (copied.ctime_ns, copied.inode, copied.device) == (
            entry.ctime_ns,
            entry.inode,
            entry.device,
        )
        assert copied.linked is False
        if entry.kind == "file":
            assert copied.sha256 == hashlib.sha256((source / entry.path).read_bytes()).digest()
            assert copied.link_target is None
        else:
            assert copied.sha256 is None
            assert copied.link_target == entry.link_target
    assert result.bytes_copied == sum(e.size for e in tree.entries if e.kind == "file")
    assert (result.bytes_linked, result.files_linked) == (0, 0)


def test_modes_are_exact_whatever_the_umask(source: Path, tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        copy(select_tree(source), tmp_path / "snap")
    finally:
        os.umask(old)
    assert_same_tree(source, tmp_path / "snap")


def test_destination_root_is_left_to_the_caller(source: Path, tmp_path: Path) -> None:
    destination = tmp_path / "snap"
    destination.mkdir(mode=0o700)
    destination.chmod(0o700)
    copy_selection(select_tree(source), destination, workers=1)  # type: ignore[arg-type]
    assert stat.S_IMODE(destination.stat().st_mode) == 0o700


def test_names_that_are_not_utf8_survive(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    raw_dir = os.path.join(os.fsencode(root), b"caf\xe9")
    os.mkdir(raw_dir)
    with open(os.path.join(raw_dir, b"na\xefve-\xff.txt"), "wb") as stream:
        stream.write(b"latin-1 bytes in the name")
    os.symlink(b"na\xefve-\xff.txt", os.path.join(raw_dir, b"link-\xfe"))
    tree = select_tree(root)
    assert any("\udcff" in e.path for e in tree.entries)  # surrogate-escaped, as selection gives
    result = copy(tree, tmp_path / "snap")
    snap = os.fsencode(tmp_path / "snap")
    with open(os.path.join(snap, b"caf\xe9", b"na\xefve-\xff.txt"), "rb") as stream:
        assert stream.read() == b"latin-1 bytes in the name"
    assert os.readlink(os.path.join(snap, b"caf\xe9", b"link-\xfe")) == b"na\xefve-\xff.txt"
    [file] = [f for f in result.files if f.kind == "file"]
    assert file.sha256 == hashlib.sha256(b"latin-1 bytes in the name").digest()


@pytest.mark.parametrize("workers", [1, 2, 8])
def test_many_files_in_parallel(tmp_path: Path, workers: int) -> None:
    root = tmp_path / "project"
    contents = {f"d{i % 7}/e{i % 3}/f{i}.py": os.urandom(i * 37 % 9000) for i in range(600)}
    for path, data in contents.items():
        write(root / path, data, 0o644, OLD + 1000 * len(data))
    result = copy(select_tree(root), tmp_path / "snap", workers=workers)
    assert {f.path: f.sha256 for f in result.files} == {
        p: hashlib.sha256(d).digest() for p, d in contents.items()
    }
    assert_same_tree(root, tmp_path / "snap")


def test_server_side_copy_path(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """copy_file_range, as on NFS 4.2: the large file is copied by the kernel, hashed after."""
    monkeypatch.setattr(copier, "_filesystem_type", lambda path: "nfs4")
    calls = []
    real = os.copy_file_range

    def counted(*args: int) -> int:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(os, "copy_file_range", counted)
    result = copy(select_tree(source), tmp_path / "snap")
    assert calls
    assert_same_tree(source, tmp_path / "snap")
    big = next(f for f in result.files if f.path == "data/big.bin")
    assert big.sha256 == hashlib.sha256((source / "data/big.bin").read_bytes()).digest()


def test_progress_is_reported_from_the_calling_thread(tmp_path: Path) -> None:
    root = tmp_path / "project"
    for i in range(300):
        write(root / f"f{i}", os.urandom(3000))
    write(root / "big", os.urandom(5 * CHUNK))
    total = 300 * 3000 + 5 * CHUNK
    calls: list[tuple[int, int]] = []
    threads = set()

    def progress(done: int, all_bytes: int) -> None:
        calls.append((done, all_bytes))
        threads.add(threading.get_ident())

    copy(select_tree(root), tmp_path / "snap", progress=progress)
    assert calls[-1] == (total, total)
    assert all(t == total for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert threads == {threading.get_ident()}


# --- --link --------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for i in range(40):
        write(root / f"pkg/m{i}.py", f"# module {i}\n".encode() * (i + 1), 0o644, OLD + i)
    write(root / "tool.sh", b"#!/bin/sh\n", 0o755, OLD)
    write(root / "big.bin", os.urandom(2 * copier._LARGE), 0o644, OLD)
    (root / "link").symlink_to("tool.sh")
    return root


def test_link_hard_links_unchanged_files_read_only(project: Path, tmp_path: Path) -> None:
    first = copy(select_tree(project), tmp_path / "one")
    base = link_base(first, tmp_path / "one")
    second = copy(select_tree(project), tmp_path / "two", link_base=base)

    files = [f for f in second.files if f.kind == "file"]
    assert all(f.linked for f in files)
    assert second.files_linked == len(files) == 42
    assert second.bytes_linked == sum(f.size for f in files)
    assert second.bytes_copied == 0
    for f in files:
        new, old = tmp_path / "two" / f.path, tmp_path / "one" / f.path
        assert new.stat().st_ino == old.stat().st_ino
        assert stat.S_IMODE(new.stat().st_mode) & 0o222 == 0  # editing one snapshot must fail
        assert f.mode == stat.S_IMODE((project / f.path).stat().st_mode)  # the source's, recorded
        assert f.sha256 == base.files[f.path].sha256
    assert stat.S_IMODE((tmp_path / "two/tool.sh").stat().st_mode) == 0o555
    assert (tmp_path / "two/link").is_symlink()
    assert_same_contents(project, tmp_path / "two")


def assert_same_contents(source: Path, copy: Path) -> None:
    for entry in select_tree(source).entries:
        if entry.kind == "file":
            assert (copy / entry.path).read_bytes() == (source / entry.path).read_bytes()
            assert (copy / entry.path).stat().st_mtime_ns == entry.mtime_ns


def test_link_does_not_read_unchanged_files(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = copy(select_tree(project), tmp_path / "one")
    opened: list[str] = []
    real_open = os.open

    def recording_open(path: str, flags: int, *args: int, **kwargs: int) -> int:
        opened.append(os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    second = copy(
        select_tree(project), tmp_path / "two", link_base=link_base(first, tmp_path / "one")
    )
    assert second.files_linked == 42
    assert not [p for p in opened if p.startswith(str(project))]


def test_link_copies_changed_files(project: Path, tmp_path: Path) -> None:
    first = copy(select_tree(project), tmp_path / "one")
    write(project / "pkg/m1.py", b"changed\n", 0o644, OLD + 1)  # other size, same mtime
    same_size = b"# module 2\n# mobile 2\n# module 2\n"
    assert len(same_size) == (project / "pkg/m2.py").stat().st_size
    write(project / "pkg/m2.py", same_size, 0o644, OLD + 2)  # same size and mtime, new content
    write(project / "pkg/m3.py", b"# module 3\n" * 4, 0o644, time.time_ns())  # newer
    (project / "pkg/m4.py").chmod(0o755)  # same content, other mode
    second = copy(
        select_tree(project), tmp_path / "two", link_base=link_base(first, tmp_path / "one")
    )
    by_path = {f.path: f for f in second.files}
    for changed in ("pkg/m1.py", "pkg/m2.py", "pkg/m3.py", "pkg/m4.py"):
        assert not by_path[changed].linked, changed
        new = tmp_path / "two" / changed
        assert new.stat().st_ino != (tmp_path / "one" / changed).stat().st_ino
        assert by_path[changed].sha256 == hashlib.sha256(new.read_bytes()).digest()
    assert stat.S_IMODE((tmp_path / "two/pkg/m4.py").stat().st_mode) == 0o755
    assert second.files_linked == 38
    assert_same_contents(project, tmp_path / "two")


def test_link_rehashes_files_too_recent_to_trust(project: Path, tmp_path: Path) -> None:
    """A write in the same timestamp tick as the previous snapshot's read leaves the stat
    signature as it was: the previous record's digest then describes older content."""
    first = copy(select_tree(project), tmp_path / "one")
    created = time.time_ns()
    stale = {
        f.path: f._replace(sha256=hashlib.sha256(b"what it held when it was read").digest())
        for f in first.files
    }
    for name, mtime in (
        ("pkg/m5.py", created - copier.RACY_NS // 2),
        ("pkg/m6.py", created - 2 * copier.RACY_NS),
    ):
        os.utime(project / name, ns=(mtime, mtime))
        os.utime(tmp_path / "one" / name, ns=(mtime, mtime))
        current = os.lstat(project / name)
        held = os.lstat(tmp_path / "one" / name)  # as if the previous snapshot had set it
        stale[name] = stale[name]._replace(
            mtime_ns=mtime, ctime_ns=current.st_ctime_ns, copy_ctime_ns=held.st_ctime_ns
        )
    base = LinkBase(tmp_path / "one", stale, created)
    second = copy(select_tree(project), tmp_path / "two", link_base=base)
    by_path = {f.path: f for f in second.files}
    racy = by_path["pkg/m5.py"]  # hashed: the digest is wrong, so it was copied
    assert not racy.linked
    assert racy.sha256 == hashlib.sha256((project / "pkg/m5.py").read_bytes()).digest()
    trusted = by_path["pkg/m6.py"]  # old enough: the record is trusted, unread
    assert trusted.linked
    assert trusted.sha256 == stale["pkg/m6.py"].sha256


def test_link_skips_a_previous_copy_that_was_modified(project: Path, tmp_path: Path) -> None:
    first = copy(select_tree(project), tmp_path / "one")
    tampered = tmp_path / "one/pkg/m7.py"
    tampered.chmod(0o644)
    tampered.write_bytes(b"edited inside the old snapshot\n")
    touched = tmp_path / "one/pkg/m8.py"
    os.utime(touched, ns=(OLD, OLD + 10**9))
    (tmp_path / "one/pkg/m9.py").unlink()
    second = copy(
        select_tree(project), tmp_path / "two", link_base=link_base(first, tmp_path / "one")
    )
    by_path = {f.path: f for f in second.files}
    for name in ("pkg/m7.py", "pkg/m8.py", "pkg/m9.py"):
        assert not by_path[name].linked
    assert second.files_linked == 39
    assert_same_contents(project, tmp_path / "two")


def tamper_in_place(path: Path) -> None:
    """Other bytes of the same size, mtime set back: only the inode's ctime still tells."""
    before = path.stat()
    path.chmod(0o644)
    data = path.read_bytes()
    with open(path, "r+b") as stream:
        stream.write(bytes(b ^ 0xFF for b in data[:16]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


def test_link_never_shares_a_previous_copy_modified_in_place(project: Path, tmp_path: Path) -> None:
    first = copy(select_tree(project), tmp_path / "one")
    tamper_in_place(tmp_path / "one/pkg/m7.py")  # source unchanged: its digest is trusted unread
    tamper_in_place(tmp_path / "one/big.bin")  # a large file, same path
    source = project / "pkg/m8.py"  # source rewritten with the same bytes: read and hashed
    write(source, source.read_bytes(), 0o644, OLD + 8)
    tamper_in_place(tmp_path / "one/pkg/m8.py")
    second = copy(
        select_tree(project), tmp_path / "two", link_base=link_base(first, tmp_path / "one")
    )
    by_path = {f.path: f for f in second.files}
    for name in ("pkg/m7.py", "pkg/m8.py", "big.bin"):
        held = (tmp_path / "two" / name).read_bytes()
        assert held == (project / name).read_bytes(), name
        assert by_path[name].sha256 == hashlib.sha256(held).digest(), name
        assert not by_path[name].linked, name
    assert second.files_linked == 39
    assert_same_contents(project, tmp_path / "two")


def assert_copy_records_are_current(result: CopyResult, root: Path) -> None:
    """Each file's copy signature is its copy's lstat now: taken after the last change."""
    for f in result.files:
        if f.kind == "file":
            st = os.lstat(root / f.path)
            assert (f.copy_ctime_ns, f.copy_inode, f.copy_device) == (
                st.st_ctime_ns,
                st.st_ino,
                st.st_dev,
            ), f.path
        else:
            assert (f.copy_ctime_ns, f.copy_inode, f.copy_device) == (None, None, None)


def test_each_snapshot_records_its_copies_as_it_left_them(source: Path, tmp_path: Path) -> None:
    (source / "frozen.txt").chmod(0o644)  # a second snapshot links it and makes it read-only
    first = copy(select_tree(source), tmp_path / "one")
    assert_copy_records_are_current(first, tmp_path / "one")
    second = copy(
        select_tree(source), tmp_path / "two", link_base=link_base(first, tmp_path / "one")
    )
    assert second.files_linked == len([f for f in second.files if f.kind == "file"])
    assert_copy_records_are_current(second, tmp_path / "two")


def test_three_successive_link_snapshots_share_the_first_copies(
    project: Path, tmp_path: Path
) -> None:
    results = [copy(select_tree(project), tmp_path / "s0")]
    for n in (1, 2):
        base = link_base(results[-1], tmp_path / f"s{n - 1}")
        results.append(copy(select_tree(project), tmp_path / f"s{n}", link_base=base))
    third = results[2]
    files = [f for f in third.files if f.kind == "file"]
    assert third.files_linked == len(files) == 42
    for f in files:
        assert (tmp_path / "s2" / f.path).stat().st_ino == (tmp_path / "s0" / f.path).stat().st_ino
        assert f.sha256 == hashlib.sha256((tmp_path / "s2" / f.path).read_bytes()).digest()
    assert_copy_records_are_current(third, tmp_path / "s2")


def test_a_base_another_snapshot_linked_from_meanwhile_is_copied(
    project: Path, tmp_path: Path
) -> None:
    """Two --link snapshots from the same base (concurrent runs): the second sees the ctimes
    the first one's links left and copies; no record describes bytes it does not hold."""
    first = copy(select_tree(project), tmp_path / "one")
    base = link_base(first, tmp_path / "one")
    second = copy(select_tree(project), tmp_path / "two", link_base=base)
    assert second.files_linked == 42
    third = copy(select_tree(project), tmp_path / "three", link_base=base)
    assert third.files_linked == 0
    for f in third.files:
        if f.kind == "file":
            held = (tmp_path / "three" / f.path).read_bytes()
            assert f.sha256 == hashlib.sha256(held).digest()
            assert held == (project / f.path).read_bytes()


def test_records_without_a_copy_signature_are_never_linked(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest written before copy signatures were recorded proves nothing about its copies."""
    first = copy(select_tree(project), tmp_path / "one")
    old = {
        f.path: f._replace(copy_ctime_ns=None, copy_inode=None, copy_device=None)
        for f in first.files
    }
    monkeypatch.setattr(os, "link", None)  # any attempt to link fails the test
    second = copy(
        select_tree(project), tmp_path / "two", link_base=LinkBase(tmp_path / "one", old, NOW)
    )
    assert second.files_linked == 0
    assert_same_contents(project, tmp_path / "two")


def test_a_previous_copy_replaced_while_linking_is_not_kept(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Swapped for another file between the check and the link: the new link is undone."""
    first = copy(select_tree(project), tmp_path / "one")
    real_link = os.link

    def swap_first(src: str, dst: str) -> None:
        if src.endswith("m9.py"):
            old = Path(src)
            st = old.stat()
            other = write(old.with_name("other"), bytes(st.st_size), 0o444, st.st_mtime_ns)
            os.replace(other, old)  # made while the old inode lives: another inode number
        real_link(src, dst)

    monkeypatch.setattr(os, "link", swap_first)
    second = copy(
        select_tree(project), tmp_path / "two", link_base=link_base(first, tmp_path / "one")
    )
    swapped = next(f for f in second.files if f.path == "pkg/m9.py")
    assert not swapped.linked
    held = (tmp_path / "two/pkg/m9.py").read_bytes()
    assert held == (project / "pkg/m9.py").read_bytes()
    assert swapped.sha256 == hashlib.sha256(held).digest()
    assert second.files_linked == 41


def test_link_across_filesystems_falls_back_to_copying(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = copy(select_tree(project), tmp_path / "one")
    calls = []

    def cross_device(src: str, dst: str) -> None:
        calls.append(src)
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "link", cross_device)
    second = copy(
        select_tree(project),
        tmp_path / "two",
        link_base=link_base(first, tmp_path / "one"),
        workers=1,
    )
    assert second.files_linked == 0
    assert len(calls) == 1  # EXDEV holds for every file: linking stops after the first
    assert_same_contents(project, tmp_path / "two")
    assert_same_tree(project, tmp_path / "two")


def test_link_count_limit_falls_back_for_that_file(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = copy(select_tree(project), tmp_path / "one")
    real_link = os.link

    def limited(src: str, dst: str) -> None:
        if src.endswith("m3.py"):
            raise OSError(errno.EMLINK, os.strerror(errno.EMLINK))
        real_link(src, dst)

    monkeypatch.setattr(os, "link", limited)
    second = copy(
        select_tree(project), tmp_path / "two", link_base=link_base(first, tmp_path / "one")
    )
    by_path = {f.path: f for f in second.files}
    assert not by_path["pkg/m3.py"].linked
    assert second.files_linked == 41
    assert_same_contents(project, tmp_path / "two")


def test_link_large_file_with_new_signature_is_hashed_then_linked(
    project: Path, tmp_path: Path
) -> None:
    first = copy(select_tree(project), tmp_path / "one")
    data = (project / "big.bin").read_bytes()
    (project / "big.bin").unlink()
    write(project / "big.bin", data, 0o644, OLD)  # same content and mtime, new inode and ctime
    second = copy(
        select_tree(project), tmp_path / "two", link_base=link_base(first, tmp_path / "one")
    )
    big = next(f for f in second.files if f.path == "big.bin")
    assert big.linked
    assert big.inode == (project / "big.bin").stat().st_ino  # the new signature is recorded


# --- failures ------------------------------------------------------------------------------


def one_line(error: SnapshotError) -> str:
    text = str(error)
    assert "\n" not in text
    text.encode("utf-8")  # printable: no surrogates
    return text


def test_a_file_that_vanished_names_the_file(project: Path, tmp_path: Path) -> None:
    tree = select_tree(project)
    (project / "pkg/m11.py").unlink()
    with pytest.raises(CopyError) as raised:
        copy(tree, tmp_path / "snap")
    assert "'pkg/m11.py' disappeared from the project" in one_line(raised.value)


def test_unreadable_source_names_the_file(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def denied(path: str, flags: int, *args: int, **kwargs: int) -> int:
        if os.fspath(path).endswith("m12.py") and not flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)  # root reads everything: simulate the denial
    with pytest.raises(CopyError) as raised:
        copy(select_tree(project), tmp_path / "snap")
    assert one_line(raised.value).startswith("Cannot read 'pkg/m12.py': permission denied.")


def test_error_names_are_printable(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    name = os.path.join(os.fsencode(root), b"bad-\xff")
    with open(name, "wb"):
        pass
    tree = select_tree(root)
    os.unlink(name)
    with pytest.raises(CopyError) as raised:
        copy(tree, tmp_path / "snap")
    assert "'bad-\\xff'" in one_line(raised.value)


@contextmanager
def tmpfs(mount: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at `mount` for the block; skips the test where mounting is not allowed."""
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command: cannot make a small or read-only filesystem")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small-disk", "size=1m") as mount:
        yield mount


def test_full_disk_is_one_clear_error(tmp_path: Path, small_disk: Path) -> None:
    root = tmp_path / "project"
    for i in range(40):
        write(root / f"f{i:02}.bin", os.urandom(100_000))
    with pytest.raises(CopyError) as raised:
        copy(select_tree(root), small_disk / "snap", workers=4)
    text = one_line(raised.value)
    assert text.startswith("No space left on the snapshot's filesystem while copying 'f")
    assert "--base-dir" in text


def test_read_only_destination_is_one_clear_error(tmp_path: Path, small_disk: Path) -> None:
    (small_disk / "snap").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    root = tmp_path / "project"
    write(root / "a/b.txt", b"x")
    with pytest.raises(CopyError) as raised:
        copy_selection(select_tree(root), small_disk / "snap")  # type: ignore[arg-type]
    assert one_line(raised.value) == (
        "Cannot write 'a' into the snapshot: Read-only file system."
        " Choose a writable base directory (--base-dir)."
    )


def test_one_failure_stops_the_other_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    for i in range(2000):
        write(root / f"d{i % 10}/f{i}", b"x" * 100)
    tree = select_tree(root)
    (root / "d0/f0").unlink()  # the first file of the first batch
    real_file = copier._Copier._file

    def after_the_failure(self: copier._Copier, entry: Entry, meter: copier._Meter) -> object:
        if entry.path != "d0/f0":
            self.stop.wait(timeout=60)  # every other file waits until the failure is in
        return real_file(self, entry, meter)

    monkeypatch.setattr(copier._Copier, "_file", after_the_failure)
    with pytest.raises(CopyError):
        copy(tree, tmp_path / "snap", workers=4)
    copied = sum(len(files) for _, _, files in os.walk(tmp_path / "snap"))
    # Each of the 3 other workers ends its batch after the file it held when the copy failed.
    assert copied <= 3


def test_copied_file_is_small() -> None:
    """100,000 records must fit in little memory: a plain tuple, no per-instance dict."""
    record = CopiedFile("a", "file", 1, 0o644, 2, b"\0" * 32, None, False, 3, 4, 5, 6, 7, 8)
    assert not hasattr(record, "__dict__")


def test_an_empty_selection_copies_nothing(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    calls: list[tuple[int, int]] = []
    result = copy(
        select_tree(tmp_path / "project"), tmp_path / "snap", progress=lambda *a: calls.append(a)
    )
    assert result == CopyResult((), 0, 0, 0)
    assert calls == [(0, 0)]
    assert list((tmp_path / "snap").iterdir()) == []


# --- sparse files ----------------------------------------------------------------------------

GIB = 1 << 30


def sparse(path: Path, layout: list[tuple[int, bytes]], size: int) -> Path:
    """A file of `size` bytes holding each (offset, data) of `layout`, holes elsewhere."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream:
        for offset, data in layout:
            stream.seek(offset)
            stream.write(data)
        stream.truncate(size)
    os.utime(path, ns=(OLD, OLD))
    return path


def allocated(path: Path) -> int:
    return os.lstat(path).st_blocks * 512


def sha256_of_file(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 24):
            digest.update(chunk)
    return digest.digest()


def zeros_sha256(size: int) -> bytes:
    digest = hashlib.sha256()
    zeros = memoryview(bytes(1 << 24))
    while size:
        step = min(size, len(zeros))
        digest.update(zeros[:step])
        size -= step
    return digest.digest()


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every byte the copier reads, counted."""
    counts: list[int] = []
    real_read, real_readv = os.read, os.readv

    def read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        counts.append(len(data))
        return data

    def readv(fd: int, buffers: list[memoryview]) -> int:
        n = real_readv(fd, buffers)
        counts.append(n)
        return n

    monkeypatch.setattr(os, "read", read)
    monkeypatch.setattr(os, "readv", readv)
    return counts


def test_a_file_of_holes_costs_no_disk_and_is_not_read(
    tmp_path: Path, bytes_read: list[int]
) -> None:
    size = 2 * GIB + 12345
    hollow = sparse(tmp_path / "project/hollow.img", [], size)
    assert allocated(hollow) == 0
    result = copy(select_tree(tmp_path / "project"), tmp_path / "snap")
    held = tmp_path / "snap/hollow.img"
    assert held.stat().st_size == size
    assert allocated(held) == 0
    assert sum(bytes_read) == 0
    [record] = result.files
    assert (record.size, record.sha256) == (size, zeros_sha256(size))  # a dense copy's digest


def test_data_and_holes_are_copied_exactly_and_stay_holes(
    tmp_path: Path, bytes_read: list[int]
) -> None:
    head, middle, tail = os.urandom(CHUNK + 3), os.urandom(70_000), os.urandom(5000)
    root = tmp_path / "project"
    files = {
        # data, a hole, data, a hole, data, and a hole at the end (only the size says so)
        "big.img": sparse(
            root / "big.img",
            [(0, head), (64 << 20, middle), (200 << 20, tail)],
            300 << 20,
        ),
        # below the size that gets a pool task of its own: still sparse
        "small.img": sparse(root / "small.img", [(0, b"x" * 4096), (512 << 10, b"y")], 900 << 10),
        "dense.bin": write(root / "dense.bin", os.urandom(3 * CHUNK), 0o644, OLD),
    }
    result = copy(select_tree(root), tmp_path / "snap")
    assert_same_tree(root, tmp_path / "snap")  # byte for byte, modes, mtimes
    by_path = {f.path: f for f in result.files}
    for name, path in files.items():
        held = tmp_path / "snap" / name
        assert allocated(held) <= allocated(path), name
        assert by_path[name].sha256 == sha256_of_file(held) == sha256_of_file(path), name
    assert allocated(tmp_path / "snap/big.img") < 8 << 20
    data = len(head) + len(middle) + len(tail) + 4097 + 3 * CHUNK
    assert sum(bytes_read) < data + (4 << 20)  # the holes were not read (blocks round data up)


def test_a_sparse_file_is_hashed_without_its_holes_then_linked(
    tmp_path: Path, bytes_read: list[int]
) -> None:
    root = tmp_path / "project"
    path = sparse(root / "disk.img", [(1 << 30, b"data")], GIB + (1 << 20))
    first = copy(select_tree(root), tmp_path / "one")
    os.utime(path, ns=(OLD, OLD))  # a new ctime: the source is hashed again, not trusted
    bytes_read.clear()
    second = copy(select_tree(root), tmp_path / "two", link_base=link_base(first, tmp_path / "one"))
    assert second.files_linked == 1
    assert sum(bytes_read) < 1 << 20
    assert second.files[0].sha256 == first.files[0].sha256 == sha256_of_file(path)


def test_clone_keeps_holes_and_the_hash_skips_them(
    tmp_path: Path, bytes_read: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """FICLONE (here a stand-in that copies the extents, as btrfs or XFS share them)."""
    import fcntl

    def clone(fd: int, request: int, source: int) -> int:
        assert request == copier._FICLONE
        size = os.fstat(source).st_size
        position = 0
        while True:
            try:
                position = os.lseek(source, position, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(source, position, os.SEEK_HOLE)
            os.pwrite(fd, os.pread(source, end - position, position), position)
            position = end
        os.ftruncate(fd, size)
        return 0

    monkeypatch.setattr(fcntl, "ioctl", clone)
    root = tmp_path / "project"
    path = sparse(root / "disk.img", [(0, b"a" * 5000), (GIB, b"b" * 5000)], GIB + 5000)
    result = copy(select_tree(root), tmp_path / "snap")
    assert allocated(tmp_path / "snap/disk.img") <= allocated(path)
    assert sum(bytes_read) < 1 << 20
    assert (
        result.files[0].sha256 == sha256_of_file(path) == sha256_of_file(tmp_path / "snap/disk.img")
    )


def test_server_side_copy_is_not_used_for_sparse_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """copy_file_range may fill holes (its generic fallback reads and writes zeros)."""
    monkeypatch.setattr(copier, "_filesystem_type", lambda path: "nfs4")
    monkeypatch.setattr(os, "copy_file_range", None)  # any call fails the test
    root = tmp_path / "project"
    path = sparse(root / "disk.img", [(0, b"a" * 5000)], 64 << 20)
    result = copy(select_tree(root), tmp_path / "snap")
    assert allocated(tmp_path / "snap/disk.img") <= allocated(path)
    assert result.files[0].sha256 == sha256_of_file(path)
