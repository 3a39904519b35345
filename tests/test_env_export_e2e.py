"""`poetry env-export` as a real `poetry` subprocess; every format checked by a real consumer.

environment.yml: PyYAML loads it, pip installs its `pip:` section the way `conda env create` runs
it (the items joined into a requirements file in environment.yml's directory, `pip install -r`
there) with `--require-hashes`, and conda-lock's environment.yml parser reads it.
requirements.txt and pylock.toml: identical to `poetry export` (poetry-plugin-export), pip
resolves the one and `packaging.pylock` loads the other. JSON: the schema, and `pip inspect`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import venv
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest
import tomlkit
import yaml
from packaging.utils import canonicalize_name

from tests.condakit import parse_with_conda_lock
from tests.condakit import write_conda_prefix
from tests.distributions import WheelSpec
from tests.distributions import build_wheel
from tests.index import LocalIndex
from tests.projects import Project
from tests.projects import isolated_environ
from tests.projects import project_with_own_index
from tests.projects import pyproject
from tests.projects import run
from tests.projects import write_package
from tests.projects import write_path_dependency
from tests.schemas import validator

if TYPE_CHECKING:
    from tests.conftest import MakeProject


pytestmark = pytest.mark.e2e

PYTHON = ".".join(map(str, sys.version_info[:3]))
SCHEMAS = Path(__file__).parents[1] / "src/poetry_snapshot/schemas"
CONDA = {
    "channels": ["conda-forge", "nodefaults"],
    "dependencies": ["nodejs>=18", "cuda-toolkit=12.4"],
}


def export(project: Project, *args: str, check: bool = True) -> Any:
    return project.poetry("env-export", *args, check=check)


def pip_section(env_file: Path) -> list[str]:
    data = yaml.safe_load(env_file.read_text(encoding="utf-8"))
    return next(d["pip"] for d in data["dependencies"] if isinstance(d, dict))


def pip_resolves(project: Project, requirements: Path, *, hashes: bool = True) -> dict[str, str]:
    """What `pip install -r` would install into a fresh env (dry run, local wheels only)."""
    args = [
        str(project.python),
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--no-index",
        "--find-links",
        str(project.wheels),
        "--quiet",
        "--report",
        "-",
        "-r",
        str(requirements),
    ]
    if hashes:
        args.append("--require-hashes")
    report = json.loads(run(args, env=project.environ, cwd=requirements.parent).stdout)
    return {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in report["install"]
    }


def as_conda_runs_pip(env_file: Path) -> Path:
    """The requirements file `conda env create` writes from the `pip:` items, where it does."""
    requirements = env_file.parent / "condaenv.test.requirements.txt"
    requirements.write_text("\n".join(pip_section(env_file)), encoding="utf-8")
    return requirements


def installed_pip_version(project: Project) -> str:
    out = run([str(project.python), "-m", "pip", "--version"], env=project.environ).stdout
    return out.split()[1]


def pylock_supported() -> bool:
    """pylock.toml export needs poetry-plugin-export 1.10 and Poetry 2.3 (the range's low end lacks both)."""
    from importlib.metadata import version

    from packaging.version import Version

    return Version(version("poetry-plugin-export")) >= Version("1.10") and Version(
        version("poetry")
    ) >= Version("2.3")


def one_line_error(result: Any, code: int = 2) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return str(result.stderr)


# --- environment.yml --------------------------------------------------------------------------


def test_conda_export_is_what_pip_and_conda_lock_accept(make_project: MakeProject) -> None:
    project = make_project(
        "condaenv",
        ["alpha>=1.0", "winonly; sys_platform == 'win32'"],
        groups={
            "dev": {"dependencies": {"devdep": "*"}},
            "docs": {"optional": True, "dependencies": {"docsdep": "*"}},
        },
        extras={"fast": ["gamma"]},
    )
    project.edit({"tool": {"poetry-snapshot": {"conda": CONDA}}})
    result = export(project, "-o", "environment.yml", "--with", "docs", "-E", "fast")
    assert result.stdout == "" and result.stderr == ""
    env_file = project.path / "environment.yml"
    data = yaml.safe_load(env_file.read_text())
    assert data["name"] == "condaenv"
    assert data["channels"] == ["conda-forge", "nodefaults"]
    assert data["dependencies"][:4] == [
        f"python={PYTHON}",
        "cuda-toolkit=12.4",
        "nodejs>=18",
        f"pip={installed_pip_version(project)}",
    ]
    pins = pip_section(env_file)
    assert all("--hash=sha256:" in line for line in pins if not line.startswith("--"))
    assert any(line.startswith("winonly==1.0 ; ") and "win32" in line for line in pins)

    # conda env create: pip, in hash-checking mode, installs exactly the locked closure
    # (winonly's marker is false here).
    assert pip_resolves(project, as_conda_runs_pip(env_file)) == {
        "alpha": "1.1",
        "beta": "2.1",
        "devdep": "1.0",
        "docsdep": "1.0",
        "gamma": "1.0",
    }

    # Deterministic: stdout and the file are the same bytes, every time.
    again = export(project, "--with", "docs", "-E", "fast")
    assert again.stdout == env_file.read_text()

    # conda-lock reads the hash-free, index-free variant (it re-locks and hashes pip packages
    # itself, and its parser takes neither a marker followed by --hash nor index options).
    export(
        project,
        "-o",
        "conda-lock.yml",
        "--with",
        "docs",
        "-E",
        "fast",
        "--without-hashes",
        "--without-urls",
    )
    for platform, expected in (("linux-64", set()), ("win-64", {"winonly"})):
        parsed = parse_with_conda_lock(project.path / "conda-lock.yml", platform)
        pip = {d["name"]: d["version"] for d in parsed["dependencies"] if d["manager"] == "pip"}
        assert pip == {
            "alpha": "==1.1",
            "beta": "==2.1",
            "devdep": "==1.0",
            "docsdep": "==1.0",
            "gamma": "==1.0",
            **{name: "==1.0" for name in expected},
        }
        conda = {d["name"]: d["version"] for d in parsed["dependencies"] if d["manager"] == "conda"}
        # conda reads `python=3.11.7` as 3.11.7.*: the same release, as conda users write it.
        assert conda["python"] == f"{PYTHON}.*" and conda["nodejs"] == ">=18"
        assert "cuda-toolkit" in conda
    assert [c.rstrip("/").rsplit("/", 1)[-1] for c in parsed["channels"]] == ["conda-forge"]


def test_conda_prefix_pins_python_pip_and_requested_packages(make_project: MakeProject) -> None:
    project = make_project("inconda", ["alpha"])
    project.edit({"tool": {"poetry-snapshot": {"conda": CONDA}}})
    packages = {
        "python": (PYTHON, "hab00c5b_0_cpython"),
        "pip": ("24.0", "pyhd8ed1ab_0"),
        "nodejs": ("20.12.2", "hb753e55_0"),
        "vega-cli": ("5.28.0", "h8bc1fc1_0"),
        "beta": ("2.1", "pyh1_0"),
        "openssl": ("3.2.1", "hd590300_1"),
    }
    # The interpreter's own prefix gets conda's records: as if the env were a conda env.
    write_conda_prefix(
        project.venv,
        packages,
        [
            (
                "create -n inconda python=3.11 nodejs",
                ["python", "pip", "nodejs", "openssl"],
                {"update": ["python=3.11", "nodejs"]},
            ),
            (
                "install -c conda-forge vega-cli beta",
                ["vega-cli", "beta"],
                {"update": ["conda-forge::vega-cli", "beta"]},
            ),
        ],
    )
    result = export(project, "-o", "environment.yml")
    data = yaml.safe_load((project.path / "environment.yml").read_text())
    assert data["dependencies"][:-1] == [
        f"python={PYTHON}=hab00c5b_0_cpython",
        "beta=2.1=pyh1_0",
        "cuda-toolkit=12.4",
        "nodejs=20.12.2=hb753e55_0",
        "vega-cli=5.28.0=h8bc1fc1_0",
        "pip=24.0=pyhd8ed1ab_0",
    ]
    assert (
        "Warning: cuda-toolkit is declared in [tool.poetry-snapshot.conda] but not installed"
        in result.stderr
    )
    assert (
        "Warning: beta is both a conda dependency (beta=2.1=pyh1_0)"
        " and locked in poetry.lock (beta==2.1)" in result.stderr
    )

    export(project, "-o", "conda-lock.yml", "--without-hashes", "--without-urls")
    parsed = parse_with_conda_lock(project.path / "conda-lock.yml")
    conda = {
        d["name"]: (d["version"], d["build"])
        for d in parsed["dependencies"]
        if d["manager"] == "conda"
    }
    assert conda["python"] == (PYTHON, "hab00c5b_0_cpython")
    assert conda["vega-cli"] == ("5.28.0", "h8bc1fc1_0")


@pytest.fixture(scope="module")
def multi_index(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> Any:
    """The standard wheels plus `multi 1.0` published as two wheels (two hashes in the lock)."""
    root = tmp_path_factory.mktemp("multi-wheels")
    for wheel in wheels.iterdir():
        shutil.copy(wheel, root)
    build_wheel(WheelSpec("multi", "1.0", requires=["beta"]), root)
    other = build_wheel(
        WheelSpec("multi", "1.0", requires=["beta"], files={"multi/py2.py": b"2\n"}), root / "py2"
    )
    other.rename(root / "multi-1.0-py2-none-any.whl")
    index = LocalIndex(root)
    yield index
    index.close()


def test_several_files_per_package_and_a_sidecar(
    multi_index: LocalIndex, tmp_path: Path, environ: dict[str, str]
) -> None:
    root = tmp_path / "multi"
    root.mkdir()
    project = Project(
        root,
        environ,
        multi_index.url,
        multi_index.root,
        pyproject("multi-demo", multi_index.url, ["multi"]),
    )
    project.write_pyproject()
    write_package(root, "multi-demo")
    project.poetry("lock")
    project.poetry("install")
    (root / "reqs").mkdir()
    export(project, "-o", "environment.yml", "--pip-requirements", "reqs/pins.txt")
    env_file = root / "environment.yml"
    assert pip_section(env_file) == ["-r reqs/pins.txt"]
    sidecar = (root / "reqs" / "pins.txt").read_text()
    assert sidecar.startswith(
        "# Generated by `poetry env-export --format conda --pip-requirements reqs/pins.txt`"
    )
    assert sidecar.count("--hash=sha256:") == 3  # multi's two wheels, beta's one
    # conda writes its temporary requirements file beside environment.yml: -r resolves there.
    assert pip_resolves(project, as_conda_runs_pip(env_file)) == {"multi": "1.0", "beta": "2.1"}

    assert (
        export(
            project, "-o", "environment.yml", "--pip-requirements", "reqs/pins.txt", "--check"
        ).returncode
        == 0
    )
    (root / "reqs" / "pins.txt").write_text(sidecar.replace("beta==2.1", "beta==2.0"))
    result = export(
        project,
        "-o",
        "environment.yml",
        "--pip-requirements",
        "reqs/pins.txt",
        "--check",
        check=False,
    )
    assert result.returncode == 1
    assert "-beta==2.0" in result.stdout and "+beta==2.1" in result.stdout
    assert "reqs/pins.txt differs from the export" in result.stderr


def local_dependencies(tmp_path: Path, environ: dict[str, str]) -> tuple[dict[str, Any], Any]:
    """Poetry dependencies on an editable directory (which needs gamma), a plain directory and
    a git repository, the three kinds that have no file hash; and what writes the libs."""
    repo = write_path_dependency(tmp_path / "gitlib-repo", "gitlib")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "one"]):
        run(["git", "-C", str(repo), *args], environ)

    def libs(root: Path) -> None:
        editlib = write_path_dependency(root / "libs" / "editlib", "editlib")
        pyproject = editlib / "pyproject.toml"
        pyproject.write_text(
            pyproject.read_text().replace(
                'requires-python = ">=3.9"', 'requires-python = ">=3.9"\ndependencies = ["gamma"]'
            )
        )
        write_path_dependency(root / "libs" / "copylib", "copylib")

    dependencies = {
        "beta": "*",
        "editlib": {"path": "libs/editlib", "develop": True},
        "copylib": {"path": "libs/copylib", "develop": False},
        "gitlib": {"git": repo.as_uri()},
    }
    return dependencies, libs


def second_run_command(exported: Path) -> str:
    """The command the export's comments give for the local dependencies."""
    (line,) = [x for x in exported.read_text().splitlines() if x.startswith("#   sed -n ")]
    return line[len("#   ") :]


def test_local_dependencies_are_installed_after_the_hashed_ones(
    make_project: MakeProject, tmp_path: Path, environ: dict[str, str]
) -> None:
    dependencies, libs = local_dependencies(tmp_path, environ)
    # Poetry reads [tool.poetry.dependencies] only while [project] has no dependencies.
    project = make_project("pathdeps", poetry_dependencies=dependencies, before_lock=libs)
    env_file = project.path / "environment.yml"

    result = export(project, "-o", "environment.yml")
    warning = one_line_error(result, code=0)
    assert warning.startswith(
        "Warning: 3 local dependencies (editlib, copylib, gitlib) have no file hash"
    )
    assert "environment.yml lists them in comments at its end" in warning
    pins = [line for line in pip_section(env_file) if not line.startswith("--")]
    assert all("--hash=sha256:" in line for line in pins), pins  # every index package, hashed
    assert sorted(line.split("==")[0] for line in pins) == ["beta", "gamma"]
    text = env_file.read_text()
    assert text.count("\n#local ") == 3
    assert "and pip's hash-checking mode, on for the hashed requirements above, refuses" in text
    assert "# After `conda env create -f environment.yml`, in that environment" in text
    assert second_run_command(env_file) == (
        "sed -n 's/^#local //p' environment.yml | pip install --no-deps -r /dev/stdin"
    )
    assert export(project, "-o", "environment.yml", "--check").returncode == 0

    # As conda would: pip in hash-checking mode over the pip: section, into a new env...
    target = tmp_path / "target"
    venv.EnvBuilder(with_pip=True).create(target)
    run(
        [
            str(target / "bin/python"),
            "-m",
            "pip",
            "install",
            "--require-hashes",
            "--no-index",
            "--find-links",
            str(project.wheels),
            "-r",
            str(as_conda_runs_pip(env_file)),
        ],
        env=project.environ,
        cwd=project.path,
    )
    # ...then the post-create step, verbatim, with that env's pip first on PATH (the build
    # backend of the directories comes from the local wheels, as pip's build isolation asks).
    post_create = {
        **project.environ,
        "PATH": f"{target / 'bin'}{os.pathsep}{project.environ['PATH']}",
        "PIP_FIND_LINKS": str(project.wheels),
    }
    run(
        ["bash", "-eo", "pipefail", "-c", second_run_command(env_file)],
        env=post_create,
        cwd=project.path,
    )
    installed = json.loads(
        run(
            [str(target / "bin/python"), "-m", "pip", "list", "--format", "json"],
            env=project.environ,
        ).stdout
    )
    versions = {canonicalize_name(p["name"]): p for p in installed}
    assert {
        name: versions[name]["version"]
        for name in ("beta", "gamma", "editlib", "copylib", "gitlib")
    } == {
        "beta": "2.1",
        "gamma": "1.0",
        "editlib": "1.0.0",
        "copylib": "1.0.0",
        "gitlib": "1.0.0",
    }
    assert versions["editlib"].get("editable_project_location") == str(
        project.path / "libs" / "editlib"
    )
    run(
        [str(target / "bin/python"), "-c", "import editlib, copylib, gitlib, beta, gamma"],
        env=project.environ,
    )

    # requirements.txt: the same split, and pip's hashed run accepts the hashed part.
    result = export(project, "-f", "requirements.txt", "-o", "requirements.txt")
    assert one_line_error(result, code=0).startswith("Warning: 3 local dependencies")
    requirements = project.path / "requirements.txt"
    assert pip_resolves(project, requirements) == {"beta": "2.1", "gamma": "1.0"}
    local = [line for line in requirements.read_text().splitlines() if line.startswith("#local ")]
    assert any(line.startswith("#local -e file://") and "/libs/editlib" in line for line in local)
    assert any(line.startswith("#local copylib @ file://") for line in local)
    assert any(line.startswith("#local gitlib @ git+file://") for line in local)
    dry_run = second_run_command(requirements).replace(
        "pip install", "pip install --dry-run --ignore-installed"
    )
    out = run(["bash", "-eo", "pipefail", "-c", dry_run], env=post_create, cwd=project.path).stdout
    assert "Would install copylib-1.0.0 editlib-1.0.0 gitlib-1.0.0" in out

    # --pip-requirements: the pins file is hashed only; environment.yml holds the second step.
    (project.path / "reqs").mkdir()
    export(project, "-o", "environment.yml", "--pip-requirements", "reqs/pins.txt")
    assert "#local" not in (project.path / "reqs" / "pins.txt").read_text()
    assert pip_resolves(project, project.path / "reqs" / "pins.txt") == {
        "beta": "2.1",
        "gamma": "1.0",
    }
    assert env_file.read_text().count("\n#local ") == 3

    # Without hashes they stay inline, no warning: the variant conda-lock parses.
    result = export(project, "-o", "environment.yml", "--without-hashes", "--without-urls")
    assert result.stderr == ""
    pins = pip_section(env_file)
    assert any(line.startswith("-e file://") and "/libs/editlib ;" in line for line in pins)
    assert "#local" not in env_file.read_text()
    parsed = parse_with_conda_lock(env_file)
    assert parsed

    # The file's name is written into the comments: a line break in it would end a comment and
    # turn the rest of the name into a requirement.
    for fmt in ("conda", "requirements.txt"):
        error = one_line_error(export(project, "-f", fmt, "-o", "x\n-e evil", check=False))
        assert "holds control characters" in error
    assert not list(project.path.glob("x*"))


def test_an_unhashed_index_package_is_still_refused(make_project: MakeProject) -> None:
    """A lock entry without files (so without a hash) is no local dependency: the export stops."""
    project = make_project("nohash", ["beta"])
    lock_file = project.path / "poetry.lock"
    data = tomlkit.parse(lock_file.read_text())
    for package in data["package"]:
        package["files"] = []
    lock_file.write_text(tomlkit.dumps(data))
    for fmt in ("conda", "requirements.txt"):
        error = one_line_error(export(project, "-f", fmt, check=False))
        assert "cannot install 1 selected package(s) that have no file hash" in error
        assert "beta==2.1" in error and "--without-hashes" in error
    assert not (project.path / "environment.yml").exists()


# --- requirements.txt and pylock.toml: poetry-plugin-export's own output -----------------------


def test_requirements_and_pylock_are_poetry_plugin_exports(make_project: MakeProject) -> None:
    project = make_project(
        "reqs",
        ["alpha"],
        groups={
            "dev": {"dependencies": {"devdep": "*"}},
            "docs": {"optional": True, "dependencies": {"docsdep": "*"}},
        },
        extras={"fast": ["gamma"]},
    )
    ours = export(project, "-f", "requirements.txt", "--with", "docs", "-E", "fast").stdout
    header, _, body = ours.partition(
        "# Do not edit: change pyproject.toml or poetry.lock and export again.\n"
    )
    assert header == (
        "# Generated by `poetry env-export --format requirements.txt --with docs --all-extras`"
        " from poetry.lock.\n"
    )
    # Groups follow `poetry install` (dev is in); `poetry export` needs them named.
    theirs = project.poetry(
        "export", "-f", "requirements.txt", "--with", "dev,docs", "-E", "fast"
    ).stdout
    assert body == theirs
    (project.path / "requirements.txt").write_text(ours)
    assert pip_resolves(project, project.path / "requirements.txt") == {
        "alpha": "1.1",
        "beta": "2.1",
        "devdep": "1.0",
        "docsdep": "1.0",
        "gamma": "1.0",
    }

    if not pylock_supported():
        error = one_line_error(export(project, "-f", "pylock.toml", check=False))
        assert "pylock.toml export needs" in error
        assert not (project.path / "pylock.toml").exists()
        return
    export(project, "-f", "pylock.toml", "-o", "pylock.toml", "--only", "main")
    ours = (project.path / "pylock.toml").read_text()
    theirs = project.poetry("export", "-f", "pylock.toml").stdout
    assert ours.split("\n", 2)[2] == theirs
    try:
        from packaging.pylock import Pylock  # packaging >= 26
    except ImportError:
        from poetry.core._vendor.packaging.pylock import Pylock  # type: ignore[no-redef]

    pylock = Pylock.from_dict(tomlkit.parse(ours).unwrap())
    lock = tomlkit.parse((project.path / "poetry.lock").read_text()).unwrap()
    locked_hashes = {
        p["name"]: {f["hash"].split(":", 1)[1] for f in p["files"]} for p in lock["package"]
    }
    assert {p.name: str(p.version) for p in pylock.packages} == {"alpha": "1.1", "beta": "2.1"}
    for package in pylock.packages:
        assert {w.hashes["sha256"] for w in package.wheels or []} == locked_hashes[package.name]


def test_pylock_without_the_index_is_one_clear_error(
    tmp_path: Path, wheels: Path, session_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    environ = isolated_environ(session_home, tmp_path_factory.mktemp("pylock-cache"))
    project = project_with_own_index(tmp_path / "nonet", wheels, environ, ["alpha"])
    empty_cache = {"POETRY_CACHE_DIR": str(tmp_path_factory.mktemp("empty-cache"))}
    result = project.poetry("env-export", "-f", "pylock.toml", check=False, env=empty_cache)
    error = one_line_error(result)
    assert result.stdout == ""
    if not pylock_supported():
        assert "pylock.toml export needs" in error
        return
    assert "pylock.toml needs file data from the package index, and asking it failed:" in error
    assert "All attempts to connect to 127.0.0.1" in error
    # requirements.txt needs nothing but the lock.
    assert project.poetry("env-export", "-f", "requirements.txt", env=empty_cache).returncode == 0


# --- the JSON environment manifest ----------------------------------------------------------------


def test_json_manifest_is_the_installed_state(make_project: MakeProject) -> None:
    def libs(root: Path) -> None:
        write_path_dependency(root / "libs" / "editlib", "editlib")

    project = make_project(
        "manifest",
        poetry_dependencies={
            "alpha": "*",
            "clitool": "*",
            "editlib": {"path": "libs/editlib", "develop": True},
        },
        before_lock=libs,
    )
    validate = validator("environment-manifest")
    manifest = json.loads(export(project, "-f", "json").stdout)
    validate(manifest)
    assert manifest["schema_version"] == 1
    assert manifest["interpreter"]["version"] == PYTHON
    assert manifest["interpreter"]["tags"]["interpreter"].startswith(("cp", "pp"))
    assert manifest["verification"]["ok"] is True

    inspect = json.loads(
        run([str(project.python), "-m", "pip", "inspect"], env=project.environ).stdout
    )
    expected = {
        canonicalize_name(d["metadata"]["name"]): (
            d["metadata"]["version"],
            d.get("direct_url"),
            d.get("installer"),
        )
        for d in inspect["installed"]
        if d["metadata_location"].startswith(str(project.venv))
    }
    found = {
        d["name"]: (d["version"], d["direct_url"], d["installer"])
        for d in manifest["distributions"]
    }
    assert found == expected
    by_name = {d["name"]: d for d in manifest["distributions"]}
    assert by_name["alpha"]["source"] == "index"
    assert by_name["editlib"]["source"] == "editable"
    assert by_name["manifest"]["source"] == "editable"
    record = project.venv / by_name["beta"]["location"] / "RECORD"
    assert by_name["beta"]["record_sha256"] == hashlib.sha256(record.read_bytes()).hexdigest()

    export(project, "-f", "json", "-o", "env.json")
    assert export(project, "-f", "json", "-o", "env.json", "--check").returncode == 0
    project.pip("uninstall", "-y", "beta")
    result = export(project, "-f", "json", "-o", "env.json", "--check", check=False)
    assert result.returncode == 1 and '-      "name": "beta",' in result.stdout
    manifest = json.loads(export(project, "-f", "json").stdout)
    validate(manifest)
    assert "beta" not in {d["name"] for d in manifest["distributions"]}
    assert [(d["kind"], d["package"]) for d in manifest["verification"]["drifts"]] == [
        ("missing", "beta")
    ]


# --- --check, determinism, writing ----------------------------------------------------------------


def test_check_passes_fresh_and_fails_after_the_lock_changes(make_project: MakeProject) -> None:
    project = make_project("checked", ["alpha"])
    env_file = project.path / "environment.yml"
    result = export(project, "--check", "-o", "environment.yml", check=False)
    assert result.returncode == 1 and "environment.yml (missing)" in result.stdout
    assert not env_file.exists()

    export(project, "-o", "environment.yml")
    env_file.chmod(0o640)
    result = export(project, "--check", "-o", "environment.yml")
    assert result.stdout == "" and "environment.yml: up to date." in result.stderr

    before = env_file.read_bytes()
    project.edit({"project": {"dependencies": ["alpha", "gamma"]}})
    project.poetry("lock")
    result = export(project, "--check", "-o", "environment.yml", check=False)
    assert result.returncode == 1
    assert result.stdout.startswith(
        f"--- {Path('environment.yml')} (on disk)\n+++ environment.yml (export)\n"
    )
    assert '+      - "gamma==1.0 ; python_version >= \\"3.9\\" --hash=sha256:' in result.stdout
    assert "environment.yml differs from the export" in result.stderr
    assert env_file.read_bytes() == before  # --check writes nothing

    export(project, "-o", "environment.yml")
    assert env_file.stat().st_mode & 0o777 == 0o640  # rewritten in place of the old file
    assert sorted(p.name for p in project.path.iterdir() if p.name.startswith(".environment")) == []
    assert export(project, "--check", "-o", "environment.yml").returncode == 0

    stamped = export(project, "--timestamp").stdout
    assert stamped.splitlines()[2].startswith("# Generated at ")
    assert stamped.replace(stamped.splitlines()[2] + "\n", "") == env_file.read_text()


def test_usage_and_configuration_errors(make_project: MakeProject) -> None:
    project = make_project("errors", ["beta"], install=False)
    shutil.rmtree(project.venv, ignore_errors=True)
    cases = [
        (["--format", "xml"], "Unknown --format 'xml'."),
        (["--check"], "--check compares a file: it needs -o FILE."),
        (["--check", "-o", "x.yml", "--timestamp"], "--timestamp makes every export differ"),
        (
            ["-f", "requirements.txt", "--pip-requirements", "p.txt"],
            "--pip-requirements applies to --format conda only.",
        ),
        (["-f", "json", "--without-hashes"], "--without-hashes does not apply to --format json."),
        (
            ["-f", "pylock.toml", "-o", "lock.toml"],
            "must be named pylock.toml or pylock.<name>.toml",
        ),
        (["-E", "nope"], "Extra(s) not specified in pyproject.toml: nope."),
        (["--with", "nope"], "Group(s) not found: nope (via --with)"),
        ([], "No project environment: environment.yml pins python"),
    ]
    for args, message in cases:
        result = export(project, *args, check=False)
        assert message in one_line_error(result), (args, result.stderr)
        assert result.stdout == ""
    assert not project.venv.exists()

    project.edit(
        {
            "tool": {
                "poetry-snapshot": {"conda": {"channels": ["conda-forge"], "dependecies": ["x"]}}
            }
        }
    )
    # The whole table is read once for every command and format, as `poetry snapshot` reads it.
    for fmt in ("conda", "requirements.txt"):
        error = one_line_error(export(project, "-f", fmt, check=False))
        assert "Unknown key 'dependecies' in [tool.poetry-snapshot.conda]." in error
    project.data["tool"]["poetry-snapshot"] = {"exclud": ["data/"]}
    project.write_pyproject()
    for command in (["env-export", "-f", "requirements.txt"], ["snapshot", "--dry-run"]):
        error = one_line_error(project.poetry(*command, check=False))
        assert "Unknown key in [tool.poetry-snapshot]: exclud." in error
    del project.data["tool"]["poetry-snapshot"]
    project.edit({"project": {"dependencies": ["beta", "gamma"]}})
    error = one_line_error(export(project, "-f", "requirements.txt", check=False))
    assert "poetry.lock is out of date" in error and "poetry lock" in error
