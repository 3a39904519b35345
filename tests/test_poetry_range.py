"""The plugin in a Poetry outside its range: one line on stderr, no commands, nothing else broken."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit
from cleo.io.inputs.argv_input import ArgvInput
from cleo.io.outputs.buffered_output import BufferedOutput
from packaging.requirements import Requirement
from poetry.console.application import Application

from poetry_snapshot.plugin import SnapshotPlugin
from poetry_snapshot.poetry_range import declared_range
from poetry_snapshot.poetry_range import incompatibility
from tests.projects import isolated_environ

ROOT = Path(__file__).resolve().parents[1]


def test_the_range_is_the_installed_metadata_of_pyproject() -> None:
    project = tomlkit.parse((ROOT / "pyproject.toml").read_text())["project"]
    (poetry,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "poetry"]
    assert declared_range() == poetry.specifier


@pytest.mark.parametrize(
    "version", ["2.0.0", "2.5.1", "2.99", "2.6.0b1", "2.1.0.dev0", "2.0.0+ours"]
)
def test_inside_the_range_nothing_is_said(version: str) -> None:
    assert incompatibility(version, declared_range()) is None


def test_outside_the_range_one_line_with_the_fix() -> None:
    supported = declared_range()
    old = incompatibility("1.8.3", supported)
    assert old == (
        "poetry-snapshot 0.1.0 needs Poetry >=2.0,<3, not 1.8.3: its commands (snapshot,"
        " env-export) are not loaded. Upgrade Poetry (`poetry self update`)."
    )
    new = incompatibility("3.0.0", supported)
    assert new == (
        "poetry-snapshot 0.1.0 needs Poetry >=2.0,<3, not 3.0.0: its commands (snapshot,"
        " env-export) are not loaded. Install a poetry-snapshot release made for it"
        " (`poetry self add poetry-snapshot@latest`) or a Poetry >=2.0,<3."
    )
    assert incompatibility("3.0.0a1", supported) == new.replace("3.0.0:", "3.0.0a1:")
    # What it cannot judge, it does not block.
    assert incompatibility("not-a-version", supported) is None
    assert incompatibility("3.0.0", None) is None


def application_io(app: Application) -> tuple[BufferedOutput, BufferedOutput]:
    """A run's IO, made the way Poetry makes it before it loads plugins."""
    output, errors = BufferedOutput(), BufferedOutput()
    app.create_io(ArgvInput(["poetry", "list"]), output, errors)
    return output, errors


def test_activate_outside_the_range_registers_nothing_and_says_so() -> None:
    app = Application()
    app.auto_exits(False)
    _, errors = application_io(app)
    SnapshotPlugin().activate_in(app, "3.0.0")
    assert errors.fetch() == incompatibility("3.0.0", declared_range()) + "\n"
    assert not app.command_loader.has("snapshot") and not app.command_loader.has("env-export")

    # --no-plugins: only what activate_in registered (the installed plugin, which sees the real
    # Poetry, is not loaded on top of it).
    out, err = BufferedOutput(), BufferedOutput()
    code = app.run(ArgvInput(["poetry", "--no-plugins", "snapshot", "--check"]), out, err)
    # cleo's message in Poetry 2.0 ('The command "snapshot" does not exist.'), Poetry's later.
    assert code != 0 and re.search(r'command "?snapshot"? does not exist', err.fetch())
    out, err = BufferedOutput(), BufferedOutput()
    assert app.run(ArgvInput(["poetry", "--no-plugins", "--version"]), out, err) == 0
    assert out.fetch().startswith("Poetry (version ")


def test_activate_inside_the_range_registers_the_commands() -> None:
    app = Application()
    _, errors = application_io(app)
    SnapshotPlugin().activate_in(app, "2.5.1")
    assert errors.fetch() == ""
    assert app.command_loader.has("snapshot") and app.command_loader.has("env-export")


def test_without_an_application_io_the_line_goes_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    SnapshotPlugin().activate_in(Application(), "1.8.3")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == incompatibility("1.8.3", declared_range()) + "\n"


@pytest.mark.e2e
def test_a_normal_poetry_run_prints_no_such_line(tmp_path: Path) -> None:
    environ = isolated_environ(tmp_path / "home", tmp_path / "cache")
    for args in (["--version"], ["list"], ["snapshot", "--help"]):
        result = subprocess.run(
            [sys.executable, "-m", "poetry", *args],
            env=environ,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "poetry-snapshot" not in result.stderr and "needs Poetry" not in result.stderr
    assert (
        "snapshot"
        in subprocess.run(
            [sys.executable, "-m", "poetry", "list"], env=environ, capture_output=True, text=True
        ).stdout
    )
