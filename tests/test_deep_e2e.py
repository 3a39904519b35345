"""`poetry snapshot --check --deep` sees what can run, never blocks and never leaves the env:
real Poetry-installed envs, real `poetry` subprocesses, each bounded by a timeout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest
import tomlkit

from tests.projects import POETRY
from tests.projects import Project
from tests.projects import run
from tests.test_check_e2e import assert_clean
from tests.test_check_e2e import validate_report

if TYPE_CHECKING:
    from tests.conftest import MakeProject

pytestmark = pytest.mark.e2e

# Far beyond what a check takes here; without the FIFO and device guards it would never end.
TIMEOUT = 180


def deep(
    project: Project, *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    """`poetry snapshot --check --deep --format json`: (exit code, report, stderr)."""
    result = subprocess.run(
        [*POETRY, "snapshot", "--check", "--deep", "--format", "json", *args],
        cwd=project.path,
        env={**project.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"not JSON (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        ) from None
    validate_report(report)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, report, result.stderr


def drifts(report: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    return [(d["kind"], d["package"], d["path"]) for d in report["drifts"]]


def apply_fixes(project: Project, report: dict[str, Any]) -> None:
    """Run each fix the report prints, as a user pasting it into a shell would."""
    # `poetry` on PATH: the one the tests run
    path = os.pathsep.join([os.path.dirname(sys.executable), project.environ.get("PATH", "")])
    fixes = dict.fromkeys(d["fix"] for d in report["drifts"])
    # a new env makes the other fixes moot: it goes last
    for fix in sorted(fixes, key=lambda fix: fix.startswith("poetry env remove")):
        run(["sh", "-c", fix], env={**project.environ, "PATH": path}, cwd=project.path)


def with_bytecode(project: Project) -> dict[str, str]:
    """The tests' environ with bytecode writing on, as it is for users."""
    return {k: v for k, v in project.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def write_bytecode(project: Project) -> None:
    """What imports and `python -O`/`-OO` leave behind in a real env (the tests' environ
    turns bytecode writing off)."""
    site = str(project.site_packages())
    for flags in ([], ["-O"], ["-OO"]):
        run(
            [str(project.python), *flags, "-m", "compileall", "-q", site],
            env=with_bytecode(project),
        )


def site_rel(project: Project) -> str:
    return str(project.site_packages().relative_to(project.venv))


# --- what runs at every start is seen -----------------------------------------------------------


def test_files_that_run_at_start_are_unowned(make_project: MakeProject) -> None:
    project = make_project("startup", ["alpha"])
    site = project.site_packages()
    marker = project.path / "ran"
    (site / "evil.pth").write_text(f"import pathlib; pathlib.Path({str(marker)!r}).touch()\n")
    (site / "sitecustomize.py").write_text("import os\nos.environ['SITECUSTOMIZED'] = 'yes'\n")
    (site / "beta" / "extra.py").write_text("X = 1\n")
    probe = "import os, beta.extra; print(os.environ.get('SITECUSTOMIZED'), beta.extra.X)"
    assert run([str(project.python), "-c", probe], env=with_bytecode(project)).stdout == "yes 1\n"
    assert marker.exists()  # all three run in the env: each is what --deep must see
    tag = sys.implementation.cache_tag  # the env's Python is the one running the tests

    assert_clean(project)  # without --deep nothing is walked
    code, report, stderr = deep(project, env={"GITHUB_ACTIONS": "true"})
    rel = site_rel(project)
    assert (code, drifts(report)) == (
        1,
        [
            ("unowned-file", None, f"{rel}/__pycache__/sitecustomize.{tag}.pyc"),
            ("unowned-file", None, f"{rel}/evil.pth"),
            ("unowned-file", None, f"{rel}/sitecustomize.py"),
            ("unowned-file", "beta", f"{rel}/beta/__pycache__/extra.{tag}.pyc"),
            ("unowned-file", "beta", f"{rel}/beta/extra.py"),
        ],
    ), report
    _, pth, customize, _, extra = report["drifts"]
    assert pth["expected"] == "absent (no installed distribution lists it)"
    assert pth["found"].endswith("bytes; Python runs its import lines at every start")
    assert customize["found"].endswith("bytes; Python imports it at every start")
    assert extra["fix"] == f"rm -- {project.venv}/{rel}/beta/extra.py"
    assert report["deep"]["files_scanned"] > 100  # pip is in the env too
    annotations = stderr.splitlines()
    assert len(annotations) == 5
    assert annotations[4] == (
        "::error title=poetry-snapshot%3A Unowned files::beta"
        f" {rel}/beta/extra.py: expected absent (no installed distribution lists it),"
        f" found a file of 6 bytes. Fix: rm -- {project.venv}/{rel}/beta/extra.py"
    )

    text = project.check("--deep")
    assert text.returncode == 1
    assert "Unowned files (5)" in text.stdout
    assert "drifts (unowned-file 5)" in text.stdout

    apply_fixes(project, report)
    assert_clean(project, "--deep")


def test_scripts_and_creator_lookalikes(make_project: MakeProject) -> None:
    project = make_project("lookalike", ["clitool"])
    bin_dir = project.venv / "bin"
    (bin_dir / "tool-added-later").write_text("#!/bin/sh\necho hi\n")
    activate = bin_dir / "activate"
    activate.unlink()
    activate.symlink_to(project.path / "my-activate")  # named like virtualenv's, but not its
    code, report, _ = deep(project)
    assert code == 1
    assert drifts(report) == [
        ("unowned-file", None, "bin/activate"),
        ("unowned-file", None, "bin/tool-added-later"),
    ], report
    assert report["drifts"][0]["fix"] == "poetry env remove --all && poetry sync"
    assert report["drifts"][0]["found"].endswith(
        "named like an activation script, not a regular file"
    )
    apply_fixes(project, report)  # a new env, and the added script gone
    assert_clean(project, "--deep")


# --- zero false positives on envs `poetry sync` builds --------------------------------------------


def test_clean_env_with_bytecode_console_scripts_and_project_scripts(
    make_project: MakeProject,
) -> None:
    def project_script(root: Path) -> None:
        pyproject = root / "pyproject.toml"
        data = tomlkit.parse(pyproject.read_text())
        data["project"]["scripts"] = {"bytecode-cli": "bytecode:main"}  # type: ignore[index]
        pyproject.write_text(tomlkit.dumps(data))

    project = make_project("bytecode", ["alpha", "clitool"], before_lock=project_script)
    assert (project.venv / "bin" / "bytecode-cli").exists()
    write_bytecode(project)
    assert list(project.site_packages().glob("pip/__pycache__/*.opt-2.pyc"))
    report = assert_clean(project, "--deep")
    assert report["deep"]["files_scanned"] > 1000


def test_clean_env_after_upgrade_that_drops_a_module(
    make_project: MakeProject, wheels: Path
) -> None:
    from tests.distributions import WheelSpec
    from tests.distributions import build_wheel

    old = {"shrinks/old.py": b"OLD = 1\n", "shrinks/keep.py": b"K = 1\n"}
    build_wheel(WheelSpec("shrinks", "1.0", files=old), wheels)
    build_wheel(WheelSpec("shrinks", "2.0", files={"shrinks/keep.py": b"K = 2\n"}), wheels)
    project = make_project("upgrade", ["shrinks==1.0"])
    write_bytecode(project)
    project.edit({"project": {"dependencies": ["shrinks==2.0"]}})
    project.poetry("lock")
    project.poetry("sync")
    cache = project.site_packages() / "shrinks" / "__pycache__"
    # pip uninstalls only the plain .pyc: -O and -OO bytecode of the dropped module stays,
    # and never runs without its module.
    assert {p.name for p in cache.glob("old.*")} == {
        "old.cpython-311.opt-1.pyc",
        "old.cpython-311.opt-2.pyc",
    }
    assert_clean(project, "--deep")


def _python_older_than_3_10() -> str | None:
    # on PATH, or installed beside this Python (pyenv, asdf and uv keep versions side by side)
    candidates = [
        shutil.which("python3.9"),
        *map(str, Path(sys.base_prefix).parent.glob("3.9*/bin/python3.9")),
    ]
    for found in filter(None, candidates):
        probe = subprocess.run(
            [found, "-c", "import sys; print(sys.version_info[:2] < (3, 10))"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return found
    return None


def test_virtualenv_patch_files(make_project: MakeProject) -> None:
    project = make_project("vpatch", ["beta"])
    site = project.site_packages()
    if not (site / "_virtualenv.py").exists():
        # virtualenv >= 21 writes them only for Pythons below 3.10 (20.x did for all)
        python = _python_older_than_3_10()
        if python is None:
            pytest.skip("no Python 3.9 here, and this virtualenv writes _virtualenv.py below 3.10")
        shutil.rmtree(project.venv)
        project.poetry("env", "use", python)
        project.poetry("install")
        site = project.site_packages()
    assert (site / "_virtualenv.pth").exists() and (site / "_virtualenv.py").exists()
    run([str(project.python), "-c", "pass"], env=with_bytecode(project))  # _virtualenv's .pyc
    assert_clean(project, "--deep")
    with (site / "_virtualenv.py").open("a") as patch:
        patch.write("import os  # and anything else\n")
    code, report, _ = deep(project)
    assert code == 1
    rel = site_rel(project)
    tag = run(
        [str(project.python), "-c", "import sys; print(sys.implementation.cache_tag)"],
        env=project.environ,
    ).stdout.strip()
    # the bytecode of a module nothing owns is not owned either
    assert drifts(report) == [
        ("unowned-file", None, f"{rel}/__pycache__/_virtualenv.{tag}.pyc"),
        ("unowned-file", None, f"{rel}/_virtualenv.py"),
    ]
    written = report["drifts"][1]
    assert "not what virtualenv " in written["found"]
    assert written["fix"] == "poetry env remove --all && poetry sync"


def test_conda_prefix_owns_what_conda_meta_lists(make_project: MakeProject) -> None:
    project = make_project("conda", ["beta"])
    rel = site_rel(project)
    meta = project.venv / "conda-meta"
    meta.mkdir()
    record = {"name": "zlib", "version": "1.3", "build": "h_0", "channel": "conda-forge"}
    record["files"] = [f"{rel}/zlib_helper.py", "bin/zlib-flate"]
    (meta / "zlib-1.3-h_0.json").write_text(json.dumps(record))
    (project.site_packages() / "zlib_helper.py").write_text("")
    (project.venv / "bin" / "zlib-flate").write_text("")
    (project.site_packages() / "not_conda.py").write_text("")
    code, report, _ = deep(project)
    assert (code, drifts(report)) == (1, [("unowned-file", None, f"{rel}/not_conda.py")]), report


def test_extraneous_package_files_are_its_own(make_project: MakeProject) -> None:
    project = make_project("extraneous", ["beta"])
    project.pip("install", "stray", "clitool")
    code, report, _ = deep(project)
    assert [(d["kind"], d["package"]) for d in report["drifts"]] == [
        ("extraneous", "clitool"),
        ("extraneous", "stray"),
    ]
    code, report, _ = deep(project, "--allow-extra")
    assert code == 0


# --- never blocks, never leaves the env, never crashes ------------------------------------------


def _rewrite_record(dist_info: Path, rows: dict[str, str | None]) -> None:
    """Replace (or with None, drop) RECORD rows by path; add the ones not there."""
    lines = dist_info.joinpath("RECORD").read_text().splitlines()
    out = []
    for line in lines:
        path = line.split(",", 1)[0]
        if path in rows:
            row = rows.pop(path)
            if row is not None:
                out.append(row)
        else:
            out.append(line)
    out.extend(row for row in rows.values() if row is not None)
    dist_info.joinpath("RECORD").write_text("\n".join(out) + "\n")


def test_fifo_device_and_paths_outside_the_env_are_reported_never_opened(
    make_project: MakeProject,
) -> None:
    project = make_project("unsafe", ["alpha"])
    site = project.site_packages()
    # beta's module becomes a FIFO: opening it for reading would wait for a writer forever
    (site / "beta" / "__init__.py").unlink()
    os.mkfifo(site / "beta" / "__init__.py")
    # alpha's module becomes a symlink to /dev/zero, listed without a size: read to its end,
    # it never ends
    (site / "alpha" / "__init__.py").unlink()
    (site / "alpha" / "__init__.py").symlink_to("/dev/zero")
    _rewrite_record(
        next(site.glob("alpha-*.dist-info")),
        {
            "alpha/__init__.py": "alpha/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,"
        },
    )
    # beta's RECORD names files outside the env, absolute and through `..`
    outside = project.path / "outside.txt"
    outside.write_text("not the env's\n")
    _rewrite_record(
        next(site.glob("beta-*.dist-info")),
        {
            str(outside): f"{outside},sha256=AAAA,14",
            "../../../../outside.txt": "../../../../outside.txt,sha256=AAAA,14",
        },
    )
    code, report, _ = deep(project)
    found = {
        (d["package"], d["path"]): (d["kind"], d["found"])
        for d in report["drifts"]
        if d["kind"] != "wrong-build"
    }
    # alpha's RECORD line was rewritten: it is no longer the locked wheel's RECORD
    assert [(d["package"], d["path"]) for d in report["drifts"] if d["kind"] == "wrong-build"] == [
        ("alpha", "alpha/__init__.py")
    ]
    real_outside = os.path.realpath(outside)
    assert found == {
        ("alpha", "alpha/__init__.py"): (
            "modified-file",
            "a symlink to /dev/zero, outside the environment; not opened",
        ),
        ("beta", "beta/__init__.py"): ("modified-file", "a fifo; not opened"),
        ("beta", str(outside)): (
            "modified-file",
            f"outside the environment: {real_outside}; not opened",
        ),
        ("beta", "../../../../outside.txt"): (
            "modified-file",
            f"outside the environment: {real_outside}; not opened",
        ),
    }, report
    assert code == 1
    # The printed fix reinstalls; the file outside the env is left alone.
    apply_fixes(project, report)
    assert outside.read_text() == "not the env's\n"
    assert_clean(project, "--deep")


def test_record_not_utf8_is_reported_not_a_crash(make_project: MakeProject) -> None:
    project = make_project("badrecord", ["alpha"])
    site = project.site_packages()
    beta_info = next(site.glob("beta-*.dist-info"))
    record = beta_info / "RECORD"
    record.write_bytes(record.read_bytes() + "beta/caf\xe9.py,,\n".encode("latin-1"))
    (site / "alpha" / "__init__.py").write_text("patched = True\n")  # still checked
    code, report, _ = deep(project)
    assert code == 1
    assert drifts(report) == [
        ("modified-file", "alpha", "alpha/__init__.py"),
        ("modified-file", "beta", f"{beta_info.name}/RECORD"),
    ], report
    bad = report["drifts"][1]
    assert bad["found"].startswith("not UTF-8 (byte ")
    assert bad["found"].endswith("unreadable, its files were not checked")
    assert (
        bad["fix"] == f"rm -r -- {project.venv}/{site_rel(project)}/{beta_info.name} && poetry sync"
    )
    apply_fixes(project, report)
    assert_clean(project, "--deep")
