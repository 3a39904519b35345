"""action.yml's shell steps, run with bash the way the Actions runner runs a composite action.

The runner substitutes `${{ ... }}` expressions into a step's fields before it starts the step;
a composite action gets no INPUT_* variables of its own. So this harness substitutes the inputs
(the caller's, else the defaults action.yml declares) into each step's `env:` and
`working-directory:`, refuses any expression inside `run:`, and runs the script as
`bash --noprofile --norc -eo pipefail FILE` (what `shell: bash` means), with GITHUB_ACTIONS=true
and a GITHUB_OUTPUT file it then parses by the runner's rules. The install step needs the
network (pip, `poetry self add`) and is not run: Poetry and this plugin are the test venv's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest
import yaml

from tests.projects import write_path_dependency

if TYPE_CHECKING:
    from tests.conftest import MakeProject
    from tests.projects import Project

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
STEPS = ACTION["runs"]["steps"]
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")


def substitute(value: str, inputs: dict[str, str]) -> str:
    """A field's value with its expressions replaced, as the runner does: only `inputs.NAME`
    and `github.action_path` occur in this action; anything else fails the test."""

    def one(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        if expression == "github.action_path":
            return str(ROOT)
        name = expression.removeprefix("inputs.")
        assert name != expression and name in ACTION["inputs"], f"unknown expression {expression}"
        default = str(ACTION["inputs"][name].get("default", ""))
        return inputs.get(name, default)

    return EXPRESSION.sub(one, value)


def parse_outputs(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT by the runner's rules: `name=value`, or `name<<DELIMITER`, the value's lines,
    then a line holding only DELIMITER."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    assert lines[-1] == "", "the file ends with a newline"
    i = 0
    while i < len(lines) - 1:
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            outputs[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
        else:
            name, value = line.split("=", 1)
            outputs[name] = value
            i += 1
    return outputs


@dataclass
class StepRun:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    raw_outputs: str


def run_check(project: Project, tmp_path: Path, **inputs: str) -> StepRun:
    """The check step of action.yml with these inputs, in the project's real environment."""
    (step,) = [s for s in STEPS if s.get("id") == "check"]
    assert step["shell"] == "bash" and "if" not in step
    assert "${{" not in step["run"]
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    output_file = runner_temp / f"output-{len(list(runner_temp.iterdir()))}"
    output_file.write_text("")
    script = runner_temp / "step.sh"
    script.write_text(step["run"])
    env = dict(project.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(output_file), RUNNER_TEMP=str(runner_temp))
    env.update({k: substitute(str(v), inputs) for k, v in step.get("env", {}).items()})
    cwd = project.path / substitute(step.get("working-directory", "."), inputs)
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    raw = output_file.read_text()
    return StepRun(
        result.returncode, result.stdout, result.stderr, parse_outputs(raw) if raw else {}, raw
    )


def report(step: StepRun) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(step.outputs["report"])
    assert Path(step.outputs["report-file"]).read_text().rstrip("\n") == step.outputs["report"]
    return data


# --- what the action declares ------------------------------------------------------------------


def test_expressions_never_reach_shell_code() -> None:
    assert ACTION["runs"]["using"] == "composite"
    for step in STEPS:
        assert step["shell"] == "bash"
        assert "${{" not in step["run"], f"step {step['id']}: pass inputs through env:"
        for value in step.get("env", {}).values():
            # Each variable is exactly one expression, so its value is the input, verbatim.
            assert EXPRESSION.fullmatch(str(value)), value
    used = {
        m.group(1).strip().removeprefix("inputs.")
        for step in STEPS
        for value in [*step.get("env", {}).values(), step.get("working-directory", "")]
        for m in EXPRESSION.finditer(str(value))
    }
    assert used - {"github.action_path"} == set(ACTION["inputs"])  # every input is used
    assert ACTION["outputs"] == {
        "report": {
            "description": ACTION["outputs"]["report"]["description"],
            "value": "${{ steps.check.outputs.report }}",
        },
        "report-file": {
            "description": ACTION["outputs"]["report-file"]["description"],
            "value": "${{ steps.check.outputs.report-file }}",
        },
    }
    # Installation first, on its own: the one step these tests cannot run.
    assert [step["id"] for step in STEPS] == ["install", "check"]


def test_parse_outputs_follows_the_runner_rules() -> None:
    assert parse_outputs("a=1\nb<<X\nline 1\nb=2\nX\nc=x<<y\n") == {
        "a": "1",
        "b": "line 1\nb=2",
        "c": "x<<y",
    }


# --- the check step, for real ------------------------------------------------------------------


@pytest.mark.e2e
def test_clean_env_passes_with_the_report_as_output(
    make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project("acted", ["alpha"])
    step = run_check(project, tmp_path)
    assert step.returncode == 0, step.stdout + step.stderr
    data = report(step)
    assert data["ok"] is True and data["drift_count"] == 0 and data["packages_checked"] == 2
    assert data["environment"] == str(project.venv)
    assert "::error" not in step.stdout + step.stderr
    assert "::group::Drift report (JSON)" in step.stdout

    # The delimiter is random: never the same twice, never a line of the report.
    again = run_check(project, tmp_path)
    first, second = (re.match(r"report<<(.*)\n", s.raw_outputs) for s in (step, again))
    assert first and second and first.group(1) != second.group(1)
    assert re.fullmatch(r"poetry-snapshot-[0-9a-f]{32}", first.group(1))
    assert first.group(1) not in step.outputs["report"]


@pytest.mark.e2e
def test_drift_fails_the_step_with_annotations_and_the_report(
    make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project("drifted", ["alpha"])
    project.pip("install", "stray")
    project.pip("uninstall", "-y", "beta")
    step = run_check(project, tmp_path)
    assert step.returncode == 1, step.stdout + step.stderr
    data = report(step)
    assert data["ok"] is False
    assert sorted((d["kind"], d["package"]) for d in data["drifts"]) == [
        ("extraneous", "stray"),
        ("missing", "beta"),
    ]
    annotations = [line for line in step.stderr.splitlines() if line.startswith("::error ")]
    assert len(annotations) == 2, step.stderr
    assert any("beta: expected 2.1" in line for line in annotations)


@pytest.mark.e2e
def test_group_extras_and_deep_inputs_reach_the_check(
    make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project(
        "options",
        ["beta"],
        groups={"docs": {"optional": True, "dependencies": {"docsdep": "*"}}},
        extras={"cli": ["clitool"]},
        install=["--with", "docs", "-E", "cli"],
    )
    step = run_check(project, tmp_path)
    assert step.returncode == 1  # docsdep and clitool are not expected without the options
    step = run_check(project, tmp_path, **{"with": "docs", "extras": "cli", "deep": "true"})
    assert step.returncode == 0, step.stdout + step.stderr
    data = report(step)
    assert data["groups"] == ["docs", "main"] and data["extras"] == ["cli"]
    assert data["deep"] is not None and data["deep"]["files_checked"] > 0
    step = run_check(project, tmp_path, **{"all-groups": "true", "all-extras": "true"})
    assert step.returncode == 0, step.stdout + step.stderr
    step = run_check(project, tmp_path, only="main")
    assert step.returncode == 1 and report(step)["groups"] == ["main"]


@pytest.mark.e2e
def test_sync_input_creates_the_env_first(make_project: MakeProject, tmp_path: Path) -> None:
    project = make_project("synced", ["alpha"], install=False)
    shutil.rmtree(project.venv, ignore_errors=True)  # `poetry lock` made an empty one
    step = run_check(project, tmp_path)
    assert step.returncode == 1 and report(step)["drifts"][0]["kind"] == "no-environment"
    step = run_check(project, tmp_path, sync="true")
    assert step.returncode == 0, step.stdout + step.stderr
    assert report(step)["ok"] is True and project.venv.is_dir()


@pytest.mark.e2e
def test_working_directory_and_the_export_check(make_project: MakeProject, tmp_path: Path) -> None:
    project = make_project("exported", ["alpha"], directory=tmp_path / "repo" / "sub" / "exported")
    project.poetry("env-export", "-f", "requirements.txt", "-o", "requirements.txt")
    top = type(project)(tmp_path / "repo", project.environ, project.index_url, project.wheels)
    inputs = {
        "working-directory": "sub/exported",
        "export-file": "requirements.txt",
        "export-format": "requirements.txt",
    }
    step = run_check(top, tmp_path, **inputs)
    assert step.returncode == 0, step.stdout + step.stderr
    assert "requirements.txt: up to date." in step.stderr

    requirements = project.path / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("alpha==1.1", "alpha==1.0"))
    step = run_check(top, tmp_path, **inputs)
    assert step.returncode == 1
    assert report(step)["ok"] is True  # the env is fine; the export is not
    assert "+alpha==1.1" in step.stdout
    assert "::error title=poetry-snapshot::The export-file is not" in step.stdout

    # export-options are the export's own options, one word each.
    step = run_check(top, tmp_path, **inputs, **{"export-options": "--without-hashes"})
    assert step.returncode == 1 and "--hash" in step.stdout  # the file on disk has hashes

    # Both fail: the step's exit code is the env check's.
    project.pip("install", "stray")
    (project.path / "requirements.txt").unlink()
    step = run_check(top, tmp_path, **inputs)
    assert step.returncode == 1 and report(step)["ok"] is False


@pytest.mark.e2e
def test_hostile_inputs_stay_data(make_project: MakeProject, tmp_path: Path) -> None:
    """Input values are never shell code: each reaches Poetry as one argument."""
    project = make_project("hostile", ["beta"])
    marker = tmp_path / "pwned"
    for value in (f'docs"; touch {marker}; echo "', f"$(touch {marker})", f"`touch {marker}`"):
        step = run_check(project, tmp_path, **{"with": value})
        assert step.returncode == 2, step.stdout + step.stderr
        assert "Group(s) not found" in step.stderr
        assert "::error title=poetry-snapshot::poetry snapshot --check could not check" in (
            step.stdout
        )
        step = run_check(
            project,
            tmp_path,
            **{"export-file": "x.txt", "export-options": f"--with $(touch {marker}) *"},
        )
        assert not marker.exists()
    step = run_check(project, tmp_path, deep="yes")
    assert step.returncode == 2 and "Input deep must be true or false." in step.stdout
    assert step.outputs == {}  # nothing was checked, so there is no report


@pytest.mark.e2e
def test_a_project_with_a_path_dependency_and_spaces_in_its_path(
    make_project: MakeProject, tmp_path: Path
) -> None:
    root = tmp_path / "with space" / "proj"
    project = make_project(
        "spaced",
        poetry_dependencies={"beta": "*", "lib": {"path": "libs/lib", "develop": True}},
        directory=root,
        before_lock=lambda r: write_path_dependency(r / "libs" / "lib", "lib"),
    )
    step = run_check(project, tmp_path)
    assert step.returncode == 0, step.stdout + step.stderr
    assert report(step)["project_dir"] == str(root)


def test_readme_workflow_uses_declared_inputs_and_outputs() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## In GitHub Actions\n", 1)[1].split("\n## ", 1)[0]
    example = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    (job,) = example["jobs"].values()
    (step,) = [s for s in job["steps"] if s.get("uses", "").startswith("poetry-snapshot/")]
    assert set(step["with"]) <= set(ACTION["inputs"])
    for step in job["steps"]:
        assert "${{" not in step.get("run", "")
    # Every input the README lists exists, and every input is listed.
    listed = set(re.findall(r"`([a-z-]+)`", section.split("Inputs:", 1)[1].split("Every input")[0]))
    assert set(ACTION["inputs"]) <= listed
