from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from typing import Callable

import pytest

from tests.distributions import WheelSpec
from tests.distributions import build_wheel
from tests.distributions import repack_installed
from tests.index import LocalIndex
from tests.projects import Project
from tests.projects import isolated_environ
from tests.projects import pyproject
from tests.projects import write_package

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# The packages every test index offers. Names say what they are for.
STANDARD_WHEELS = [
    WheelSpec("alpha", "1.0", requires=["beta>=2.0"]),
    WheelSpec("alpha", "1.1", requires=["beta>=2.0"]),
    WheelSpec("beta", "2.0"),
    WheelSpec("beta", "2.1"),
    WheelSpec("gamma", "1.0"),
    WheelSpec("winonly", "1.0"),
    WheelSpec("docsdep", "1.0"),
    WheelSpec("devdep", "1.0"),
    WheelSpec("stray", "1.0"),
    WheelSpec(
        "clitool",
        "1.0",
        console_scripts={"clitool": "clitool.cli:main"},
        scripts={"clitool-sh": b"#!python\nprint('hello from a wheel script')\n"},
    ),
]


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheels")
    for spec in STANDARD_WHEELS:
        build_wheel(spec, root)
    # The build backend of path dependencies, served like any other package: Poetry builds
    # directory dependencies in an isolated env whose requirements come from the project's sources.
    repack_installed("poetry-core", root)
    return root


@pytest.fixture(scope="session")
def index(wheels: Path) -> Iterator[LocalIndex]:
    server = LocalIndex(wheels)
    yield server
    server.close()


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def poetry_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("poetry-cache")


@pytest.fixture
def environ(session_home: Path, poetry_cache: Path) -> dict[str, str]:
    return isolated_environ(session_home, poetry_cache)


MakeProject = Callable[..., Project]
_LOCKS: dict[str, str] = {}


@pytest.fixture
def make_project(
    tmp_path: Path, index: LocalIndex, wheels: Path, environ: dict[str, str]
) -> MakeProject:
    """Write a project using the local index; `lock`/`install` run real Poetry on it."""

    def make(
        name: str = "demo",
        dependencies: list[str] | None = None,
        *,
        lock: bool = True,
        install: bool | list[str] = True,
        directory: Path | None = None,
        before_lock: Callable[[Path], object] | None = None,
        **options: Any,
    ) -> Project:
        root = directory or tmp_path / name
        root.mkdir(parents=True, exist_ok=True)
        data = pyproject(name, index.url, dependencies, **options)
        project = Project(root, environ, index.url, wheels, data)
        project.write_pyproject()
        if options.get("package_mode", True):
            write_package(root, name, src_layout=options.get("src_layout", False))
        if before_lock is not None:
            before_lock(root)
        if lock:
            # Locking is deterministic for a given pyproject.toml and index; reuse the lock of an
            # identical project (projects with path dependencies always lock for real).
            key = (root / "pyproject.toml").read_text() if before_lock is None else None
            if key is not None and key in _LOCKS:
                (root / "poetry.lock").write_text(_LOCKS[key])
            else:
                project.poetry("lock")
                if key is not None:
                    _LOCKS[key] = (root / "poetry.lock").read_text()
        if install is not False:
            project.poetry("install", *([] if install is True else install))
        return project

    return make
