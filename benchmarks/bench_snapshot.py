"""`poetry snapshot -- true` against `poetry run true` on a 500-file project (git work tree).

Run by `python3 benchmarks/run.py snapshot`. The project is a real Poetry project locked against
local wheels and installed by Poetry; each timed `poetry snapshot` verifies the environment,
selects git's view of the tree, copies it, writes the manifest and the git diff, publishes, and
runs `true` from the snapshot.
"""

from __future__ import annotations

import shutil
import sys
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

WORK = ROOT / "benchmarks" / ".work" / "snapshot"
RUNS = 11
FILES = 500


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
    return 0 if table.all_met() and met else 1


if __name__ == "__main__":
    sys.exit(main())
