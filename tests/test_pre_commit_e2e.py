""".pre-commit-hooks.yaml through the real `pre-commit`, in real git projects with real envs.

pre-commit clones the hook repository like any other: here a fresh git repository holding this
checkout's `.pre-commit-hooks.yaml` as it is on disk (committed or not). The hooks are
`language: system`, so pre-commit installs nothing and needs no network; they run the `poetry`
first on PATH, which is the test venv's, with this plugin installed (editable).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.projects import run

if TYPE_CHECKING:
    from tests.conftest import MakeProject
    from tests.projects import Project

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / ".pre-commit-hooks.yaml"


def hook_repo(tmp_path: Path, environ: dict[str, str]) -> tuple[Path, str]:
    """A git repository holding the manifest as it is on disk; returns it and its commit."""
    repo = tmp_path / "hook-repo"
    repo.mkdir()
    shutil.copy(MANIFEST, repo / MANIFEST.name)
    git(repo, environ, "init", "-q", "-b", "main")
    git(repo, environ, "add", MANIFEST.name)
    git(repo, environ, "commit", "-q", "-m", "hooks")
    return repo, git(repo, environ, "rev-parse", "HEAD").stdout.strip()


def git(cwd: Path, environ: dict[str, str], *args: str) -> object:
    return run(["git", *args], env=environ, cwd=cwd)


def commit_project(project: Project, *files: str) -> None:
    (project.path / ".gitignore").write_text(".venv/\n")
    git(project.path, project.environ, "init", "-q", "-b", "main")
    git(project.path, project.environ, "add", ".gitignore", "pyproject.toml", "poetry.lock", *files)
    git(project.path, project.environ, "commit", "-q", "-m", "project")


def pre_commit_environ(project: Project, tmp_path: Path) -> dict[str, str]:
    """The project's environment plus the test venv's bin/ (its `poetry`) first on PATH, and a
    pre-commit home of the test's own."""
    env = dict(project.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    return env


def pre_commit(project: Project, env: dict[str, str], *args: str) -> tuple[int, str]:
    result = run(
        [sys.executable, "-m", "pre_commit", *args, "--color", "never"],
        env=env,
        cwd=project.path,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result.returncode, result.stdout + result.stderr


def try_check(project: Project, env: dict[str, str], repo: Path, *args: str) -> tuple[int, str]:
    return pre_commit(
        project, env, "try-repo", str(repo), "poetry-snapshot-check", "--all-files", *args
    )


def test_manifest_fields() -> None:
    hooks = {hook["id"]: hook for hook in yaml.safe_load(MANIFEST.read_text())}
    assert set(hooks) == {"poetry-snapshot-check", "poetry-env-export-check"}
    check = hooks["poetry-snapshot-check"]
    assert check["entry"] == "poetry snapshot --check"
    assert check["files"] == r"^(pyproject\.toml|poetry\.lock)$"
    assert re.match(check["files"], "poetry.lock") and not re.match(check["files"], "x/poetry.lock")
    export = hooks["poetry-env-export-check"]
    assert export["entry"] == "poetry env-export --check"
    for hook in hooks.values():
        # The project's own environment, with the user's own Poetry: nothing pre-commit activates.
        assert hook["language"] == "system"
        assert hook["pass_filenames"] is False and hook["always_run"] is False
        assert "stages" not in hook  # every stage, `manual` included


def test_check_hook_passes_on_a_clean_env_and_fails_after_a_drift(
    make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project("hooked", ["alpha"])
    commit_project(project, "hooked/__init__.py")
    repo, _ = hook_repo(tmp_path, project.environ)
    env = pre_commit_environ(project, tmp_path)

    code, out = try_check(project, env, repo)
    assert code == 0, out
    assert re.search(r"^poetry snapshot --check\.+Passed$", out, re.M), out

    project.pip("install", "stray")
    code, out = try_check(project, env, repo)
    assert code == 1, out
    assert re.search(r"^poetry snapshot --check\.+Failed$", out, re.M), out
    assert "- exit code: 1" in out
    # The drift report of the project's own env, not of any env pre-commit made.
    assert f"Checking {project.venv} (" in out
    assert "stray" in out and "Environment drifted from poetry.lock: 1 drift" in out

    # On demand, in the manual stage.
    code, out = try_check(project, env, repo, "--hook-stage", "manual")
    assert code == 1 and "stray" in out, out

    project.pip("uninstall", "-y", "stray")
    code, out = try_check(project, env, repo)
    assert code == 0, out


def test_check_hook_runs_only_when_the_lock_or_pyproject_changes(
    make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project("onlylock", ["beta"])
    commit_project(project, "onlylock/__init__.py")
    repo, _ = hook_repo(tmp_path, project.environ)
    env = pre_commit_environ(project, tmp_path)
    project.pip("install", "stray")  # drift, which the hook must not see on unrelated commits

    (project.path / "notes.txt").write_text("x\n")
    git(project.path, env, "add", "notes.txt")
    code, out = pre_commit(project, env, "try-repo", str(repo), "poetry-snapshot-check")
    assert code == 0, out
    assert re.search(r"^poetry snapshot --check\.+\(no files to check\)Skipped$", out, re.M), out

    (project.path / "poetry.lock").write_text((project.path / "poetry.lock").read_text() + "\n")
    git(project.path, env, "add", "poetry.lock")
    code, out = pre_commit(project, env, "try-repo", str(repo), "poetry-snapshot-check")
    assert code == 1 and "stray" in out, out


def test_hook_checks_an_env_outside_the_project_as_poetry_finds_it(
    make_project: MakeProject, environ: dict[str, str], tmp_path: Path
) -> None:
    """Poetry's default layout: the env lives under `virtualenvs.path`, named after the project;
    the hook checks the one `poetry env info --path` names (nothing pre-commit made)."""
    environ["POETRY_VIRTUALENVS_IN_PROJECT"] = "false"
    environ["POETRY_VIRTUALENVS_PATH"] = str(tmp_path / "virtualenvs")
    project = make_project("outside", ["beta"])
    env_path = project.poetry("env", "info", "--path").stdout.strip()
    assert Path(env_path).parent == tmp_path / "virtualenvs" and not project.venv.exists()
    commit_project(project, "outside/__init__.py")
    repo, _ = hook_repo(tmp_path, project.environ)
    env = pre_commit_environ(project, tmp_path)

    code, out = try_check(project, env, repo)
    assert code == 0, out
    run([f"{env_path}/bin/python", "-m", "pip", "uninstall", "-y", "beta"], env=env)
    code, out = try_check(project, env, repo)
    assert code == 1 and f"Checking {env_path} (" in out and "beta" in out, out


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## In pre-commit\n", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_readme_snippet_as_a_pre_commit_config(make_project: MakeProject, tmp_path: Path) -> None:
    """The README's `.pre-commit-config.yaml`, copied as it is (only the repo's address and rev
    point at the local hook repository), runs all three checks."""
    project = make_project("snippet", ["alpha"])
    project.poetry("env-export", "-o", "environment.yml")
    project.poetry("env-export", "-f", "requirements.txt", "-o", "requirements.txt")
    commit_project(project, "snippet/__init__.py", "environment.yml", "requirements.txt")
    repo, rev = hook_repo(tmp_path, project.environ)
    env = pre_commit_environ(project, tmp_path)

    config = yaml.safe_load(readme_snippet())
    assert [hook["id"] for hook in config["repos"][0]["hooks"]] == [
        "poetry-snapshot-check",
        "poetry-env-export-check",
        "poetry-env-export-check",
    ]
    config["repos"][0].update(repo=str(repo), rev=rev)
    (project.path / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))

    code, out = pre_commit(project, env, "run", "--all-files")
    assert code == 0, out
    assert len(re.findall(r"\.Passed$", out, re.M)) == 3, out

    # A hand edit of requirements.txt: only the requirements.txt hook fails, with the diff.
    requirements = project.path / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("alpha==1.1", "alpha==1.0"))
    code, out = pre_commit(project, env, "run", "--files", "requirements.txt")
    assert code == 1, out
    assert "requirements.txt differs from the export" in out
    assert "-alpha==1.0" in out and "+alpha==1.1" in out
    assert re.search(r"^poetry snapshot --check\.+\(no files to check\)Skipped$", out, re.M), out
    project.poetry("env-export", "-f", "requirements.txt", "-o", "requirements.txt")

    # A package pip installed behind Poetry's back: the env check fails, the exports pass.
    project.pip("install", "stray")
    code, out = pre_commit(project, env, "run", "--all-files")
    assert code == 1, out
    assert re.search(r"^poetry snapshot --check\.+Failed$", out, re.M), out
    assert len(re.findall(r"^poetry env-export --check\.+Passed$", out, re.M)) == 2, out
