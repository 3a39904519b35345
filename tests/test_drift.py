"""Naming drift from Poetry's own operations, the root project and the interpreter."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from packaging.utils import canonicalize_name
from poetry.core.packages.package import Package
from poetry.core.packages.project_package import ProjectPackage
from poetry.installation.operations import Install
from poetry.installation.operations import Uninstall
from poetry.installation.operations import Update

from poetry_snapshot.check.drift import DriftKind
from poetry_snapshot.check.drift import describe_source
from poetry_snapshot.check.drift import interpreter_drift
from poetry_snapshot.check.drift import operation_drifts
from poetry_snapshot.check.drift import root_drifts
from poetry_snapshot.check.environment import Interpreter
from poetry_snapshot.check.environment import WheelTags
from poetry_snapshot.check.lock import InstallScope
from poetry_snapshot.check.lock import install_flags

if TYPE_CHECKING:
    from pathlib import Path


def index_package(name: str, version: str) -> Package:
    return Package(
        name, version, source_type="legacy", source_url="https://i/simple", source_reference="corp"
    )


def test_operations_map_to_kinds() -> None:
    ops = [
        Install(index_package("present", "1.0")).skip("Already installed"),
        Install(index_package("unasked", "1.0")).skip("Not required"),
        Install(index_package("absent", "1.0")),
        Update(Package("old", "1.0"), index_package("old", "2.0")),
        Update(
            Package("lib", "1.0", source_type="directory", source_url="/p/lib", develop=False),
            Package("lib", "1.0", source_type="directory", source_url="/p/lib", develop=True),
        ),
        Update(
            Package("moved", "1.0", source_type="file", source_url="/tmp/moved-1.0.whl"),
            index_package("moved", "1.0"),
        ),
        Uninstall(Package("stray", "3.0")),
        Uninstall(Package("docsdep", "1.0")),
    ]
    drifts = operation_drifts(
        ops, "poetry sync --with docs", locked_names={"docsdep"}, installed={}
    )
    assert [(d.kind, d.package, d.expected, d.found) for d in drifts] == [
        (DriftKind.MISSING, "absent", "1.0 from index corp", "not installed"),
        (DriftKind.WRONG_VERSION, "old", "2.0", "1.0"),
        (DriftKind.EDITABLE_MISMATCH, "lib", "editable", "not editable"),
        (DriftKind.WRONG_SOURCE, "moved", "index corp", "file /tmp/moved-1.0.whl"),
        (DriftKind.EXTRANEOUS, "stray", "absent (not in poetry.lock)", "3.0"),
        (
            DriftKind.EXTRANEOUS,
            "docsdep",
            "absent (locked only for other groups, extras or platforms)",
            "1.0",
        ),
    ]
    assert {d.fix.split("  ")[0] for d in drifts} == {"poetry sync --with docs"}


def test_editable_mismatch_poetry_2_0_reports_as_already_installed() -> None:
    locked = Package("lib", "1.0", source_type="directory", source_url="/p/lib", develop=True)
    found = Package("lib", "1.0", source_type="directory", source_url="/p/lib", develop=False)
    ops = [Install(locked).skip("Already installed")]
    drifts = operation_drifts(ops, "poetry sync", locked_names={"lib"}, installed={"lib": found})
    assert [(d.kind, d.expected, d.found) for d in drifts] == [
        (DriftKind.EDITABLE_MISMATCH, "editable", "not editable")
    ]
    same = Package("lib", "1.0", source_type="directory", source_url="/p/lib", develop=True)
    assert operation_drifts(ops, "poetry sync", locked_names={"lib"}, installed={"lib": same}) == []


def test_describe_source() -> None:
    assert describe_source(Package("a", "1")) == "index"
    git = Package(
        "g",
        "1",
        source_type="git",
        source_url="https://x/g.git",
        source_resolved_reference="0123456789abcdef",
    )
    assert describe_source(git) == "git https://x/g.git@0123456789ab"
    sub = Package(
        "s", "1", source_type="directory", source_url="/r", source_subdirectory="pkg", develop=True
    )
    assert describe_source(sub) == "directory /r#pkg (editable)"


@pytest.fixture
def root() -> ProjectPackage:
    package = ProjectPackage("demo", "1.2.0")
    package.python_versions = ">=3.9,<3.12"
    return package


def test_root_drifts(root: ProjectPackage, tmp_path: Path) -> None:
    here = tmp_path / "demo"
    here.mkdir()
    editable = Package("demo", "1.2.0", source_type="directory", source_url=str(here), develop=True)
    assert root_drifts(root, here, [editable]) == []
    assert root_drifts(root, here, [])[0].kind is DriftKind.ROOT_NOT_INSTALLED
    elsewhere = Package(
        "demo", "1.2.0", source_type="directory", source_url="/other/demo", develop=True
    )
    assert root_drifts(root, here, [elsewhere])[0].kind is DriftKind.ROOT_ELSEWHERE
    from_index = Package("demo", "1.2.0")
    assert root_drifts(root, here, [from_index])[0].kind is DriftKind.ROOT_ELSEWHERE
    frozen = Package("demo", "1.2.0", source_type="directory", source_url=str(here), develop=False)
    assert root_drifts(root, here, [frozen])[0].kind is DriftKind.EDITABLE_MISMATCH
    stale = Package("demo", "1.1.0", source_type="directory", source_url=str(here), develop=True)
    assert [(d.kind, d.expected, d.found) for d in root_drifts(root, here, [stale])] == [
        (DriftKind.WRONG_VERSION, "1.2.0", "1.1.0")
    ]


def test_interpreter_drift(root: ProjectPackage) -> None:
    inside = Interpreter(
        "3.11.4",
        "CPython",
        "/e/bin/python",
        "linux",
        WheelTags("cp311", "cp311", ("linux_x86_64",)),
        (),
    )
    outside = Interpreter(
        "3.12.0",
        "CPython",
        "/e/bin/python",
        "linux",
        WheelTags("cp311", "cp311", ("linux_x86_64",)),
        (),
    )
    assert interpreter_drift(root, inside) is None
    drift = interpreter_drift(root, outside)
    assert drift is not None
    assert (drift.kind, drift.expected, drift.found) == (
        DriftKind.INTERPRETER,
        ">=3.9,<3.12",
        "3.12.0",
    )
    # the fix keeps the user's group and extras options
    drift = interpreter_drift(root, outside, "poetry sync --with docs -E gpu")
    assert drift is not None
    assert drift.fix == (
        "poetry env use <a Python matching requires-python> && poetry sync --with docs -E gpu"
    )


@pytest.mark.parametrize(
    ("groups", "extras", "with_root", "flags"),
    [
        ({"main", "dev"}, set(), True, ""),
        ({"main", "dev", "docs"}, set(), True, " --with docs"),
        ({"main"}, set(), True, " --without dev"),
        ({"main", "docs"}, set(), True, " --only docs,main"),
        ({"main", "dev"}, {"fast"}, True, " -E fast"),
        ({"main", "dev"}, {"fast", "gpu"}, True, " --all-extras"),
        ({"main", "dev"}, set(), False, " --no-root"),
    ],
)
def test_install_flags(groups: set[str], extras: set[str], with_root: bool, flags: str) -> None:
    scope = InstallScope(
        frozenset(canonicalize_name(g) for g in groups),
        frozenset(canonicalize_name(e) for e in extras),
        with_root,
    )
    defaults = {canonicalize_name("main"), canonicalize_name("dev")}
    all_extras = {canonicalize_name("fast"), canonicalize_name("gpu")}
    assert install_flags(scope, defaults, all_extras) == flags


def test_unowned_files_are_listed_after_the_file_kinds() -> None:
    kinds = list(DriftKind)
    assert kinds.index(DriftKind.UNOWNED_FILE) > kinds.index(DriftKind.MISSING_FILE)
    assert kinds.index(DriftKind.UNOWNED_FILE) > kinds.index(DriftKind.MODIFIED_FILE)
    assert (DriftKind.UNOWNED_FILE.value, DriftKind.UNOWNED_FILE.title) == (
        "unowned-file",
        "Unowned files",
    )
