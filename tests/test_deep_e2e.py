"""`poetry snapshot --check --deep` never blocks and never leaves the env: real Poetry-installed
envs, real `poetry` subprocesses, each bounded by a timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING
from typing import Any

import pytest

from tests.projects import POETRY
from tests.projects import Project
from tests.projects import run
from tests.test_check_e2e import assert_clean
from tests.test_check_e2e import validate_report

if TYPE_CHECKING:
    from pathlib import Path

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
    found = {(d["package"], d["path"]): (d["kind"], d["found"]) for d in report["drifts"]}
    real_outside = os.path.realpath(outside)
    assert found == {
        ("alpha", "alpha/__init__.py"): (
            "modified-file",
            "a symlink to /dev/zero, outside the environment; not opened",
        ),
        ("beta", "beta/__init__.py"): ("modified-file", "a FIFO; not opened"),
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
