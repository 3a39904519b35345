"""The copy engine against `cp -a`: a cold copy, a `--link` copy after 1% of the files changed,
the disk that second copy costs, a sparse file, and peak memory at 100,000 files.

    python benchmarks/bench_copy.py [--runs N] [--keep]

Trees are generated once under benchmarks/.work/copy/ (reused while their recipe is the same);
the copies are made beside them and deleted at the end, after every measurement (deleting
while timing would time the filesystem's cleanup too). Each timing is the median of N runs
(default 5) after a warm-up, with `cp -a` and the copier interleaved so that both see the same
machine, and the dirty pages of the previous run written back (sync) before each.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import Callable
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from poetry_snapshot.snapshot.copier import CopyResult  # noqa: E402
from poetry_snapshot.snapshot.copier import LinkBase  # noqa: E402
from poetry_snapshot.snapshot.copier import copy_selection  # noqa: E402

if TYPE_CHECKING:
    from poetry_snapshot.snapshot.selection import Selection

WORK = ROOT / "benchmarks" / ".work" / "copy"
SMALL_FILES = 20_000
BIG_FILES = 3
BIG_SIZE = 50 << 20
MEMORY_FILES = 100_000
CHANGED = 0.01
# A disk image as a project may hold one: 2 GiB, of which 2 MiB are data, the rest holes.
SPARSE_SIZE = 2 << 30
SPARSE_DATA = ((0, 1 << 20), (1 << 30, 1 << 20))
# Sources are old, as in a real project: only files the benchmark changes are recent.
SOURCE_MTIME_NS = 1_700_000_000 * 10**9

TARGETS = {"cold": 0.8, "linked": 0.1, "extra_disk_percent": 2.0, "peak_mib": 120.0}


# --- trees ---------------------------------------------------------------------------------


def generate(root: Path, files: int, big: int, sizes: tuple[int, int], seed: int) -> None:
    """`files` small files in a package-like tree (~20 per directory, 3 levels), plus `big`
    files of 50 MB; reused while the recipe is the same."""
    recipe = f"{files} {big} {sizes} {seed} v1"
    stamp = root.parent / f".{root.name}.recipe"
    if root.is_dir() and stamp.exists() and stamp.read_text() == recipe:
        return
    print(f"generating {root} ({files} files)...", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(seed)
    low, high = sizes
    for i in range(files):
        directory = root / f"pkg{i % 20:02d}" / f"sub{i // 20 % 10}" / f"mod{i // 200 % 5}"
        if i < 1000:
            directory.mkdir(parents=True, exist_ok=True)
        size = int(low * (high / low) ** rng.random())  # log-uniform: mostly small, some larger
        path = directory / f"file{i}.py"
        path.write_bytes(rng.randbytes(size))
        os.utime(path, ns=(SOURCE_MTIME_NS, SOURCE_MTIME_NS + i))
    for i in range(big):
        path = root / "data" / f"blob{i}.bin"
        path.parent.mkdir(exist_ok=True)
        with open(path, "wb") as stream:
            for _ in range(BIG_SIZE >> 20):
                stream.write(rng.randbytes(1 << 20))
        os.utime(path, ns=(SOURCE_MTIME_NS, SOURCE_MTIME_NS))
    stamp.write_text(recipe)


def generate_sparse(root: Path) -> None:
    """One sparse file, SPARSE_DATA as data, holes elsewhere; reused while it is the same."""
    recipe = f"{SPARSE_SIZE} {SPARSE_DATA} v1"
    stamp = root.parent / f".{root.name}.recipe"
    if root.is_dir() and stamp.exists() and stamp.read_text() == recipe:
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = random.Random(3)
    with open(root / "disk.img", "wb") as stream:
        for offset, size in SPARSE_DATA:
            stream.seek(offset)
            stream.write(rng.randbytes(size))
        stream.truncate(SPARSE_SIZE)
    os.utime(root / "disk.img", ns=(SOURCE_MTIME_NS, SOURCE_MTIME_NS))
    stamp.write_text(recipe)


def select(root: Path) -> Selection:
    """The tree as `poetry snapshot` selects it outside git."""
    from poetry_snapshot.snapshot.selection import select as real_select

    return real_select(root, git="off")


def warm(root: Path) -> None:
    """Read every file once: the timed runs start with the page cache warm."""
    for directory, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(directory, name), "rb") as stream:
                while stream.read(1 << 20):
                    pass


# --- timing --------------------------------------------------------------------------------


class Timing(NamedTuple):
    wall: float
    cpu: float  # user + system, this process and its children


def timed(action: Callable[..., object], *args: Any) -> Timing:
    os.sync()  # the previous run's dirty pages are not this run's cost
    before, start = os.times(), time.perf_counter()
    action(*args)
    wall, after = time.perf_counter() - start, os.times()
    cpu = sum(after[:4]) - sum(before[:4])
    return Timing(wall, cpu)


def cp_a(source: Path, destination: Path) -> None:
    subprocess.run(["cp", "-a", str(source), str(destination)], check=True)


def cp_al(source: Path, destination: Path) -> None:
    """Hard links only, no checks: what any --link copy must at least do on this tree."""
    subprocess.run(["cp", "-al", str(source), str(destination)], check=True)


def cp_a_and_sha256sum(source: Path, destination: Path) -> None:
    """The same work as the copier with standard tools: copy, then hash every file."""
    cp_a(source, destination)
    subprocess.run(
        f"find {str(destination)!r} -type f -print0 | xargs -0 sha256sum > /dev/null",
        shell=True,
        check=True,
    )


def copy_into(tree: Any, destination: Path, link_base: LinkBase | None = None) -> CopyResult:
    destination.mkdir()
    return copy_selection(tree, destination, link_base=link_base)


class Runs:
    """Fresh, numbered destinations under one directory, all deleted at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)

    def next(self, label: str) -> Path:
        self.count += 1
        return self.root / f"{self.count:03d}-{label}"

    def delete(self) -> None:
        subprocess.run(["rm", "-rf", str(self.root)], check=False)


def change_files(tree: Any, rng: random.Random, fraction: float) -> int:
    """Rewrite `fraction` of the small files with new content (new size too, for half)."""
    small = [e for e in tree.entries if e.kind == "file" and e.size < 1 << 20]
    chosen = rng.sample(small, int(len(tree.entries) * fraction))
    for entry in chosen:
        size = entry.size if rng.random() < 0.5 else max(1, entry.size + rng.randint(-100, 100))
        (tree.root / entry.path).write_bytes(rng.randbytes(size))
    return len(chosen)


def disk_bytes(path: Path, exclude_inodes: set[int] | None = None) -> int:
    """Allocated bytes of files and directories under `path`, each inode once, minus some."""
    seen = set(exclude_inodes or ())
    total = 0
    for directory, directories, files in os.walk(path):
        for name in [*directories, *files, ""][::-1]:
            st = os.lstat(os.path.join(directory, name)) if name else os.lstat(directory)
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total


def directory_bytes(path: Path) -> tuple[int, int]:
    """How many directories `path` holds (itself included), and their allocated bytes."""
    count, total = 0, 0
    for directory, _, _ in os.walk(path):
        count += 1
        total += os.lstat(directory).st_blocks * 512
    return count, total


def inodes_shared(path: Path, other: Path) -> set[int]:
    return inodes(path) & inodes(other)


def inodes(path: Path) -> set[int]:
    found = set()
    for directory, directories, files in os.walk(path):
        for name in [*directories, *files]:
            found.add(os.lstat(os.path.join(directory, name)).st_ino)
    return found


# --- the measurements ----------------------------------------------------------------------


def measure_cold(
    tree: Any, runs: Runs, count: int
) -> tuple[list[Timing], list[Timing], list[Timing]]:
    cp_a(tree.root, runs.next("warmup-cp"))
    copy_into(tree, runs.next("warmup-copier"))
    cp, ours, cp_hash = [], [], []
    for _ in range(count):
        cp.append(timed(cp_a, tree.root, runs.next("cp")))
        ours.append(timed(copy_into, tree, runs.next("copier")))
        cp_hash.append(timed(cp_a_and_sha256sum, tree.root, runs.next("cp-sha256sum")))
    return cp, ours, cp_hash


class Linked(NamedTuple):
    cp: list[Timing]
    ours: list[Timing]
    cp_al: list[Timing]
    extra: list[float]  # % of the tree's disk
    changed: int
    directories: int
    directory_percent: float  # what the directories alone take, % of the tree's disk


def measure_linked(root: Path, runs: Runs, count: int) -> Linked:
    """Each run: a cold snapshot (untimed), 1% of the files changed, then cp -a, cp -al and a
    --link snapshot against that cold one, timed. The extra disk is what the --link snapshot
    holds that its base does not."""
    rng = random.Random(20261126)
    cp, ours, links, extra = [], [], [], []
    tree_bytes = disk_bytes(root)
    changed = 0
    for _ in range(count):
        created_ns = time.time_ns()  # taken before the copy, as the snapshot command does
        base_dir = runs.next("base")
        base = copy_into(select(root), base_dir)
        changed = change_files(select(root), rng, CHANGED)
        tree = select(root)
        cp.append(timed(cp_a, root, runs.next("cp")))
        links.append(timed(cp_al, root, runs.next("cp-al")))
        link_base = LinkBase(base_dir, {f.path: f for f in base.files}, created_ns)
        destination = runs.next("linked")
        ours.append(timed(copy_into, tree, destination, link_base))
        linked = sum(1 for _ in inodes_shared(destination, base_dir))
        assert linked >= len(tree.entries) - changed - BIG_FILES, linked
        extra.append(100 * disk_bytes(destination, inodes(base_dir)) / tree_bytes)
    directories, directory_disk = directory_bytes(destination)
    return Linked(cp, ours, links, extra, changed, directories, 100 * directory_disk / tree_bytes)


class Sparse(NamedTuple):
    cp: list[Timing]
    ours: list[Timing]
    cp_disk: int  # allocated bytes of cp -a's copy
    our_disk: int
    source_disk: int


def measure_sparse(root: Path, runs: Runs, count: int) -> Sparse:
    """cp -a (which keeps holes: --sparse=auto) against the copier on one sparse file. The
    copier also hashes the file's whole logical content, zeros included, for the manifest."""
    tree = select(root)
    cp, ours = [], []
    cp_copy = our_copy = root
    for _ in range(count):
        cp_copy = runs.next("sparse-cp")
        cp.append(timed(cp_a, root, cp_copy))
        our_copy = runs.next("sparse-copier")
        ours.append(timed(copy_into, tree, our_copy))
    return Sparse(cp, ours, disk_bytes(cp_copy), disk_bytes(our_copy), disk_bytes(root))


MEMORY_CHILD = """
import os, sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {src!r})
sys.path.insert(0, {benchmarks!r})
if {with_poetry!r}:
    import poetry.console.application
if {run_copy!r}:
    from pathlib import Path
    from bench_copy import select
    from poetry_snapshot.snapshot.copier import copy_selection
    tree = select(Path({tree!r}))
    destination = Path({destination!r})
    destination.mkdir()
    start = time.perf_counter()
    result = copy_selection(tree, destination)
    print("copied", len(result.files), "files in", round(time.perf_counter() - start, 2), "s")
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent.
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print("peak_kib", peak)
"""


def measure_memory(tree_root: Path, runs: Runs, with_poetry: bool, run_copy: bool) -> float:
    script = MEMORY_CHILD.format(
        root=str(ROOT),
        src=str(ROOT / "src"),
        benchmarks=str(ROOT / "benchmarks"),
        with_poetry=with_poetry,
        run_copy=run_copy,
        tree=str(tree_root),
        destination=str(runs.next("memory")),
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    line = next(x for x in done.stdout.splitlines() if x.startswith("peak_kib"))
    return int(line.split()[1]) / 1024


def filesystem(path: Path) -> str:
    """The filesystem holding `path` and its mount options, from /proc/self/mountinfo."""
    device = path.stat().st_dev
    wanted = f"{os.major(device)}:{os.minor(device)}"
    try:
        with open("/proc/self/mountinfo") as mounts:
            for line in mounts:
                fields = line.split()
                if fields[2] == wanted:
                    fstype, source = line.split(" - ", 1)[1].split()[:2]
                    return f"{fstype} ({source}, {fields[5]}) at {fields[4]}"
    except OSError:
        pass
    return "an unknown filesystem"


def median(timings: list[Timing], field: str = "wall") -> float:
    return float(statistics.median(getattr(t, field) for t in timings))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the copies for inspection")
    parser.add_argument("--work", type=Path, default=WORK, help=f"instead of {WORK}")
    args = parser.parse_args()

    work = args.work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    source = work / "tree"
    generate(source, SMALL_FILES, BIG_FILES, (200, 8192), seed=1)
    sparse_tree = work / "tree-sparse"
    generate_sparse(sparse_tree)
    memory_tree = work / "tree-100k"
    generate(memory_tree, MEMORY_FILES, 0, (20, 400), seed=2)
    runs = Runs(work / "runs")
    try:
        warm(source)
        tree = select(source)
        selection_seconds = min(timed(select, source).wall for _ in range(3))
        cp_cold, ours_cold, cp_hash = measure_cold(tree, runs, args.runs)
        linked = measure_linked(source, runs, args.runs)
        sparse = measure_sparse(sparse_tree, runs, min(args.runs, 3))
        warm(memory_tree)
        memory = {
            "bare python": measure_memory(memory_tree, runs, False, False),
            "Poetry imported, nothing else": measure_memory(memory_tree, runs, True, False),
            "selection + copy": measure_memory(memory_tree, runs, False, True),
            "Poetry imported, then selection + copy": measure_memory(memory_tree, runs, True, True),
        }
    finally:
        if not args.keep:
            runs.delete()

    files = len(tree.entries)
    size = sum(e.size for e in tree.entries) / 2**20
    print(f"\nOn {filesystem(work)}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}")
    print(
        f"Tree: {files} files, {size:.0f} MiB ({SMALL_FILES} of 200 B-8 KiB, {BIG_FILES} of 50 MiB)"
    )
    print(f"Selection (select(git='off')): {selection_seconds:.2f} s (not in the copy times)")
    print(f"Medians of {args.runs} runs, cp -a and the copier interleaved; CPU = user + system.\n")
    print("| measured | median | CPU | baseline | median | CPU | ratio | target |")
    print("|---|---:|---:|---|---:|---:|---:|---|")
    missed = 0
    for label, ours, cp, target in (
        ("copy_selection, cold", ours_cold, cp_cold, TARGETS["cold"]),
        (
            f"copy_selection --link, {linked.changed} files changed",
            linked.ours,
            linked.cp,
            TARGETS["linked"],
        ),
    ):
        ratio = median(ours) / median(cp)
        verdict = "met" if ratio <= target else "NOT met"
        missed += ratio > target
        print(
            f"| {label} | {median(ours):.2f} s | {median(ours, 'cpu'):.2f} s | cp -a"
            f" | {median(cp):.2f} s | {median(cp, 'cpu'):.2f} s | {ratio:.2f}×"
            f" | ≤ {target:g}× {verdict} |"
        )
    ratio = median(linked.cp_al) / median(linked.cp)
    print(
        f"| cp -al (hard links only, no checks) | {median(linked.cp_al):.2f} s"
        f" | {median(linked.cp_al, 'cpu'):.2f} s | cp -a | {median(linked.cp):.2f} s"
        f" | {median(linked.cp, 'cpu'):.2f} s | {ratio:.2f}× | (what linking costs) |"
    )
    ratio = median(ours_cold) / median(cp_hash)
    print(
        f"| copy_selection, cold | {median(ours_cold):.2f} s | {median(ours_cold, 'cpu'):.2f} s"
        f" | cp -a, then sha256sum of every file | {median(cp_hash):.2f} s"
        f" | {median(cp_hash, 'cpu'):.2f} s | {ratio:.2f}× | (same work) |"
    )
    disk = statistics.median(linked.extra)
    verdict = "met" if disk <= TARGETS["extra_disk_percent"] else "NOT met"
    missed += disk > TARGETS["extra_disk_percent"]
    print(
        f"| extra disk of the --link copy | {disk:.2f}% of the tree | | | | | |"
        f" ≤ {TARGETS['extra_disk_percent']:g}% {verdict} |"
    )
    print(
        f"| of which its {linked.directories} directories, which links cannot share"
        f" | {linked.directory_percent:.2f}% of the tree | | | | | | |"
    )
    ratio = median(sparse.ours) / median(sparse.cp)
    print(
        f"| copy_selection, one {SPARSE_SIZE >> 30} GiB sparse file"
        f" ({sum(n for _, n in SPARSE_DATA) >> 20} MiB of data)"
        f" | {median(sparse.ours):.2f} s | {median(sparse.ours, 'cpu'):.2f} s"
        f" | cp -a | {median(sparse.cp):.2f} s | {median(sparse.cp, 'cpu'):.2f} s | {ratio:.0f}×"
        f" | (hashes {SPARSE_SIZE >> 30} GiB, holes as zeros) |"
    )
    print(
        f"| disk of that copy | {sparse.our_disk >> 10} KiB | | cp -a"
        f" | {sparse.cp_disk >> 10} KiB | | | (source: {sparse.source_disk >> 10} KiB) |"
    )
    for label, mib in memory.items():
        goal = ""
        if "selection" in label:
            verdict = "met" if mib <= TARGETS["peak_mib"] else "NOT met"
            missed += mib > TARGETS["peak_mib"]
            goal = f"≤ {TARGETS['peak_mib']:g} MiB {verdict}"
        print(f"| peak RSS, {label}, {MEMORY_FILES} files | {mib:.0f} MiB | | | | | | {goal} |")
    print(
        "\nPer run (wall s): cold cp -a "
        + " ".join(f"{t.wall:.2f}" for t in cp_cold)
        + " | copier "
        + " ".join(f"{t.wall:.2f}" for t in ours_cold)
        + " | linked cp -a "
        + " ".join(f"{t.wall:.2f}" for t in linked.cp)
        + " | copier "
        + " ".join(f"{t.wall:.2f}" for t in linked.ours)
    )
    return 1 if missed else 0  # as the other benchmarks: non-zero when a target is missed


if __name__ == "__main__":
    sys.exit(main())
