"""`poetry snapshot --check` against `poetry sync --dry-run` and `poetry run true`; `--deep` against
`sha256sum` over the same files. Run by `python3 benchmarks/run.py` (or directly, inside a venv
holding this plugin). Everything is local: wheels are generated, served by a local index, locked
and installed by real Poetry; only the timed commands differ.
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.distributions import WheelSpec  # noqa: E402
from tests.distributions import build_wheel  # noqa: E402
from tests.index import LocalIndex  # noqa: E402
from tests.projects import POETRY  # noqa: E402
from tests.projects import Project  # noqa: E402
from tests.projects import isolated_environ  # noqa: E402
from tests.projects import pyproject  # noqa: E402

from benchmarks.timing import Table  # noqa: E402
from benchmarks.timing import medians  # noqa: E402

WORK = ROOT / "benchmarks" / ".work" / "check"
RUNS = 7


def wheel_specs(count: int) -> list[WheelSpec]:
    """`count` packages shaped like a scientific stack: many small ones, a few big ones.

    Package i depends on i+1 and i+2 (a deep, overlapping graph, as real locks are); sizes:
    5% carry 40 MB of data (torch-like), 10% 4 MB, the rest 30 small modules.
    """
    specs = []
    for i in range(count):
        name = f"pkg{count}-{i:03d}"
        requires = [f"pkg{count}-{j:03d}>=1.0" for j in (i + 1, i + 2) if j < count]
        modules = {
            f"{name.replace('-', '_')}/mod{m:02d}.py": (
                f"# {name} module {m}\n" + "x = 1\n" * 200
            ).encode()
            for m in range(30)
        }
        big = 40_000_000 if i % 20 == 7 else 4_000_000 if i % 10 == 3 else 0
        specs.append(WheelSpec(name, "1.0", requires=requires, files=modules, padding=big))
    return specs


def prepare(count: int, environ: dict[str, str], wheels: Path) -> Project:
    root = WORK / f"project-{count}"
    marker = root / ".installed"
    index = LocalIndex(wheels)
    try:
        data = pyproject(f"bench{count}", index.url, [f"pkg{count}-000>=1.0"], package_mode=False)
        # An index URL with a fresh port each run: keep the locked data, rewrite the source.
        project = Project(root, environ, index.url, wheels, data)
        if not marker.exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            for spec in wheel_specs(count):
                if not (wheels / f"{spec.name.replace('-', '_')}-1.0-py3-none-any.whl").exists():
                    build_wheel(spec, wheels)
            project.write_pyproject()
            project.poetry("lock")
            project.poetry("sync")
            marker.write_text(index.url)
        return project
    finally:
        index.close()


def record_files(project: Project) -> list[str]:
    """Every hashed RECORD entry of the env: the files `--deep` reads."""
    files = []
    site = project.site_packages()
    for record in site.glob("*.dist-info/RECORD"):
        with record.open(newline="") as stream:
            for row in csv.reader(stream):
                if len(row) > 1 and row[1]:
                    files.append(str((site / row[0]).resolve()))
    return files


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    environ = isolated_environ(WORK / "home", WORK / "cache")
    wheels = WORK / "wheels"
    table = Table("poetry snapshot --check")
    for count in (15, 200):
        project = prepare(count, environ, wheels)

        def poetry(*args: str, project: Project = project) -> list[str]:
            return [*POETRY, *args]

        check, sync, run_true, startup = medians(
            [
                poetry("snapshot", "--check"),
                poetry("sync", "--dry-run"),
                poetry("run", "true"),
                # Poetry's own start-up (imports, plugins), which every command pays: the floor.
                poetry("--version"),
            ],
            project.path,
            environ,
            RUNS,
        )
        table.add(
            f"{count} packages: --check",
            check,
            "poetry sync --dry-run",
            sync,
            target=0.7 if count == 15 else 0.6,
        )
        table.add(f"{count} packages: --check", check, "poetry run true", run_true)
        table.add(f"{count} packages: poetry --version", startup, "poetry sync --dry-run", sync)
        if count == 200:
            files = record_files(project)
            size = sum(Path(f).stat().st_size for f in files)
            # sha256sum over exactly those files, fed on stdin in one process (xargs splits argv).
            listing = WORK / "deep-files.txt"
            listing.write_text("\0".join(files))
            deep, plain, sha = medians(
                [
                    poetry("snapshot", "--check", "--deep"),
                    poetry("snapshot", "--check"),
                    ["sh", "-c", f"xargs -0 sha256sum < {listing} > /dev/null"],
                ],
                project.path,
                environ,
                RUNS,
            )
            label = f"--deep: {len(files)} files, {size / 2**20:.0f} MiB"
            table.add(label, deep, "sha256sum, same files", sha, target=0.6)
            # What --deep adds to a plain --check: the hashing itself, Poetry's start-up aside.
            table.add(
                "--deep minus --check (the hashing)", deep - plain, "sha256sum, same files", sha
            )
    table.print()
    return 0 if table.all_met() else 1


if __name__ == "__main__":
    sys.exit(main())
