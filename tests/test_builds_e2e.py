"""`--deep` proves lock -> wheel -> installed bytes on real envs that `poetry sync` builds, with
no false positive on the shapes real environments take (namespace packages two wheels share,
relocated envs, packages Poetry builds from their sdist, dynamic project versions), and fails
on the tampering that RECORD alone cannot see (a rebuilt wheel of the same version, a
compiled package reinstalled as its pure-Python fallback)."""

from __future__ import annotations

import base64
import hashlib
import shutil
from typing import TYPE_CHECKING
from typing import Any

import pytest

from tests.distributions import WheelSpec
from tests.distributions import build_extension_sdist
from tests.distributions import build_extension_wheel
from tests.distributions import build_wheel
from tests.projects import project_with_own_index
from tests.projects import run
from tests.test_check_e2e import assert_clean
from tests.test_deep_e2e import apply_fixes
from tests.test_deep_e2e import deep
from tests.test_deep_e2e import drifts

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import MakeProject
    from tests.projects import Project

pytestmark = pytest.mark.e2e


def proven(report: dict[str, Any]) -> dict[str, str]:
    return {b["package"]: b["artifact"] for b in report["deep"]["builds_verified"]}


def unproven(report: dict[str, Any]) -> dict[str, str]:
    return {b["package"]: b["reason"] for b in report["deep"]["builds_unverified"]}


def empty_cache(tmp_path: Path) -> dict[str, str]:
    """A Poetry cache that holds no artifact (another machine's), for the tests' environ."""
    return {"POETRY_CACHE_DIR": str(tmp_path / "other-cache")}


def cached_files(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "artifacts").rglob("*") if p.is_file())


# --- clean envs: every build proven ---------------------------------------------------------


def test_clean_env_proves_every_build(make_project: MakeProject) -> None:
    project = make_project("proof", ["alpha", "clitool"])
    report = assert_clean(project, "--deep")
    assert proven(report) == {
        "alpha": "alpha-1.1-py3-none-any.whl",
        "beta": "beta-2.1-py3-none-any.whl",
        "clitool": "clitool-1.0-py3-none-any.whl",
    }
    assert unproven(report) == {}
    wheels = sum((project.wheels / name).stat().st_size for name in proven(report).values())
    assert report["deep"]["artifact_bytes_hashed"] == wheels
    text = project.check("--deep")
    assert "Builds: 3 of 3 locked distributions proven to be the files of a locked artifact" in (
        text.stdout
    )


def test_rebuilt_wheel_of_the_same_version_is_a_wrong_build(
    make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project("rebuilt", ["alpha"])
    # beta 2.1 rebuilt with one line added, from another index, reinstalled without deps:
    # version and source are the lock's, and pip writes a RECORD that matches its files.
    elsewhere = tmp_path / "elsewhere"
    body = b'__version__ = "2.1"\nimport os  # one line added\n'
    build_wheel(WheelSpec("beta", "2.1", files={"beta/__init__.py": body}), elsewhere)
    run(
        [
            str(project.python),
            "-m",
            "pip",
            "install",
            "--force-reinstall",
            "--no-deps",
            "--no-index",
            "--find-links",
            str(elsewhere),
            "beta==2.1",
        ],
        env=project.environ,
    )
    assert_clean(project)  # the plain check cannot see it
    code, report, _ = deep(project)
    assert (code, drifts(report)) == (1, [("wrong-build", "beta", "beta/__init__.py")]), report
    wrong = report["drifts"][0]
    assert wrong["expected"].endswith(" bytes in beta-2.1-py3-none-any.whl")
    assert wrong["found"].endswith(" bytes in the installed RECORD")
    assert wrong["fix"] == "poetry run python -m pip uninstall -y beta && poetry sync"
    assert proven(report) == {"alpha": "alpha-1.1-py3-none-any.whl"}
    text = project.check("--deep")
    assert "Wrong builds (1)" in text.stdout
    apply_fixes(project, report)
    assert proven(assert_clean(project, "--deep"))["beta"] == "beta-2.1-py3-none-any.whl"


def test_record_rewritten_with_the_file_is_a_wrong_build(make_project: MakeProject) -> None:
    project = make_project("rewritten", ["beta"])
    site = project.site_packages()
    patched = b"patched = True\n"
    (site / "beta" / "__init__.py").write_bytes(patched)
    record = next(site.glob("beta-*.dist-info")) / "RECORD"
    # RECORD made to agree with the edit: the file itself now matches its RECORD
    digest = base64.urlsafe_b64encode(hashlib.sha256(patched).digest()).rstrip(b"=").decode()
    lines = [
        f"beta/__init__.py,sha256={digest},{len(patched)}"
        if line.startswith("beta/__init__.py,")
        else line
        for line in record.read_text().splitlines()
    ]
    record.write_text("\n".join(lines) + "\n")
    code, report, _ = deep(project)
    assert (code, drifts(report)) == (1, [("wrong-build", "beta", "beta/__init__.py")]), report
    apply_fixes(project, report)
    assert_clean(project, "--deep")


# --- files several wheels ship ------------------------------------------------------------------


def test_namespace_file_two_wheels_ship_is_shared_not_drift(
    make_project: MakeProject, wheels: Path, environ: dict[str, str]
) -> None:
    # Poetry installs wheels in parallel threads that each open("wb") the shared file: their
    # writes can interleave into bytes neither wheel holds (the longer file's tail after the
    # shorter one; seen once in CI), which --deep rightly reports. One worker keeps the
    # install, and so this test, deterministic.
    environ["POETRY_INSTALLER_MAX_WORKERS"] = "1"
    extend = b"__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"
    for name in ("nsfirst", "nssecond"):
        # pkgutil-style: each wheel's ns/__init__.py differs (here, by a comment)
        files = {"ns/__init__.py": f"# {name}\n".encode() + extend, f"ns/{name}.py": b"X = 1\n"}
        build_wheel(WheelSpec(name, "1.0", files=files), wheels)
    project = make_project("overlap", ["nsfirst", "nssecond"])
    site = project.site_packages()
    # Both RECORDs list the file, with their own bytes' hash (Poetry 2.5 also warns "Installing
    # .../ns/__init__.py over existing file")
    listed = {
        line.split(",")[1]
        for record in site.glob("ns*-1.0.dist-info/RECORD")
        for line in record.read_text().splitlines()
        if line.startswith("ns/__init__.py,")
    }
    assert len(listed) == 2
    probe = "import ns.nsfirst, ns.nssecond"
    run([str(project.python), "-c", probe], env=project.environ)
    holds = (site / "ns" / "__init__.py").read_bytes().split(b"\n", 1)[0].decode()[2:]

    report = assert_clean(project, "--deep")
    shared = report["deep"]["shared_files"]
    rel = str(site.relative_to(project.venv))
    assert shared == [
        {"path": f"{rel}/ns/__init__.py", "packages": ["nsfirst", "nssecond"], "matches": holds}
    ]
    assert set(proven(report)) == {"nsfirst", "nssecond"}  # each RECORD is its wheel's
    verbose = project.check("--deep", "-v").stdout
    assert f"shared, {rel}/ns/__init__.py: nsfirst, nssecond (holds {holds}'s)" in verbose

    # Holding what neither wrote: one drift naming both; reinstalling both is the fix.
    (site / "ns" / "__init__.py").write_bytes(b"import os\n" + extend)
    code, report, _ = deep(project)
    assert (code, drifts(report)) == (1, [("modified-file", "nsfirst", "ns/__init__.py")])
    drift = report["drifts"][0]
    assert " (nsfirst) or sha256=" in drift["expected"]
    assert drift["expected"].endswith(" (nssecond)")
    assert drift["fix"] == "poetry run python -m pip uninstall -y nsfirst nssecond && poetry sync"
    apply_fixes(project, report)
    assert_clean(project, "--deep")


def test_console_script_two_wheels_define_is_shared_not_drift(
    make_project: MakeProject, wheels: Path, environ: dict[str, str]
) -> None:
    environ["POETRY_INSTALLER_MAX_WORKERS"] = "1"  # as above: no interleaved writes
    for name in ("toolone", "tooltwo"):
        # both define a `sametool` console script: the last one installed writes it
        build_wheel(
            WheelSpec(name, "1.0", console_scripts={"sametool": f"{name}.cli:main"}), wheels
        )
    project = make_project("samescript", ["toolone", "tooltwo"])
    report = assert_clean(project, "--deep")
    (shared,) = report["deep"]["shared_files"]
    assert (shared["path"], shared["packages"]) == ("bin/sametool", ["toolone", "tooltwo"])
    writer = shared["matches"]
    assert f"from {writer}.cli import main" in (project.venv / "bin" / "sametool").read_text()

    launcher = project.venv / "bin" / "sametool"
    launcher.write_text(launcher.read_text() + "import os\n")
    code, report, _ = deep(project)
    assert (code, drifts(report)) == (1, [("modified-file", "toolone", "../../../bin/sametool")])
    fix = "poetry run python -m pip uninstall -y toolone tooltwo && poetry sync"
    assert report["drifts"][0]["fix"] == fix
    apply_fixes(project, report)
    assert_clean(project, "--deep")


# --- relocated envs -----------------------------------------------------------------------------


def relocate(project: Project, destination: Path) -> Project:
    """Move the project with its in-project env, then rewrite what points at the old place as
    relocation tools do (virtualenv-clone): `#!` lines and the activation scripts."""
    old = bytes(project.venv)
    shutil.move(project.path, destination)
    moved = type(project)(destination, project.environ, project.index_url, project.wheels)
    moved.data = project.data
    new = bytes(moved.venv)
    for script in (moved.venv / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if old in data:
            script.write_bytes(data.replace(old, new))
    # The project's own editable install points at the old directory: Poetry puts it back.
    moved.poetry("install", "--only-root")
    return moved


def test_relocated_env_passes_and_a_changed_body_fails(
    make_project: MakeProject, tmp_path: Path
) -> None:
    project = relocate(make_project("relocating", ["clitool"]), tmp_path / "moved")
    launcher = project.venv / "bin" / "clitool"
    assert launcher.read_bytes().startswith(b"#!" + bytes(project.venv))
    run([str(launcher)], env=project.environ)  # the relocated env works
    report = assert_clean(project, "--deep")
    assert set(proven(report)) == {"clitool"}
    assert "script shebang rewritten" not in report["deep"]["unchecked_by_reason"]

    copied = project.venv / "bin" / "clitool-sh"
    copied.write_bytes(copied.read_bytes() + b"import os\n")
    code, report, _ = deep(project)
    assert (code, drifts(report)) == (1, [("modified-file", "clitool", "../../../bin/clitool-sh")])
    apply_fixes(project, report)
    assert_clean(project, "--deep")


# --- compiled packages and their sdists ------------------------------------------------------


def _needs_gcc() -> None:
    if shutil.which("gcc") is None:
        pytest.skip("no gcc here to build the compiled extension")


def test_compiled_package_reinstalled_as_its_pure_fallback_is_a_wrong_build(
    make_project: MakeProject, wheels: Path
) -> None:
    _needs_gcc()
    sdist = build_extension_sdist("speedy", "1.0", wheels)
    compiled = build_extension_wheel(sdist, wheels)  # the index's wheel for this platform
    assert "-none-any" not in compiled.name
    project = make_project("compiled", ["speedy"])
    probe = [str(project.python), "-c", "import speedy; print(speedy.COMPILED)"]
    assert run(probe, env=project.environ).stdout == "True\n"
    assert proven(assert_clean(project, "--deep")) == {"speedy": compiled.name}

    # The same version, rebuilt from the locked sdist without its extension.
    run(
        [
            str(project.python),
            "-m",
            "pip",
            "install",
            "--force-reinstall",
            "--no-deps",
            "--no-binary",
            "speedy",
            "--no-index",
            "--find-links",
            str(wheels),
            "speedy==1.0",
        ],
        env={**project.environ, "EXTENSION_PURE": "1"},
    )
    assert run(probe, env=project.environ).stdout == "False\n"
    assert_clean(project)  # same version, same source, RECORD intact: the plain check passes
    code, report, _ = deep(project)
    assert code == 1
    wrong = {
        path: d for d in report["drifts"] for path in [d["path"]] if d["kind"] == "wrong-build"
    }
    extension = next(p for p in wrong if p.startswith("speedy/_speedups."))
    assert wrong[extension]["found"] == "not in the installed RECORD"
    assert "speedy-1.0.dist-info/WHEEL" in wrong  # Root-Is-Purelib and the tag differ
    apply_fixes(project, report)
    assert run(probe, env=project.environ).stdout == "True\n"
    assert_clean(project, "--deep")


def test_package_poetry_builds_from_its_locked_sdist_is_proven(
    make_project: MakeProject, wheels: Path
) -> None:
    # Only another platform's wheel, and the sdist: Poetry builds the sdist here.
    build_extension_sdist("fallback", "1.0", wheels)
    windows = {"fallback/_speedups.pyd": b"MZ not this platform"}
    build_wheel(WheelSpec("fallback", "1.0", tag="cp311-cp311-win_amd64", files=windows), wheels)
    project = make_project("fromsdist", ["fallback"])
    report = assert_clean(project, "--deep")
    (build,) = report["deep"]["builds_verified"]
    assert build["artifact"] == "fallback-1.0.tar.gz"
    assert build["built"].startswith("fallback-1.0-") and build["built"].endswith(".whl")
    assert "1 built by Poetry from a locked sdist" in project.check("--deep").stdout


# --- offline by default, --fetch to complete the proof --------------------------------------


def test_builds_without_their_locked_file_here_are_unverified_and_fetch_completes_them(
    make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project("fetching", ["alpha"])
    other = empty_cache(tmp_path)
    report = assert_clean(project, "--deep", env=other)
    assert proven(report) == {}
    assert unproven(report) == {
        name: f"{name}-{version}-py3-none-any.whl is not in Poetry's artifact cache"
        " (--fetch downloads it)"
        for name, version in (("alpha", "1.1"), ("beta", "2.1"))
    }
    text = project.check("--deep", env=other).stdout
    assert "Builds: 0 of 2 locked distributions proven" in text
    assert "2 builds unverified (-v lists them)" in text
    assert not (tmp_path / "other-cache" / "artifacts").exists()  # offline: nothing written

    report = assert_clean(project, "--deep", "--fetch", env=other)
    assert set(proven(report)) == {"alpha", "beta"}
    fetched = cached_files(tmp_path / "other-cache")
    assert sorted(p.name for p in fetched) == [
        "alpha-1.1-py3-none-any.whl",
        "beta-2.1-py3-none-any.whl",
    ]
    # where Poetry's installer looks for them: the directory ArtifactCache names for the link
    assert all(
        len(p.relative_to(tmp_path / "other-cache" / "artifacts").parts) == 5 for p in fetched
    )
    report = assert_clean(project, "--deep", env=other)  # offline again: now proven
    assert set(proven(report)) == {"alpha", "beta"}


def test_fetch_keeps_only_files_with_the_locked_hash(
    make_project: MakeProject, wheels: Path, tmp_path: Path
) -> None:
    build_wheel(WheelSpec("swapped", "1.0"), wheels)
    project = make_project("swapping", ["swapped"])
    # The index now serves another file under the locked name.
    build_wheel(WheelSpec("swapped", "1.0", files={"swapped/x.py": b"X = 1\n"}), wheels)
    other = empty_cache(tmp_path)
    report = assert_clean(project, "--deep", "--fetch", env=other)
    assert unproven(report) == {
        "swapped": "--fetch: the downloaded swapped-1.0-py3-none-any.whl does not have"
        " poetry.lock's sha256; not kept"
    }
    assert cached_files(tmp_path / "other-cache") == []  # nothing kept, no partial file


def test_fetch_without_its_index_says_why(
    tmp_path: Path, wheels: Path, session_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.projects import isolated_environ

    environ = isolated_environ(session_home, tmp_path_factory.mktemp("fetch-cache"))
    project = project_with_own_index(tmp_path / "gone", wheels, environ, ["beta"], install=True)
    other = empty_cache(tmp_path)  # the index is closed now
    code, report = project.check_json("--deep", "--fetch", env=other)
    assert (code, report["drifts"]) == (0, [])
    assert unproven(report)["beta"].startswith("--fetch cannot list its files: ")


def test_fetch_needs_deep(make_project: MakeProject) -> None:
    project = make_project("fetchusage", ["beta"])
    result = project.check("--fetch")
    assert result.returncode == 2
    assert result.stderr.strip() == "--fetch needs --deep. Add --deep, or drop --fetch."


# --- the project's own version -------------------------------------------------------------


def test_dynamic_project_version_follows_poetry(make_project: MakeProject) -> None:
    def dynamic(root: Path) -> None:
        pyproject = root / "pyproject.toml"
        text = pyproject.read_text().replace('version = "0.1.0"\n', 'dynamic = ["version"]\n')
        pyproject.write_text(text + '\n[tool.poetry]\nversion = "0.1.0"\n')

    project = make_project("dynver", ["beta"], before_lock=dynamic)
    pyproject = project.path / "pyproject.toml"
    # The version moves on (a new commit, for a versioning plugin); nothing is reinstalled.
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.2.0"'))
    plan = project.poetry("sync", "--dry-run").stdout
    assert "0 installs, 0 updates, 0 removals" in plan  # Poetry plans nothing for packages
    assert "Installing the current project: dynver (0.2.0)" in plan  # and always the project
    code, report = project.check_json()
    assert (code, report["drifts"]) == (0, [])
    (tolerated,) = report["tolerated"]
    assert (tolerated["kind"], tolerated["package"], tolerated["found"]) == (
        "wrong-version",
        "dynver",
        "0.1.0",
    )
    assert 'dynamic: pyproject.toml lists "version" in [project] dynamic' in tolerated["expected"]
    assert "Tolerated: dynver expected 0.2.0 (dynamic:" in project.check().stdout


# A Poetry plugin that sets the project's version at every command, as poetry-dynamic-versioning
# does from git (`poetry._package._version`, on cleo's COMMAND event), here from a VERSION file.
_VERSION_PLUGIN = b"""
from cleo.events.console_events import COMMAND
from poetry.plugins.application_plugin import ApplicationPlugin


class VersionFromFile(ApplicationPlugin):
    def activate(self, application):
        application.event_dispatcher.add_listener(COMMAND, self.apply)

    def apply(self, event, kind, dispatcher):
        from poetry.core.constraints.version import Version

        try:
            poetry = event.command.poetry
        except Exception:  # a command outside a project
            return
        version_file = poetry.pyproject_path.parent / "VERSION"
        if version_file.exists():
            text = version_file.read_text().strip()
            poetry._package._version = Version.parse(text)
            poetry._package._pretty_version = text
"""


def test_version_a_plugin_sets_follows_poetry(make_project: MakeProject, tmp_path: Path) -> None:
    import zipfile

    entry_point = (
        b"[poetry.application.plugin]\nversion-from-file = version_from_file:VersionFromFile\n"
    )
    files = {
        "version_from_file/__init__.py": _VERSION_PLUGIN,
        "version_from_file-1.0.dist-info/entry_points.txt": entry_point,
    }
    plugin = build_wheel(WheelSpec("version-from-file", "1.0", files=files), tmp_path / "plugin")
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(plugin) as archive:
        archive.extractall(plugins)  # on Poetry's sys.path: loaded like a `poetry self add`ed one

    def placeholder(root: Path) -> None:
        pyproject = root / "pyproject.toml"
        pyproject.write_text(
            pyproject.read_text().replace('version = "0.1.0"', 'version = "0.0.0"')
        )
        (root / "VERSION").write_text("0.5.0\n")

    project = make_project("plugver", ["beta"], before_lock=placeholder, install=False)
    project.environ = {**project.environ, "PYTHONPATH": str(plugins)}
    installed = project.poetry("install").stdout
    assert "Installing the current project: plugver (0.5.0)" in installed  # the plugin's
    (project.path / "VERSION").write_text("0.6.0\n")  # a new commit, for the real plugin
    plan = project.poetry("sync", "--dry-run").stdout
    assert "0 installs, 0 updates, 0 removals" in plan
    assert "Installing the current project: plugver (0.6.0)" in plan
    code, report = project.check_json()
    assert (code, report["drifts"]) == (0, [])
    assert [(d["package"], d["found"]) for d in report["tolerated"]] == [("plugver", "0.5.0")]
    assert "a plugin set it (pyproject.toml says 0.0.0)" in report["tolerated"][0]["expected"]


def test_literal_project_version_bump_is_still_drift(make_project: MakeProject) -> None:
    project = make_project("statver", ["beta"])
    project.edit({"project": {"version": "0.2.0"}})
    code, report = project.check_json()
    assert code == 1
    assert [(d["kind"], d["package"]) for d in report["drifts"]] == [("wrong-version", "statver")]


# --- fix lines keep the user's options --------------------------------------------------------


def test_fixes_repeat_group_and_extras_options(make_project: MakeProject) -> None:
    project = make_project(
        "options",
        ["alpha"],
        groups={"docs": {"optional": True, "dependencies": {"docsdep": "*"}}},
        extras={"cli": ["clitool"], "other": ["gamma"]},
        install=["--with", "docs", "-E", "cli"],
    )
    site = project.site_packages()
    (site / "docsdep" / "__init__.py").write_text("patched = 1\n")
    code, report, _ = deep(project, "--with", "docs", "-E", "cli")
    assert code == 1
    sync = "poetry sync --with docs -E cli"
    assert {d["fix"] for d in report["drifts"]} == {
        f"poetry run python -m pip uninstall -y docsdep && {sync}"
    }
    apply_fixes(project, report)  # following it keeps the docs group and the extra
    assert_clean(project, "--deep", "--with", "docs", "-E", "cli")
