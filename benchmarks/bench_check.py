"""`poetry snapshot --check` against `poetry sync --dry-run` and `poetry run true`; `--deep` against
`sha256sum` over the same files (with the chain proof: the installed files plus the locked wheels
it reads from Poetry's cache). Run by `python3 benchmarks/run.py` (or directly, inside a venv
holding this plugin). Everything is local: wheels are generated, served by a local index, locked
and installed by real Poetry; only the timed commands differ. The environments are built once and
kept under benchmarks/.work/check/ (the 1 GiB one takes a few minutes the first time).
"""

from __future__ import annotations

import csv
import functools
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

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
LARGE_RUNS = 5


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


LARGE_PACKAGES = 24
LARGE_DATA = 45_000_000  # bytes of data per package: 24 x 45 MB, over 1 GiB installed


def large_names() -> list[str]:
    return [f"large-{i:02d}" for i in range(LARGE_PACKAGES)]


def large_specs() -> list[WheelSpec]:
    """Packages shaped like a deep-learning stack's big ones: each a few modules and a large
    data file (random bytes: the wheels are as large as what they install)."""
    specs = []
    for i, name in enumerate(large_names()):
        module = name.replace("-", "_")
        files = {
            f"{module}/mod{m}.py": (f"# {name} module {m}\n" + "y = 2\n" * 300).encode()
            for m in range(10)
        }
        files[f"{module}/weights.bin"] = random.Random(i).randbytes(LARGE_DATA)
        specs.append(WheelSpec(name, "1.0", files=files))
    return specs


def prepare(
    name: str,
    specs: Callable[[], list[WheelSpec]],
    dependencies: list[str],
    environ: dict[str, str],
    wheels: Path,
) -> Project:
    root = WORK / f"project-{name}"
    marker = root / ".installed"
    index = LocalIndex(wheels)
    try:
        data = pyproject(f"bench{name}", index.url, dependencies, package_mode=False)
        # An index URL with a fresh port each run: keep the locked data, rewrite the source.
        project = Project(root, environ, index.url, wheels, data)
        if not marker.exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            for spec in specs():
                if not (wheels / f"{spec.name.replace('-', '_')}-1.0-py3-none-any.whl").exists():
                    build_wheel(spec, wheels)
            project.write_pyproject()
            project.poetry("lock")
            project.poetry("sync")
            marker.write_text(index.url)
        return project
    finally:
        index.close()


def locked_wheels(project: Project, environ: dict[str, str]) -> list[str]:
    """The locked files `--deep` reads from Poetry's cache, as the run itself reports them,
    after making sure every build was proven (a run that proves nothing measures nothing)."""
    result = subprocess.run(
        [*POETRY, "snapshot", "--check", "--deep", "--format", "json"],
        cwd=project.path,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    deep = json.loads(result.stdout)["deep"]
    if deep["builds_unverified"]:
        raise RuntimeError(f"builds not proven: {deep['builds_unverified']}")
    names = {build["artifact"] for build in deep["builds_verified"]}
    cache = Path(environ["POETRY_CACHE_DIR"]) / "artifacts"
    found = [str(path) for path in cache.rglob("*.whl") if path.name in names]
    if len(found) != len(names):
        raise RuntimeError(f"{len(names)} locked wheels proven, {len(found)} found in the cache")
    return sorted(found)


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
        project = prepare(
            str(count),
            functools.partial(wheel_specs, count),
            [f"pkg{count}-000>=1.0"],
            environ,
            wheels,
        )

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
            artifacts = locked_wheels(project, environ)
            artifact_size = sum(Path(f).stat().st_size for f in artifacts)
            # sha256sum over exactly those files, fed on stdin in one process (xargs splits argv).
            listing = WORK / "deep-files.txt"
            listing.write_text("\0".join(files + artifacts))
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
            label = (
                f"--deep: {len(files)} files, {size / 2**20:.0f} MiB"
                f" + {len(artifacts)} locked wheels, {artifact_size / 2**20:.0f} MiB"
            )
            table.add(label, deep, "sha256sum, same files", sha, target=0.6)
            # What --deep adds to a plain --check: the hashing itself, Poetry's start-up aside.
            table.add(
                "--deep minus --check (the hashing)", deep - plain, "sha256sum, same files", sha
            )

    # The chain proof at scale: over 1 GiB installed, and as many bytes of locked wheels.
    large = prepare("large", large_specs, large_names(), environ, wheels)
    files = record_files(large)
    size = sum(Path(f).stat().st_size for f in files)
    artifacts = locked_wheels(large, environ)
    artifact_size = sum(Path(f).stat().st_size for f in artifacts)
    listing = WORK / "deep-large-files.txt"
    listing.write_text("\0".join(files + artifacts))
    deep, sha = medians(
        [
            [*POETRY, "snapshot", "--check", "--deep"],
            ["sh", "-c", f"xargs -0 sha256sum < {listing} > /dev/null"],
        ],
        large.path,
        environ,
        LARGE_RUNS,
    )
    table.add(
        f"--deep: {size / 2**30:.2f} GiB installed + {artifact_size / 2**30:.2f} GiB of"
        f" {len(artifacts)} locked wheels",
        deep,
        "sha256sum, same files and wheels",
        sha,
        target=0.7,
    )
    table.print()
    return 0 if table.all_met() else 1


if __name__ == "__main__":
    sys.exit(main())
