"""`poetry snapshot -- true` against `poetry run true` on a 500-file project (git work tree),
and `poetry snapshot --link -- true` after 1% of a 20,000-file tree changed, against
`poetry --version` plus `cp -al` of the same tree (Poetry's start and the link calls themselves).

Run by `python3 benchmarks/run.py snapshot`. The projects are real Poetry projects locked against
local wheels and installed by Poetry; each timed `poetry snapshot` verifies the environment,
selects git's view of the tree, copies (or links) it, writes the manifest and the git diff,
publishes, and runs `true` from the snapshot.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.distributions import WheelSpec  # noqa: E402
from tests.distributions import build_wheel  # noqa: E402
from tests.distributions import repack_installed  # noqa: E402
from tests.index import LocalIndex  # noqa: E402
from tests.projects import POETRY  # noqa: E402
from tests.projects import Project  # noqa: E402
from tests.projects import isolated_environ  # noqa: E402
from tests.projects import pyproject  # noqa: E402
from tests.projects import run  # noqa: E402
from tests.projects import write_package  # noqa: E402

from benchmarks.timing import Table  # noqa: E402
from benchmarks.timing import medians  # noqa: E402
from poetry_snapshot.snapshot.manifest import read_header  # noqa: E402

WORK = ROOT / "benchmarks" / ".work" / "snapshot"
RUNS = 11
FILES = 500
LINK_FILES = 20_000
LINK_RUNS = 7


def prepare(environ: dict[str, str]) -> Project:
    root = WORK / "project"
    wheels = WORK / "wheels"
    marker = root / ".installed"
    index = LocalIndex(wheels)
    try:
        project = Project(
            root, environ, index.url, wheels, pyproject("bench", index.url, ["dep-a", "dep-b"])
        )
        if marker.exists():
            return project
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        for name in ("dep-a", "dep-b"):
            build_wheel(WheelSpec(name, "1.0"), wheels)
        repack_installed("poetry-core", wheels)
        project.write_pyproject()
        package = write_package(root, "bench")
        # 500 files in all: sources, configs and a little data, as a small research project.
        existing = 3  # pyproject.toml, poetry.lock, bench/__init__.py
        for i in range(FILES - existing):
            folder = package / f"part{i % 10}"
            folder.mkdir(exist_ok=True)
            (folder / f"module{i:03}.py").write_text(f"VALUE = {i}\n" + "# padding\n" * (i % 50))
        (root / ".gitignore").write_text(".venv/\n")
        project.poetry("lock")
        project.poetry("install")
        git = ["git", "-C", str(root)]
        run([*git, "init", "-q", "-b", "main"], environ)
        run([*git, "add", "-A"], environ)
        run([*git, "commit", "-q", "-m", "bench"], environ)
        marker.write_text("")
        return project
    finally:
        index.close()


def prepare_large(environ: dict[str, str], files: int) -> Project:
    """A project of `files` small files (no dependencies): for peak memory of a whole snapshot."""
    root = WORK / f"large-{files}"
    marker = root / ".installed"
    index = LocalIndex(WORK / "wheels")
    try:
        project = Project(
            root,
            environ,
            index.url,
            WORK / "wheels",
            pyproject("large", index.url, package_mode=False),
        )
        if marker.exists():
            return project
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        # A repository of its own: benchmarks/.work is ignored by this repository's git.
        run(["git", "init", "-q", str(root)], environ)
        project.write_pyproject()
        for i in range(files):
            folder = root / "data" / f"d{i // 1000:03}"
            if i % 1000 == 0:
                folder.mkdir(parents=True)
            (folder / f"f{i:06}.txt").write_text(f"{i}\n")
        project.poetry("lock")
        project.poetry("install")
        marker.write_text("")
        return project
    finally:
        index.close()


def prepare_link(environ: dict[str, str]) -> Project:
    """bench_copy's 20,000-file tree (plus its three 50 MB files) as a committed git project."""
    from benchmarks.bench_copy import generate

    root = WORK / "link-20k"
    marker = root / ".installed"
    index = LocalIndex(WORK / "wheels")
    try:
        project = Project(
            root,
            environ,
            index.url,
            WORK / "wheels",
            pyproject("linked", index.url, package_mode=False),
        )
        if marker.exists():
            return project
        shutil.rmtree(root, ignore_errors=True)
        generate(root, LINK_FILES, 3, (200, 8192), seed=11)
        project.write_pyproject()
        (root / ".gitignore").write_text(".venv/\n.installed\n")
        project.poetry("lock")
        project.poetry("install")
        git = ["git", "-C", str(root)]
        run([*git, "init", "-q", "-b", "main"], environ)
        run([*git, "add", "-A"], environ)
        run([*git, "commit", "-q", "-m", "bench"], environ)
        marker.write_text("")
        return project
    finally:
        index.close()


def link_table(environ: dict[str, str]) -> Table:
    """Each round changes 1% of the files (new content, same sizes; committed outside the
    timing so every diff holds one round's change), then times the three commands in turn."""
    project = prepare_link(environ)
    store = WORK / "link-store"
    shutil.rmtree(store, ignore_errors=True)
    env = {**environ, "POETRY_SNAPSHOT_BASE_DIR": str(store)}
    git = ["git", "-C", str(project.path)]
    files = sorted(
        os.path.join(d, n)
        for d, _, names in os.walk(project.path)
        if "/.git" not in d and "/.venv" not in d
        for n in names
        if n.startswith("file")
    )
    rng = random.Random(5)
    snapshot = [*POETRY, "snapshot", "--link", "--", "true"]
    run(snapshot, env, cwd=project.path)  # the first snapshot, to link against
    # `cp -al` links a replica of the snapshot with inodes of its own: linking the snapshots'
    # own files would change their ctimes, and a snapshot whose copies changed since it
    # recorded them is never linked from (each later --link would copy everything).
    replica = WORK / "cp-al-source"
    shutil.rmtree(replica, ignore_errors=True)
    first = next(p for p in store.iterdir() if not p.name.startswith("."))
    run(["cp", "-a", str(first), str(replica)], env)
    samples: dict[str, list[float]] = {"link": [], "version": [], "cp": []}
    copies = WORK / "cp-al"
    for round_ in range(LINK_RUNS + 1):
        for path in rng.sample(files, len(files) // 100):
            size = os.path.getsize(path)
            with open(path, "wb") as stream:
                stream.write(rng.randbytes(size))
        run([*git, "commit", "-qam", f"round {round_}"], env)
        shutil.rmtree(copies, ignore_errors=True)
        timings = {
            "link": (snapshot, project.path),
            "version": ([*POETRY, "--version"], project.path),
            "cp": (["cp", "-al", str(replica), str(copies)], WORK),
        }
        for name, (argv, cwd) in timings.items():
            os.sync()
            start = time.perf_counter()
            subprocess.run(
                argv,
                cwd=cwd,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if round_:
                samples[name].append(time.perf_counter() - start)
    shutil.rmtree(copies, ignore_errors=True)
    shutil.rmtree(replica, ignore_errors=True)
    linked = [read_header(p)["copy"]["files_linked"] for p in store.iterdir() if p.name[0] != "."]
    shutil.rmtree(store, ignore_errors=True)
    # Every timed snapshot must have linked all but the changed files: otherwise the table
    # would time a copy under the name of a link.
    assert sorted(linked)[1] >= LINK_FILES - LINK_FILES // 100 - 1, linked
    link, version, cp = (statistics.median(samples[k]) for k in ("link", "version", "cp"))
    table = Table(f"poetry snapshot --link -- true, {LINK_FILES:,}-file tree, 1% changed")
    table.add(
        "poetry snapshot --link -- true",
        link,
        "poetry --version + cp -al",
        version + cp,
        target=1.5,
    )
    table.add("poetry --version", version, "poetry --version + cp -al", version + cp)
    table.add("cp -al (the same tree)", cp, "poetry --version + cp -al", version + cp)
    return table


def peak_rss_mib(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Peak resident memory of one run of `argv` (ru_maxrss of the waited-for child)."""
    code = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True,"
        " stdout=subprocess.DEVNULL);"
        " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = run([sys.executable, "-c", code, *argv], env, cwd=cwd).stdout
    return int(out.strip()) / 1024


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    environ = isolated_environ(WORK / "home", WORK / "cache")
    environ["POETRY_SNAPSHOT_BASE_DIR"] = str(WORK / "store")
    project = prepare(environ)
    table = Table(f"poetry snapshot -- true, {FILES}-file project")
    snap, run_true, check = medians(
        [
            [*POETRY, "snapshot", "--", "true"],
            [*POETRY, "run", "true"],
            [*POETRY, "snapshot", "--check"],
        ],
        project.path,
        environ,
        RUNS,
    )
    table.add("poetry snapshot -- true", snap, "poetry run true", run_true, target=1.5)
    table.add("poetry snapshot --check", check, "poetry run true", run_true)
    shutil.rmtree(WORK / "store", ignore_errors=True)
    table.print()
    linked = link_table(environ)
    linked.print()

    large = prepare_large(environ, 100_000)
    rss = peak_rss_mib([*POETRY, "snapshot"], large.path, environ)
    baseline = peak_rss_mib([*POETRY, "snapshot", "--check"], large.path, environ)
    shutil.rmtree(WORK / "store", ignore_errors=True)
    met = rss <= 120
    print(
        f"\nPeak memory of `poetry snapshot` on 100,000 files: {rss:.0f} MiB"
        f" (target ≤ 120 MiB: {'met' if met else 'NOT met'});"
        f" `poetry snapshot --check` alone (Poetry loaded, same project): {baseline:.0f} MiB"
    )
    return 0 if table.all_met() and linked.all_met() and met else 1


if __name__ == "__main__":
    sys.exit(main())
