"""`poetry snapshot --check` as a real `poetry` subprocess against real, Poetry-installed envs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING
from typing import Any

import pytest

from tests.projects import Project
from tests.projects import isolated_environ
from tests.projects import lock_without_env
from tests.projects import project_with_own_index
from tests.projects import run
from tests.projects import write_path_dependency
from tests.schemas import validator

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import MakeProject

pytestmark = pytest.mark.e2e

validate_report = validator("drift-report")


def kinds(report: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(d["kind"], d["package"]) for d in report["drifts"]]


def assert_clean(project: Project, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    code, report = project.check_json(*args, env=env)
    validate_report(report)
    assert (code, report["drifts"]) == (0, []), report
    assert report["ok"] is True
    return report


def assert_drift(
    project: Project,
    expected: list[tuple[str, str | None]],
    *args: str,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    code, report = project.check_json(*args, env=env)
    validate_report(report)
    assert kinds(report) == expected, report
    assert code == 1
    return report


# --- clean environments of several shapes: exit 0 ------------------------------------------


def test_clean_environment_text_output(make_project: MakeProject) -> None:
    project = make_project("demo", ["alpha>=1.0"])
    result = project.check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Environment matches poetry.lock: 2 locked packages checked." in result.stdout
    assert result.stderr == ""
    report = assert_clean(project)
    assert report["packages_checked"] == 2
    assert report["environment"] == str(project.venv)
    assert report["interpreter"]["version"] == ".".join(map(str, sys.version_info[:3]))


def test_groups_follow_poetry_install_defaults(make_project: MakeProject) -> None:
    groups = {
        "dev": {"dependencies": {"devdep": "*"}},
        "docs": {"optional": True, "dependencies": {"docsdep": "*"}},
    }
    project = make_project("grouped", ["beta"], groups=groups, install=["--with", "docs"])
    assert_clean(project, "--with", "docs")
    assert_clean(project, "--all-groups")
    # Without --with docs, docsdep is not selected: poetry sync would remove it.
    assert_drift(project, [("extraneous", "docsdep")])
    assert_drift(project, [("extraneous", "devdep"), ("extraneous", "docsdep")], "--only", "main")
    assert_drift(project, [("extraneous", "devdep")], "--with", "docs", "--without", "dev")
    report = assert_drift(
        project, [("extraneous", "beta"), ("extraneous", "devdep")], "--only", "docs"
    )
    assert "poetry sync --only docs" in report["drifts"][0]["fix"]


def test_extras_follow_poetry_install(make_project: MakeProject) -> None:
    project = make_project("extras", ["beta"], extras={"fast": ["gamma"]}, install=["-E", "fast"])
    assert_clean(project, "-E", "fast")
    assert_clean(project, "--all-extras")
    report = assert_drift(project, [("extraneous", "gamma")])
    assert report["drifts"][0]["expected"].startswith("absent (locked only for other")


def test_dependency_for_another_platform_is_not_expected(make_project: MakeProject) -> None:
    project = make_project("markers", ["beta", "winonly; sys_platform == 'win32'"])
    report = assert_clean(project)
    assert report["packages_checked"] == 1
    assert not list(project.site_packages().glob("winonly*"))


def test_path_dependencies_develop_and_not(make_project: MakeProject) -> None:
    def libs(root: Path) -> None:
        write_path_dependency(root / "libs" / "editlib", "editlib")
        write_path_dependency(root / "libs" / "copylib", "copylib")

    project = make_project(
        "paths",
        poetry_dependencies={
            "editlib": {"path": "libs/editlib", "develop": True},
            "copylib": {"path": "libs/copylib", "develop": False},
        },
        before_lock=libs,
    )
    report = assert_clean(project)
    assert report["packages_checked"] == 2
    report = assert_clean(project, "--deep")
    # built from source: nothing in the lock to prove their builds against
    assert {b["package"]: b["reason"] for b in report["deep"]["builds_unverified"]} == {
        "copylib": "built from a directory: poetry.lock pins no file",
        "editlib": "built from a directory: poetry.lock pins no file",
    }


def test_package_mode_false_has_no_root_to_check(make_project: MakeProject) -> None:
    project = make_project("scripts-only", ["beta"], package_mode=False)
    assert_clean(project)
    assert_clean(project, "--deep")


def test_src_layout_root_package(make_project: MakeProject) -> None:
    project = make_project("srcpkg", ["beta"], src_layout=True)
    assert_clean(project)
    assert_clean(project, "--deep")  # the project's .pth is in its RECORD


def test_file_dependency(make_project: MakeProject, wheels: Path) -> None:
    def copy_wheel(root: Path) -> None:
        (root / "vendor").mkdir()
        shutil.copy(wheels / "gamma-1.0-py3-none-any.whl", root / "vendor")

    project = make_project(
        "files",
        poetry_dependencies={"gamma": {"path": "vendor/gamma-1.0-py3-none-any.whl"}},
        before_lock=copy_wheel,
    )
    assert_clean(project)
    report = assert_clean(project, "--deep")
    # the chain runs through the locked file itself
    assert report["deep"]["builds_verified"] == [
        {
            "package": "gamma",
            "version": "1.0",
            "artifact": "gamma-1.0-py3-none-any.whl",
            "built": None,
        }
    ]


# --- each drift kind: exit 1, named -------------------------------------------------------


def test_no_environment_is_drift_and_creates_nothing(make_project: MakeProject) -> None:
    project = make_project("bare", ["beta"], install=False)
    shutil.rmtree(project.venv, ignore_errors=True)  # `poetry lock` creates an empty env
    report = assert_drift(project, [("no-environment", None)])
    assert report["environment"] is None
    assert report["drifts"][0]["fix"] == "poetry sync"
    assert not project.venv.exists()


def test_stale_lock(make_project: MakeProject) -> None:
    project = make_project("stale", ["beta"])
    project.edit({"project": {"dependencies": ["beta", "gamma"]}})
    report = assert_drift(project, [("stale-lock", None)])
    assert report["drifts"][0]["fix"] == "poetry lock"


def test_interpreter_outside_requires_python(make_project: MakeProject) -> None:
    project = make_project("oldpy", ["beta"])
    major, minor = sys.version_info[:2]
    project.edit({"project": {"requires-python": f">={major}.{minor + 1}"}})
    # `poetry lock` refuses to run with this interpreter; the lock comes from elsewhere.
    lock_without_env(project)
    report = assert_drift(project, [("interpreter", "python")])
    assert report["drifts"][0]["found"] == ".".join(map(str, sys.version_info[:3]))


def test_missing_package(make_project: MakeProject) -> None:
    project = make_project("missing", ["alpha"])
    project.pip("uninstall", "-y", "beta")
    report = assert_drift(project, [("missing", "beta")])
    assert report["drifts"][0]["expected"] == "2.1 from index local"
    assert report["drifts"][0]["found"] == "not installed"


def test_wrong_version(make_project: MakeProject) -> None:
    project = make_project("version", ["alpha"])
    project.pip("install", "beta==2.0")
    report = assert_drift(project, [("wrong-version", "beta")])
    assert (report["drifts"][0]["expected"], report["drifts"][0]["found"]) == ("2.1", "2.0")


def test_extraneous_package_and_allow_extra(make_project: MakeProject) -> None:
    project = make_project("extra", ["beta"])
    project.pip("install", "stray")
    report = assert_drift(project, [("extraneous", "stray")])
    assert report["drifts"][0]["expected"] == "absent (not in poetry.lock)"
    code, report = project.check_json("--allow-extra")
    assert code == 0
    assert [d["package"] for d in report["tolerated"]] == ["stray"]


def test_wrong_source_index_package_replaced_by_a_file(
    make_project: MakeProject, wheels: Path
) -> None:
    project = make_project("source", ["beta"])
    project.pip(
        "install", "--force-reinstall", "--no-deps", str(wheels / "beta-2.1-py3-none-any.whl")
    )
    report = assert_drift(project, [("wrong-source", "beta")])
    assert report["drifts"][0]["expected"] == "index local"
    assert report["drifts"][0]["found"].startswith("file ")


def test_wrong_source_path_dependency_from_another_directory(make_project: MakeProject) -> None:
    def libs(root: Path) -> None:
        write_path_dependency(root / "libs" / "pathlib1", "pathlib1")
        write_path_dependency(root / "other" / "pathlib1", "pathlib1")

    project = make_project(
        "moved",
        poetry_dependencies={"pathlib1": {"path": "libs/pathlib1", "develop": True}},
        before_lock=libs,
    )
    project.edit(
        {
            "tool": {
                "poetry": {
                    "dependencies": {"pathlib1": {"path": "other/pathlib1", "develop": True}}
                }
            }
        }
    )
    project.poetry("lock")
    report = assert_drift(project, [("wrong-source", "pathlib1")])
    assert report["drifts"][0]["expected"].endswith("other/pathlib1 (editable)")


def test_wrong_source_git_commit(
    make_project: MakeProject, tmp_path: Path, environ: dict[str, str]
) -> None:
    repo = write_path_dependency(tmp_path / "gitlib-repo", "gitlib")
    git = ["git", "-C", str(repo)]
    run([*git, "init", "-q", "-b", "main"], environ)
    run([*git, "add", "-A"], environ)
    run([*git, "commit", "-q", "-m", "one"], environ)
    first = run([*git, "rev-parse", "HEAD"], environ).stdout.strip()
    (repo / "gitlib" / "extra.py").write_text("X = 2\n")
    run([*git, "add", "-A"], environ)
    run([*git, "commit", "-q", "-m", "two"], environ)
    second = run([*git, "rev-parse", "HEAD"], environ).stdout.strip()

    url = repo.as_uri()
    project = make_project("gitdep", poetry_dependencies={"gitlib": {"git": url, "rev": first}})
    assert_clean(project)
    report = assert_clean(project, "--deep")
    assert report["deep"]["builds_unverified"] == [
        {
            "package": "gitlib",
            "version": "1.0.0",
            "reason": f"built from git commit {first[:12]}: poetry.lock pins no file",
        }
    ]
    project.edit({"tool": {"poetry": {"dependencies": {"gitlib": {"git": url, "rev": second}}}}})
    project.poetry("lock")
    report = assert_drift(project, [("wrong-source", "gitlib")])
    assert report["drifts"][0]["expected"].endswith("@" + second[:12])
    assert report["drifts"][0]["found"].endswith("@" + first[:12])


def test_editable_mismatch_of_a_path_dependency(make_project: MakeProject) -> None:
    project = make_project(
        "editable",
        poetry_dependencies={"pathlib2": {"path": "libs/pathlib2", "develop": False}},
        before_lock=lambda root: write_path_dependency(root / "libs" / "pathlib2", "pathlib2"),
    )
    project.edit(
        {
            "tool": {
                "poetry": {"dependencies": {"pathlib2": {"path": "libs/pathlib2", "develop": True}}}
            }
        }
    )
    project.poetry("lock")
    report = assert_drift(project, [("editable-mismatch", "pathlib2")])
    assert (report["drifts"][0]["expected"], report["drifts"][0]["found"]) == (
        "editable",
        "not editable",
    )


def test_root_not_installed_and_no_root(make_project: MakeProject) -> None:
    project = make_project("noroot", ["beta"], install=["--no-root"])
    report = assert_drift(project, [("root-not-installed", "noroot")])
    assert report["drifts"][0]["fix"] == "poetry install --only-root"
    assert_clean(project, "--no-root")
    assert_clean(project, "--no-root", "--deep")


def test_root_installed_from_another_directory(make_project: MakeProject, tmp_path: Path) -> None:
    project = make_project("twin", ["beta"], install=["--no-root"])
    copy = tmp_path / "elsewhere" / "twin"
    shutil.copytree(project.path, copy, ignore=shutil.ignore_patterns(".venv"))
    # Install the copy's root into the original env, as `pip install -e ../other-checkout` would.
    project.poetry("install", "--only-root", cwd=copy, env={"VIRTUAL_ENV": str(project.venv)})
    report = assert_drift(project, [("root-elsewhere", "twin")])
    assert str(copy) in report["drifts"][0]["found"]


def test_deep_finds_modified_and_missing_files(make_project: MakeProject) -> None:
    project = make_project("deep", ["alpha", "clitool"])
    site = project.site_packages()
    (site / "beta" / "__init__.py").write_text("__version__ = 'patched'\n")
    (site / "alpha" / "__init__.py").unlink()
    # A plain --check does not read files; --deep does.
    assert_clean(project)
    report = assert_drift(project, [("modified-file", "beta"), ("missing-file", "alpha")], "--deep")
    modified = report["drifts"][0]
    assert modified["path"] == "beta/__init__.py"
    assert modified["expected"].startswith("sha256=")
    deep = report["deep"]
    assert deep["distributions"] == 3
    assert deep["unchecked_by_reason"]["no hash in RECORD"] >= 3  # each RECORD lists itself


def test_deep_judges_scripts_by_their_body_whatever_their_shebang(
    make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project("shebang", ["clitool"])
    bin_dir = project.venv / "bin"
    originals = {}
    # a launcher Poetry's installer wrote for an entry point, and a wheel's .data/scripts file
    for name in ("clitool", "clitool-sh"):
        script = bin_dir / name
        originals[name] = script.read_bytes()
        assert originals[name].startswith(b"#!" + bytes(project.venv))
        body = originals[name].split(b"\n", 1)[1]
        script.write_bytes(b"#!/relocated/env/bin/python\n" + body)  # a relocation tool's work
    report = assert_clean(project, "--deep")
    # judged against the locked wheel's script and entry point, not skipped
    assert "script shebang rewritten" not in report["deep"]["unchecked_by_reason"]
    assert [b["package"] for b in report["deep"]["builds_verified"]] == ["clitool"]

    # A changed body fails whatever the `#!` line says: it no longer hides behind a new one.
    launcher = bin_dir / "clitool"
    launcher.write_bytes(
        b"#!/usr/bin/python3\n" + originals["clitool"].split(b"\n", 1)[1] + b"print('more')\n"
    )
    copied = bin_dir / "clitool-sh"
    copied.write_bytes(copied.read_bytes().replace(b"hello", b"HELLO"))
    report = assert_drift(project, [("modified-file", "clitool")] * 2, "--deep")
    launcher_drift, copied_drift = sorted(report["drifts"], key=lambda d: d["path"])
    assert launcher_drift["path"] == "../../../bin/clitool"
    assert launcher_drift["expected"] == (
        "the launcher of entry point clitool = clitool.cli:main, below any #! line"
    )
    assert copied_drift["path"] == "../../../bin/clitool-sh"
    assert copied_drift["expected"].startswith("clitool-1.0.data/scripts/clitool-sh of")

    # Without the locked wheel (another Poetry cache): the launcher is still judged against the
    # installed entry point; the copied script's rewritten `#!` line hides its body from RECORD.
    empty_cache = tmp_path / "empty-cache"
    report = assert_drift(
        project,
        [("modified-file", "clitool")],
        "--deep",
        env={"POETRY_CACHE_DIR": str(empty_cache)},
    )
    assert report["drifts"][0]["path"] == "../../../bin/clitool"
    assert report["deep"]["unchecked_by_reason"]["script shebang rewritten"] == 1
    verbose = project.check("--deep", "-v", env={"POETRY_CACHE_DIR": str(empty_cache)})
    assert "unchecked, script shebang rewritten: 1" in verbose.stdout
    # While the `#!` line is still this env's own, RECORD checks the script like any file.
    copied.write_bytes(originals["clitool-sh"].replace(b"hello", b"HELLO"))
    launcher.write_bytes(originals["clitool"])
    report = assert_drift(
        project,
        [("modified-file", "clitool")],
        "--deep",
        env={"POETRY_CACHE_DIR": str(empty_cache)},
    )
    assert report["drifts"][0]["path"] == "../../../bin/clitool-sh"
    assert not empty_cache.exists() or not any(p.is_file() for p in empty_cache.rglob("*"))


def test_several_kinds_are_grouped_in_the_table(make_project: MakeProject) -> None:
    project = make_project("many", ["alpha", "clitool"])
    project.pip("uninstall", "-y", "clitool")
    project.pip("install", "beta==2.0", "stray")
    result = project.check()
    assert result.returncode == 1
    out = result.stdout
    assert (
        out.index("Missing packages (1)")
        < out.index("Wrong versions (1)")
        < out.index("Extraneous packages (1)")
    )
    assert (
        "Environment drifted from poetry.lock: 3 drifts (missing 1, wrong-version 1, extraneous 1)"
        in out
    )


def test_github_actions_annotations(make_project: MakeProject) -> None:
    project = make_project("gha", ["alpha"])
    project.pip("uninstall", "-y", "beta")
    result = project.check(env={"GITHUB_ACTIONS": "true"})
    assert result.returncode == 1
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    assert annotations == [
        "::error title=poetry-snapshot%3A Missing packages::beta: expected 2.1 from index local,"
        " found not installed. Fix: poetry sync"
    ]
    # With JSON on stdout, annotations go to stderr so the JSON stays parseable.
    result = project.check("--format", "json", env={"GITHUB_ACTIONS": "true"})
    assert result.returncode == 1
    assert json.loads(result.stdout)["drift_count"] == 1
    assert result.stderr.splitlines() == annotations
    # --deep's kinds are annotated too, one line per drift.
    site = project.site_packages()
    (site / "alpha" / "__init__.py").write_text("patched\n")
    (site / "added.pth").write_text("import os\n")
    result = project.check("--deep", "--format", "json", env={"GITHUB_ACTIONS": "true"})
    assert result.returncode == 1
    annotations = result.stderr.splitlines()
    assert [line.split("::")[1] for line in annotations] == [
        "error title=poetry-snapshot%3A Missing packages",
        "error title=poetry-snapshot%3A Modified files",
        "error title=poetry-snapshot%3A Unowned files",
    ], result.stderr
    rel = site.relative_to(project.venv)
    assert annotations[2] == (
        f"::error title=poetry-snapshot%3A Unowned files::environment {rel}/added.pth:"
        " expected absent (no installed distribution lists it), found a file of 10 bytes;"
        f" Python runs its import lines at every start. Fix: rm -- {site}/added.pth"
    )


# --- offline: no index, no cache, proxies that go nowhere ------------------------------------


def test_check_is_offline(
    tmp_path: Path, wheels: Path, session_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    environ = isolated_environ(session_home, tmp_path_factory.mktemp("offline-cache"))
    # Locked and installed while the index is up; it is gone before anything is checked.
    project = project_with_own_index(tmp_path / "offline", wheels, environ, ["alpha"], install=True)
    closed = "http://127.0.0.1:9"  # discard port: nothing listens
    empty_cache = tmp_path_factory.mktemp("empty-cache")
    offline = {
        "HTTP_PROXY": closed,
        "HTTPS_PROXY": closed,
        "ALL_PROXY": closed,
        "http_proxy": closed,
        "https_proxy": closed,
        "NO_PROXY": "",
        "POETRY_CACHE_DIR": str(empty_cache),
    }
    code, report = project.check_json("--deep", env=offline)
    assert (code, report["drifts"]) == (0, [])
    project.pip("uninstall", "-y", "beta")
    code, report = project.check_json(env=offline)
    assert code == 1 and kinds(report) == [("missing", "beta")]
    assert list(empty_cache.iterdir()) == [] or all(
        not any(p.is_file() for p in d.rglob("*")) for d in empty_cache.iterdir()
    )


# --- usage and configuration errors: exit 2, one line, nothing written -------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--with", "nope"], "Group(s) not found: nope (via --with)"),
        (["-E", "nope"], "Extra(s) not specified in pyproject.toml: nope."),
        (["-E", "x", "--all-extras"], "--extras and --all-extras cannot be used together."),
        (["--all-groups", "--only", "main"], "cannot be used with --all-groups"),
        (["--format", "xml"], "Unknown --format 'xml'."),
    ],
)
def test_usage_errors(make_project: MakeProject, args: list[str], message: str) -> None:
    project = make_project("usage", ["beta"], install=False)
    shutil.rmtree(project.venv, ignore_errors=True)
    result = project.check(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not project.venv.exists()


def test_configuration_errors(
    make_project: MakeProject, tmp_path: Path, environ: dict[str, str]
) -> None:
    outside = tmp_path / "not-a-project"
    outside.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "poetry", "snapshot", "--check"],
        cwd=outside,
        env=environ,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "could not find a pyproject.toml" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    project = make_project("nolock", ["beta"], lock=False, install=False)
    result = project.check()
    assert result.returncode == 2
    assert "No lock file at" in result.stderr and "poetry lock" in result.stderr

    (project.path / "poetry.lock").write_text("this is [not toml")
    result = project.check()
    assert result.returncode == 2
    assert "Cannot read" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
