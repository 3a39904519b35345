"""Real Poetry projects for the tests: written to disk, locked and installed by `poetry` itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

import tomlkit

if TYPE_CHECKING:
    from pathlib import Path


def isolated_environ(home: Path, cache: Path) -> dict[str, str]:
    """An environment for subprocesses that sees no user config, cache, venv or index."""
    dropped = ("POETRY_", "PIP_", "VIRTUALENV", "CONDA", "PYTHON", "GIT_", "GITHUB_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.pop("VIRTUAL_ENV", None)
    for name in ("config", "data", "cache"):
        (home / name).mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CACHE_HOME=str(home / "cache"),
        POETRY_CONFIG_DIR=str(home / "config" / "pypoetry"),
        POETRY_DATA_DIR=str(home / "data" / "pypoetry"),
        POETRY_CACHE_DIR=str(cache),
        POETRY_VIRTUALENVS_IN_PROJECT="true",
        POETRY_VIRTUALENVS_USE_POETRY_PYTHON="true",
        POETRY_NO_INTERACTION="1",
        POETRY_INSTALLER_PARALLEL="true",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        VIRTUALENV_OVERRIDE_APP_DATA=str(cache / "virtualenv"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="Test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


POETRY = [sys.executable, "-m", "poetry"]


@dataclass
class Project:
    """A Poetry project on disk and the environment its commands run in."""

    path: Path
    environ: dict[str, str]
    index_url: str
    wheels: Path
    data: dict[str, Any] = field(default_factory=dict)

    def poetry(
        self,
        *args: str,
        check: bool = True,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*POETRY, *args],
            cwd=cwd or self.path,
            env={**self.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"poetry {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def check(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.poetry("snapshot", "--check", *args, check=False, env=env)

    def check_json(
        self, *args: str, env: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        result = self.check("--format", "json", *args, env=env)
        try:
            return result.returncode, json.loads(result.stdout)
        except json.JSONDecodeError:
            raise AssertionError(
                f"not JSON (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
            ) from None

    @property
    def venv(self) -> Path:
        return self.path / ".venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        """pip inside the project's env, offline, seeing only the test wheels."""
        return run(
            [str(self.python), "-m", "pip", *args, "--no-index", "--find-links", str(self.wheels)]
            if args[0] == "install"
            else [str(self.python), "-m", "pip", *args],
            env=self.environ,
        )

    def site_packages(self) -> Path:
        return next((self.venv / "lib").glob("python3*/site-packages"))

    def write_pyproject(self) -> None:
        (self.path / "pyproject.toml").write_text(tomlkit.dumps(self.data))

    def edit(self, update: dict[str, Any]) -> None:
        """Deep-merge `update` into pyproject.toml."""
        _merge(self.data, update)
        self.write_pyproject()


def _merge(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def run(
    args: list[str], env: dict[str, str], cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def pyproject(
    name: str,
    index_url: str,
    dependencies: list[str] | None = None,
    *,
    groups: dict[str, dict[str, Any]] | None = None,
    extras: dict[str, list[str]] | None = None,
    package_mode: bool = True,
    src_layout: bool = False,
    poetry_dependencies: dict[str, Any] | None = None,
    requires_python: str = ">=3.9",
) -> dict[str, Any]:
    """pyproject.toml data of a project locked against the local index only."""
    project: dict[str, Any] = {
        "name": name,
        "version": "0.1.0",
        "requires-python": requires_python,
        "dependencies": dependencies or [],
    }
    if extras:
        project["optional-dependencies"] = extras
    tool: dict[str, Any] = {
        "source": [{"name": "local", "url": index_url, "priority": "primary"}],
    }
    if not package_mode:
        tool["package-mode"] = False
    if src_layout:
        tool["packages"] = [{"include": name.replace("-", "_"), "from": "src"}]
    if groups:
        tool["group"] = groups
    if poetry_dependencies:
        tool["dependencies"] = poetry_dependencies
    data: dict[str, Any] = {"project": project, "tool": {"poetry": tool}}
    if package_mode:
        data["build-system"] = {
            "requires": ["poetry-core>=2.0"],
            "build-backend": "poetry.core.masonry.api",
        }
    return data


def write_package(root: Path, name: str, *, src_layout: bool = False, body: str = "") -> Path:
    """The project's own import package, with a marker of which copy it is."""
    module = name.replace("-", "_")
    package = (root / "src" / module) if src_layout else (root / module)
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        textwrap.dedent(body) or f'"""{name}"""\nWHERE = __file__\n'
    )
    return package


def write_path_dependency(root: Path, name: str, version: str = "1.0.0") -> Path:
    """A poetry-core project at `root`, usable as a path dependency."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [project]
            name = "{name}"
            version = "{version}"
            requires-python = ">=3.9"

            [build-system]
            requires = ["poetry-core>=2.0"]
            build-backend = "poetry.core.masonry.api"
            """
        )
    )
    write_package(root, name)
    return root


_LOCK_WITHOUT_ENV = """
from pathlib import Path
from cleo.io.null_io import NullIO
from poetry.factory import Factory
from poetry.installation.installer import Installer
from poetry.utils.env import NullEnv

# What `poetry lock` does, minus EnvCommand's environment check: as if locked on a machine
# whose Python satisfies requires-python.
poetry = Factory().create_poetry(Path.cwd())
installer = Installer(NullIO(), NullEnv(), poetry.package, poetry.locker, poetry.pool, poetry.config)
installer.lock(update=False)
raise SystemExit(installer.run())
"""


def lock_without_env(project: Project) -> None:
    run([sys.executable, "-c", _LOCK_WITHOUT_ENV], env=project.environ, cwd=project.path)


def project_with_own_index(
    root: Path,
    wheels: Path,
    environ: dict[str, str],
    dependencies: list[str],
    *,
    install: bool = False,
) -> Project:
    """A locked (and installed) project whose only package source is a fresh local index,
    closed on return: for tests proving a command needs no index, or fails cleanly without one."""
    from tests.index import LocalIndex

    index = LocalIndex(wheels)
    try:
        root.mkdir(parents=True)
        data = pyproject(root.name, index.url, dependencies)
        project = Project(root, environ, index.url, wheels, data)
        project.write_pyproject()
        write_package(root, root.name)
        project.poetry("lock")
        if install:
            project.poetry("install")
        return project
    finally:
        index.close()
