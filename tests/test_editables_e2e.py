"""Editable installs and `poetry snapshot -- CMD`, end to end: code inside the project runs
from the snapshot (Poetry's `.pth` entries, setuptools' PEP 660 finder, console scripts),
code outside it runs live and is reported."""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.projects import run
from tests.projects import write_package
from tests.projects import write_path_dependency
from tests.test_snapshot_e2e import manifest
from tests.test_snapshot_e2e import published
from tests.test_snapshot_e2e import snapshot

if TYPE_CHECKING:
    from tests.conftest import MakeProject
    from tests.projects import Project

pytestmark = pytest.mark.e2e

WHERE = "import {0}; print({0}.__file__)"
CLI = "import {0}\n\ndef main():\n    print({0}.__file__)\n"


@pytest.fixture
def base_dir(tmp_path: Path, environ: dict[str, str]) -> Path:
    path = tmp_path / "store"
    environ["POETRY_SNAPSHOT_BASE_DIR"] = str(path)
    return path


def where(project: Project, base_dir: Path, module: str, *args: str) -> tuple[Path, str, str]:
    """(snapshot, module's __file__, stderr) of `poetry snapshot ARGS -- python -c ...`."""
    result = snapshot(project, *args, "--", "python", "-c", WHERE.format(module))
    assert result.returncode == 0, result.stderr
    return published(base_dir)[-1], result.stdout.strip(), result.stderr


def poetry_core_lib(root: Path, name: str, *, src_layout: bool = False, script: str = "") -> Path:
    """A poetry-core path dependency, optionally in src layout, with a console script."""
    lib = write_path_dependency(root, name)
    if src_layout:
        shutil.rmtree(lib / name)
        write_package(lib, name, src_layout=True)
    if script:
        package = lib / "src" / name if src_layout else lib / name
        (package / "cli.py").write_text(CLI.format(name))
        with (lib / "pyproject.toml").open("a") as stream:
            stream.write(f'\n[project.scripts]\n{script} = "{name}.cli:main"\n')
    return lib


def setuptools_lib(root: Path) -> Path:
    """A setuptools project installed editable through a PEP 660 finder (a flat layout is
    never a static .pth): `tool` from tool/, and `other` from code/ (package-dir), a name a
    PYTHONPATH directory cannot give."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [project]
            name = "tool"
            version = "0.1"
            requires-python = ">=3.9"

            [project.scripts]
            tool-where = "tool.cli:main"

            [tool.setuptools]
            packages = ["tool", "other"]
            package-dir = {other = "code"}

            [build-system]
            requires = ["setuptools>=64"]
            build-backend = "setuptools.build_meta"
            """
        )
    )
    write_package(root, "tool")
    (root / "tool" / "cli.py").write_text(CLI.format("tool"))
    (root / "code").mkdir()
    (root / "code" / "__init__.py").write_text("WHERE = __file__\n")
    return root


@pytest.fixture
def setuptools_wheel(wheels: Path) -> Path:
    """setuptools on the local index (the build backend of a path dependency), taken from the
    wheels virtualenv bundles to seed venvs: no download. Added to the session's index, where
    no other project asks for it."""
    from virtualenv.seed.wheels.embed import BUNDLE_FOLDER
    from virtualenv.seed.wheels.embed import BUNDLE_SUPPORT

    bundled = BUNDLE_SUPPORT.get(f"{sys.version_info[0]}.{sys.version_info[1]}", {})
    name = bundled.get("setuptools")
    if name is None or int(name.split("-")[1].split(".")[0]) < 64:
        pytest.skip(f"virtualenv bundles no setuptools >= 64 for this Python ({name})")
    target = wheels / name
    if not target.exists():
        shutil.copyfile(Path(BUNDLE_FOLDER) / name, target)
    return target


def test_path_dependencies_and_their_scripts_run_from_the_snapshot(
    make_project: MakeProject, base_dir: Path
) -> None:
    def libs(root: Path) -> None:
        poetry_core_lib(root / "libs" / "mylib", "mylib", script="mylib-where")
        poetry_core_lib(root / "libs" / "srclib", "srclib", src_layout=True)

    project = make_project(
        "demo",
        poetry_dependencies={
            "mylib": {"path": "libs/mylib", "develop": True},
            "srclib": {"path": "libs/srclib", "develop": True},
        },
        before_lock=libs,
    )
    site = project.site_packages()
    # Poetry's .pth entries point at the live tree: what the snapshot has to beat.
    assert (site / "mylib.pth").read_text().strip() == str(project.path / "libs" / "mylib")
    assert (site / "srclib.pth").read_text().strip() == str(project.path / "libs/srclib/src")

    snap, mylib, stderr = where(project, base_dir, "mylib")
    assert mylib == str(snap / "libs/mylib/mylib/__init__.py")
    assert "runs live" not in stderr
    snap, srclib, _ = where(project, base_dir, "srclib")
    assert srclib == str(snap / "libs/srclib/src/srclib/__init__.py")
    snap, demo, _ = where(project, base_dir, "demo")
    assert demo == str(snap / "demo/__init__.py")

    script = snapshot(project, "--", "mylib-where")
    assert script.returncode == 0, script.stderr
    assert script.stdout.strip() == str(published(base_dir)[-1] / "libs/mylib/mylib/__init__.py")

    editables = {e["name"]: e for e in manifest(snap)["editables"]}
    assert editables == {
        "demo": {
            "name": "demo",
            "path": str(project.path),
            "in_project": True,
            "snapshot_path": ".",
            "git": None,
        },
        "mylib": {
            "name": "mylib",
            "path": str(project.path / "libs" / "mylib"),
            "in_project": True,
            "snapshot_path": "libs/mylib",
            "git": None,
        },
        "srclib": {
            "name": "srclib",
            "path": str(project.path / "libs" / "srclib"),
            "in_project": True,
            "snapshot_path": "libs/srclib",
            "git": None,
        },
    }
    # The env is untouched: outside a snapshot, the live tree is imported as before.
    live = project.poetry("run", "python", "-c", WHERE.format("mylib")).stdout.strip()
    assert live == str(project.path / "libs/mylib/mylib/__init__.py")

    # An in-project editable the snapshot does not hold runs live, and says so.
    snap, mylib, stderr = where(project, base_dir, "mylib", "--exclude", "libs/mylib/")
    assert mylib == str(project.path / "libs/mylib/mylib/__init__.py")
    [line] = [line for line in stderr.splitlines() if "runs live" in line]
    assert line.startswith("Code under libs/mylib runs live, not from the snapshot")
    assert "mylib.pth" in line


def test_setuptools_pep660_finder_runs_from_the_snapshot(
    make_project: MakeProject, base_dir: Path, setuptools_wheel: Path
) -> None:
    project = make_project(
        "demo",
        poetry_dependencies={"tool": {"path": "libs/tool", "develop": True}},
        before_lock=lambda root: setuptools_lib(root / "libs" / "tool"),
    )
    site = project.site_packages()
    # Installed the PEP 660 way: a finder with a MAPPING, loaded by a .pth import line.
    [finder] = site.glob("__editable___tool_*_finder.py")
    assert re.search(r"^MAPPING\b.*'other': '[^']*/libs/tool/code'", finder.read_text(), re.M)
    [pth] = site.glob("__editable__.tool-*.pth")
    assert pth.read_text().startswith(f"import {finder.stem}")
    live = project.poetry("run", "python", "-c", WHERE.format("other")).stdout.strip()
    assert live == str(project.path / "libs/tool/code/__init__.py")

    snap, tool, stderr = where(project, base_dir, "tool")
    assert tool == str(snap / "libs/tool/tool/__init__.py")
    assert "runs live" not in stderr
    snap, other, _ = where(project, base_dir, "other")
    # code/ is imported as `other` through a relative symlink in the snapshot's metadata.
    assert other == str(snap / ".snapshot/imports/other/__init__.py")
    assert os.readlink(snap / ".snapshot/imports/other") == "../../libs/tool/code"
    assert os.path.realpath(other) == str(snap / "libs/tool/code/__init__.py")

    script = snapshot(project, "--", "tool-where")
    assert script.returncode == 0, script.stderr
    assert script.stdout.strip() == str(published(base_dir)[-1] / "libs/tool/tool/__init__.py")
    [tool_entry] = [e for e in manifest(snap)["editables"] if e["name"] == "tool"]
    assert tool_entry["in_project"] and tool_entry["snapshot_path"] == "libs/tool"


def test_editable_outside_the_project_runs_live_with_a_warning(
    make_project: MakeProject, base_dir: Path, tmp_path: Path, environ: dict[str, str]
) -> None:
    outside = poetry_core_lib(tmp_path / "outlib", "outlib")
    git = ["git", "-C", str(outside)]
    run([*git, "init", "-q", "-b", "main"], environ)
    run([*git, "add", "-A"], environ)
    run([*git, "commit", "-q", "-m", "one"], environ)
    commit = run([*git, "rev-parse", "HEAD"], environ).stdout.strip()
    (outside / "outlib" / "__init__.py").write_text("WHERE = __file__  # edited\n")

    project = make_project(
        "demo",
        poetry_dependencies={"outlib": {"path": "../outlib", "develop": True}},
    )
    snap, outlib, stderr = where(project, base_dir, "outlib")
    assert outlib == str(outside / "outlib" / "__init__.py")
    [line] = [line for line in stderr.splitlines() if "runs live" in line]
    assert line == (
        f"outlib runs live from {outside}: it is installed editable from outside the project,"
        " so the snapshot holds no copy of it (recorded in the manifest)."
    )
    [entry] = [e for e in manifest(snap)["editables"] if e["name"] == "outlib"]
    assert entry == {
        "name": "outlib",
        "path": str(outside),
        "in_project": False,
        "snapshot_path": None,
        "git": {"commit": commit, "dirty": True},
    }


def test_package_mode_false_keeps_the_project_root_first(
    make_project: MakeProject, base_dir: Path
) -> None:
    def files(root: Path) -> None:
        poetry_core_lib(root / "libs" / "mylib", "mylib")
        (root / "helper.py").write_text("WHERE = __file__\n")
        (root / "sub").mkdir()
        (root / "sub" / "keep.txt").write_text("a file, so that sub/ is in the snapshot\n")

    project = make_project(
        "scripts",
        package_mode=False,
        poetry_dependencies={"mylib": {"path": "libs/mylib", "develop": True}},
        before_lock=files,
    )
    code = "import helper, mylib; print(helper.__file__); print(mylib.__file__)"
    result = snapshot(project, "--", "python", "-c", code, cwd=project.path / "sub")
    assert result.returncode == 0, result.stderr
    [snap] = published(base_dir)
    assert result.stdout.splitlines() == [
        str(snap / "helper.py"),
        str(snap / "libs/mylib/mylib/__init__.py"),
    ]
