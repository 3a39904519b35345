""".github/workflows/ci.yml runs exactly the README's test command, on every supported Python."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests import run as test_runner

ROOT = Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    """The Quick start's command that runs the test suite."""
    text = (ROOT / "README.md").read_text()
    quick_start = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    commands = [
        line[2:].split("#", 1)[0].strip()
        for line in quick_start.split("```console\n", 1)[1].split("```", 1)[0].splitlines()
        if line.startswith("$ ") and "test suite" in line
    ]
    assert len(commands) == 1, commands
    return commands[0]


def workflow() -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    return data


def test_the_workflow_runs_the_readme_test_command() -> None:
    assert readme_test_command() == "python3 tests/run.py"
    (job,) = workflow()["jobs"].values()
    runs = [step["run"].strip() for step in job["steps"] if "run" in step]
    assert runs == [readme_test_command()]
    # .ci/run is the same command, too.
    assert "exec python3 tests/run.py" in (ROOT / ".ci/run").read_text()


def test_the_workflow_covers_every_supported_python() -> None:
    (job,) = workflow()["jobs"].values()
    versions = job["strategy"]["matrix"]["python-version"]
    assert all(isinstance(v, str) for v in versions)  # "3.10", not the float 3.1
    minors = [int(v.split(".")[1]) for v in versions]
    assert [v.split(".")[0] for v in versions] == ["3"] * len(versions)
    assert minors == list(range(minors[0], minors[-1] + 1))  # every one in between
    project = tomlkit.parse((ROOT / "pyproject.toml").read_text())["project"]
    requires_python = SpecifierSet(str(project["requires-python"]))
    assert f"3.{minors[0]}" in requires_python and f"3.{minors[0] - 1}" not in requires_python
    assert minors[-1] >= 13  # the newest CPython actions/setup-python offers
    setup = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "${{ matrix.python-version }}"
    assert job["runs-on"] == "ubuntu-latest"
    assert job["strategy"]["fail-fast"] is False


def test_the_test_command_covers_both_ends_of_the_poetry_range() -> None:
    project = tomlkit.parse((ROOT / "pyproject.toml").read_text())["project"]
    (poetry,) = [Requirement(r) for r in project["dependencies"] if r.startswith("poetry>")]
    lower = next(s.version for s in poetry.specifier if s.operator == ">=")
    pins = dict(test_runner.POETRY_RANGE)
    assert pins["poetry-2.0"] == f"poetry=={lower}.0"
    assert SpecifierSet(pins["poetry-newest"].removeprefix("poetry")) == poetry.specifier
