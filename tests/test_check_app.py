"""`poetry snapshot --check` in-process, through Poetry's Application and cleo's ApplicationTester."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest
from cleo.testers.application_tester import ApplicationTester
from poetry.console.application import Application

if TYPE_CHECKING:
    from tests.conftest import MakeProject
    from tests.projects import Project

pytestmark = pytest.mark.e2e


@pytest.fixture
def tester_for(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def make(project: Project) -> ApplicationTester:
        # The in-process Poetry reads the same isolated config, cache and env as the subprocesses.
        for key in list(os.environ):
            if key not in project.environ:
                monkeypatch.delenv(key)
        for key, value in project.environ.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(project.path)
        return ApplicationTester(Application())

    return make


def test_plugin_command_through_application_tester(make_project: MakeProject, tester_for) -> None:  # type: ignore[no-untyped-def]
    project = make_project(
        "apptest", ["alpha"], groups={"docs": {"optional": True, "dependencies": {"docsdep": "*"}}}
    )
    tester = tester_for(project)

    assert tester.execute("snapshot --check") == 0
    assert "Environment matches poetry.lock: 2 locked packages checked." in tester.io.fetch_output()

    project.pip("uninstall", "-y", "beta")
    assert tester.execute("snapshot --check") == 1
    output = tester.io.fetch_output()
    assert "Missing packages (1)" in output
    assert "fix: poetry sync" in output

    assert tester.execute("snapshot --check --with docs --format json") == 1
    report = json.loads(tester.io.fetch_output())
    assert [(d["kind"], d["package"]) for d in report["drifts"]] == [
        ("missing", "beta"),
        ("missing", "docsdep"),
    ]
    assert report["drifts"][0]["fix"] == "poetry sync --with docs"

    assert tester.execute("snapshot --check --with nope") == 2
    assert tester.io.fetch_output() == ""
    error = tester.io.fetch_error()
    assert error.strip() == (
        "Group(s) not found: nope (via --with) Check the group names in pyproject.toml."
    )


def test_snapshot_is_listed_by_poetry(make_project: MakeProject) -> None:
    project = make_project("listed", lock=False, install=False)
    result = project.poetry("list")
    assert any(line.split()[:1] == ["snapshot"] for line in result.stdout.splitlines())
    help_text = project.poetry("snapshot", "--help").stdout
    for flag in ("--check", "--deep", "--allow-extra", "--with", "--all-groups", "--all-extras"):
        assert flag in help_text
