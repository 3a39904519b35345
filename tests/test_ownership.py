"""--deep: which files in site-packages and the scripts directory nothing installed."""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

import pytest
from poetry.core.packages.package import Package

from poetry_snapshot.check.env_layout import EnvLayout
from poetry_snapshot.check.installed_files import InstalledDistribution
from poetry_snapshot.check.installed_files import read_record
from poetry_snapshot.check.ownership import MAKE_READABLE
from poetry_snapshot.check.ownership import RECREATE
from poetry_snapshot.check.ownership import REMOVE
from poetry_snapshot.check.ownership import Owner
from poetry_snapshot.check.ownership import OwnershipScan
from poetry_snapshot.check.ownership import find_unowned
from poetry_snapshot.check.verdict import _conda_owners
from poetry_snapshot.check.verdict import installed_distributions
from tests.condakit import write_conda_prefix
from tests.test_record import install

VIRTUALENV_PATCH = (
    Path(str(metadata.distribution("virtualenv").locate_file("virtualenv")))
    / "create/via_global_ref/_virtualenv.py"
)


class Env:
    """A hand-made env: one site-packages directory and a scripts directory."""

    def __init__(self, root: Path) -> None:
        self.prefix = root / "venv"
        self.site = self.prefix / "lib/python3.11/site-packages"
        self.bin = self.prefix / "bin"
        self.site.mkdir(parents=True)
        self.bin.mkdir()
        self.dists: list[InstalledDistribution] = []

    @property
    def layout(self) -> EnvLayout:
        return EnvLayout.from_paths(str(self.prefix), [str(self.site)], str(self.bin), (3, 11))

    def install(self, name: str, files: dict[str, bytes]) -> InstalledDistribution:
        dist = install(self.site, name, files)
        self.dists.append(dist)
        return dist

    def scan(self, *extra: Owner) -> OwnershipScan:
        layout = self.layout
        owners = [
            Owner(d.name, r.paths, r.directory)
            for d in self.dists
            for r in [read_record(d, layout)]
        ]
        return find_unowned(layout, [*owners, *extra])

    def unowned(self, *extra: Owner) -> dict[str, tuple[str | None, str, str]]:
        """{path relative to the env: (package, found, remedy)}"""
        layout = self.layout
        return {
            layout.relative(u.path): (u.package, u.found, u.remedy)
            for u in self.scan(*extra).unowned
        }


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


SITE = "lib/python3.11/site-packages"


def test_clean_env_has_nothing_unowned(env: Env) -> None:
    env.install("pkg", {"pkg/__init__.py": b"", "pkg/sub/mod.py": b"", "../../../bin/tool": b"#!"})
    (env.site / "pkg/empty").mkdir()  # an empty directory runs nothing
    scan = env.scan()
    assert scan.unowned == ()
    assert scan.files == 4  # the two modules, RECORD and bin/tool
    assert env.unowned() == {}


def test_files_that_run_at_start_and_a_module_inside_a_package(env: Env) -> None:
    env.install("pkg", {"pkg/__init__.py": b"", "pkg/sub/mod.py": b""})
    (env.site / "evil.pth").write_text("import os\n")
    (env.site / "sitecustomize.py").write_text("x = 1\n")
    (env.site / "pkg/extra.py").write_text("y = 2\n")
    (env.site / "pkg/sub/new/deeper.py").parent.mkdir()
    (env.site / "pkg/sub/new/deeper.py").write_text("")
    (env.bin / "tool").write_text("#!/bin/sh\n")
    assert env.unowned() == {
        "bin/tool": (None, "a file of 10 bytes", REMOVE),
        f"{SITE}/evil.pth": (
            None,
            "a file of 10 bytes; Python runs its import lines at every start",
            REMOVE,
        ),
        f"{SITE}/pkg/extra.py": ("pkg", "a file of 6 bytes", REMOVE),
        f"{SITE}/pkg/sub/new/deeper.py": ("pkg", "a file of 0 bytes", REMOVE),
        f"{SITE}/sitecustomize.py": (
            None,
            "a file of 6 bytes; Python imports it at every start",
            REMOVE,
        ),
    }


def test_symlinks_fifos_and_directory_symlinks_are_files_too(env: Env) -> None:
    env.install("pkg", {"pkg/__init__.py": b""})
    (env.site / "linked").symlink_to("/etc")
    (env.site / "pkg/alias.py").symlink_to("__init__.py")
    os.mkfifo(env.site / "blocker.pth")
    assert env.unowned() == {
        f"{SITE}/blocker.pth": (
            None,
            "a fifo; Python runs its import lines at every start",
            REMOVE,
        ),
        f"{SITE}/linked": (None, "a symlink to /etc", REMOVE),
        f"{SITE}/pkg/alias.py": ("pkg", "a symlink to __init__.py", REMOVE),
    }


def test_bytecode_of_owned_modules_is_owned(env: Env) -> None:
    env.install("pkg", {"pkg/__init__.py": b"", "pkg/mod.py": b"", "top.py": b""})
    cache = env.site / "pkg/__pycache__"
    cache.mkdir()
    owned = [
        "__init__.cpython-311.pyc",
        "mod.cpython-311.opt-1.pyc",
        "mod.cpython-312.opt-2.pyc",
        "mod.pypy39.pyc",
    ]
    for name in owned:
        (cache / name).write_bytes(b"\x00")
    (env.site / "__pycache__").mkdir()
    (env.site / "__pycache__/top.cpython-311.pyc").write_bytes(b"")
    (cache / "removed.cpython-311.opt-1.pyc").write_bytes(b"")  # no removed.py: never loaded
    # not bytecode of an owned module:
    (env.site / "pkg/gone.py").mkdir()  # "gone.py" exists, but it is no owned module
    (cache / "gone.cpython-311.pyc").write_bytes(b"")
    (cache / "mod.pyc").write_bytes(b"")  # no interpreter tag
    (cache / "mod.cpython-313.pyc").symlink_to("mod.pypy39.pyc")  # not a regular file
    (env.site / "pkg/mod.pyc").write_bytes(b"")  # sourceless bytecode beside: importable!
    (env.site / "pkg/extra.py").write_text("")
    (cache / "extra.cpython-311.pyc").write_bytes(b"")  # bytecode of an unowned module
    assert sorted(env.unowned()) == [
        f"{SITE}/pkg/__pycache__/extra.cpython-311.pyc",
        f"{SITE}/pkg/__pycache__/gone.cpython-311.pyc",
        f"{SITE}/pkg/__pycache__/mod.cpython-313.pyc",
        f"{SITE}/pkg/__pycache__/mod.pyc",
        f"{SITE}/pkg/extra.py",
        f"{SITE}/pkg/mod.pyc",
    ]


def test_installer_files_of_a_dist_info_are_owned_others_are_not(env: Env) -> None:
    dist = env.install("pkg", {"pkg/__init__.py": b""})
    for name in ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD.jws", "RECORD.p7s"):
        (dist.dist_info / name).write_text("")
    (dist.dist_info / "entry_points.txt").write_text("[console_scripts]\nx = evil:main\n")
    assert env.unowned() == {
        f"{SITE}/pkg-1.0.dist-info/entry_points.txt": ("pkg", "a file of 32 bytes", REMOVE)
    }


def test_what_virtualenv_and_venv_write_in_the_scripts_directory(env: Env) -> None:
    for name in (
        "activate",
        "activate.fish",
        "activate.nu",
        "activate_this.py",
        "Activate.ps1",
        "deactivate.csh",
        "activate.xsh",
    ):
        (env.bin / name).write_text("# activation\n")
    (env.bin / "python").symlink_to("/usr/bin/python3")
    (env.bin / "python3").symlink_to("python")
    (env.bin / "python3.11").symlink_to("python")
    (env.bin / "activate.csh").symlink_to("/tmp/elsewhere")  # not a regular file
    (env.bin / "python3.12").symlink_to("python")  # not this env's interpreter
    (env.bin / "activate.sh").write_text("")  # no creator writes this name
    os.mkfifo(env.bin / "pypy3")
    assert env.unowned() == {
        "bin/activate.csh": (
            None,
            "a symlink to /tmp/elsewhere; named like an activation script, not a regular file",
            RECREATE,
        ),
        "bin/activate.sh": (None, "a file of 0 bytes", REMOVE),
        "bin/pypy3": (None, "a fifo; named like the interpreter, not a file or symlink", RECREATE),
        "bin/python3.12": (None, "a symlink to python", REMOVE),
    }


def test_virtualenv_patch_files_by_content(env: Env) -> None:
    (env.site / "_virtualenv.pth").write_bytes(b"import _virtualenv")
    (env.site / "_virtualenv.py").write_bytes(VIRTUALENV_PATCH.read_bytes())
    (env.site / "__pycache__").mkdir()
    (env.site / "__pycache__/_virtualenv.cpython-311.pyc").write_bytes(b"")
    assert env.unowned() == {}

    version = metadata.version("virtualenv")
    (env.site / "_virtualenv.pth").write_bytes(b"import _virtualenv\nimport evil\n")
    (env.site / "_virtualenv.py").write_bytes(VIRTUALENV_PATCH.read_bytes() + b"import evil\n")
    unowned = env.unowned()
    assert unowned[f"{SITE}/_virtualenv.pth"] == (
        None,
        "a file of 31 bytes; not what virtualenv writes there;"
        " Python runs its import lines at every start",
        RECREATE,
    )
    assert unowned[f"{SITE}/_virtualenv.py"][1].endswith(
        f"not what virtualenv {version} writes there"
    )
    # the bytecode of a module nothing owns is not owned either
    assert unowned[f"{SITE}/__pycache__/_virtualenv.cpython-311.pyc"][2] == REMOVE


def test_virtualenv_patch_files_only_in_purelib(tmp_path: Path) -> None:
    env = Env(tmp_path)
    platlib = env.prefix / "lib64/python3.11/site-packages"
    platlib.mkdir(parents=True)
    (platlib / "_virtualenv.pth").write_bytes(b"import _virtualenv")
    layout = EnvLayout.from_paths(
        str(env.prefix), [str(env.site), str(platlib)], str(env.bin), (3, 11)
    )
    assert [layout.relative(u.path) for u in find_unowned(layout, []).unowned] == [
        "lib64/python3.11/site-packages/_virtualenv.pth"
    ]


def test_same_directory_through_a_symlink_is_walked_once(tmp_path: Path) -> None:
    env = Env(tmp_path)
    (env.prefix / "lib64").symlink_to("lib")
    env.install("pkg", {"pkg/__init__.py": b""})
    (env.site / "stray.py").write_text("")
    layout = EnvLayout.from_paths(
        str(env.prefix),
        [str(env.site), str(env.prefix / "lib64/python3.11/site-packages")],
        str(env.bin),
        (3, 11),
    )
    assert layout.site_dirs == (str(env.site.resolve()),)
    assert [
        layout.relative(u.path)
        for u in find_unowned(
            layout, [Owner("pkg", read_record(env.dists[0], layout).paths)]
        ).unowned
    ] == [f"{SITE}/stray.py"]


def test_directory_that_cannot_be_listed(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = env.site / "locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path: str) -> object:
        if path == str(locked.resolve()):
            raise PermissionError(13, "Permission denied", path)  # as for chmod 0, unless root
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert env.unowned() == {
        f"{SITE}/locked": (
            None,
            "a directory that cannot be listed (Permission denied); its files were not checked",
            MAKE_READABLE,
        )
    }


def test_egg_info_installed_files_and_conda_meta(env: Env) -> None:
    egg = env.site / "legacy-1.0-py3.11.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Name: legacy\n")
    (egg / "installed-files.txt").write_text("../legacy.py\nPKG-INFO\n")
    (env.site / "legacy.py").write_text("")
    write_conda_prefix(env.prefix, {"python": ("3.11.7", "h_0"), "zlib": ("1.3", "h_1")}, [])
    meta = env.prefix / "conda-meta"
    record = meta / "python-3.11.7-h_0.json"
    data = json.loads(record.read_text())
    data["files"] = ["bin/python3.11", f"{SITE}/README.txt"]
    record.write_text(json.dumps(data))
    (env.bin / "python3.11").write_text("")
    (env.site / "README.txt").write_text("")
    (env.bin / "zlib-tool").write_text("")  # zlib's record lists no files
    layout = env.layout
    dists = installed_distributions(layout, [Package("legacy", "1.0")])
    from poetry_snapshot.check.installed_files import read_installed_files

    owners = [
        Owner("legacy", read_installed_files(dists[0].dist_info, layout)),
        *_conda_owners(layout),
    ]
    assert [layout.relative(u.path) for u in find_unowned(layout, owners).unowned] == [
        "bin/zlib-tool"
    ]


def test_installed_distributions_follow_poetry(tmp_path: Path) -> None:
    env = Env(tmp_path)
    for name in (
        "beta-2.1.dist-info",
        "beta-0.dist-info",
        "Alpha_Pkg-1.0.0.dist-info",
        "gamma-1.0.dist-info",
        "legacy-3-py3.11.egg-info",
        "dev.egg-info",
        "stray-1.0.dist-info",
        "broken-x.y.dist-info",
    ):
        (env.site / name).mkdir()
    installed = [
        Package("beta", "2.1"),
        Package("alpha-pkg", "1.0"),
        Package("gamma", "2.0"),
        Package("legacy", "3"),
        Package("dev", "0.1"),
        Package("broken", "1"),
    ]
    found = installed_distributions(env.layout, installed)
    assert [(d.name, d.dist_info.name) for d in found] == [
        ("alpha-pkg", "Alpha_Pkg-1.0.0.dist-info"),  # 1.0.0 == 1.0
        ("beta", "beta-2.1.dist-info"),  # not the stray beta-0 that sorts first
        ("dev", "dev.egg-info"),  # a develop install's egg-info has no version
        ("legacy", "legacy-3-py3.11.egg-info"),
    ]  # gamma: installed is 2.0; stray: not installed; broken: no version


def test_fixes_of_deep_drifts(env: Env) -> None:
    from poetry_snapshot.check.installed_files import FileProblem
    from poetry_snapshot.check.ownership import UnownedFile
    from poetry_snapshot.check.verdict import _file_drifts
    from poetry_snapshot.check.verdict import _unowned_drifts

    layout = env.layout
    sync = "poetry sync --with docs"
    record = FileProblem("beta", "beta-2.1.dist-info/RECORD", "record", "csv", "not UTF-8")
    fifo = FileProblem("beta", "beta/x.py", "refused", "sha256=a", "a fifo; not opened")
    seeded = FileProblem("pip", "pip-26.dist-info/RECORD", "record", "csv", "not UTF-8")
    dist_infos = {"beta": f"{layout.site_dirs[0]}/beta-2.1.dist-info"}
    assert [
        d.fix for d in _file_drifts([record, fifo, seeded], {"beta"}, dist_infos, layout, sync)
    ] == [
        f"rm -r -- {env.prefix}/{SITE}/beta-2.1.dist-info && poetry sync --with docs",
        "poetry run python -m pip uninstall -y beta && poetry sync --with docs",
        "poetry env remove --all && poetry sync --with docs",  # not Poetry's to reinstall
    ]
    site = layout.site_dirs[0]
    scan = OwnershipScan(
        3,
        (
            UnownedFile(f"{site}/it's here.pth", None, "a file of 1 bytes", REMOVE),
            UnownedFile(f"{site}/_virtualenv.py", None, "not what virtualenv writes", RECREATE),
            UnownedFile(f"{site}/locked", None, "cannot be listed", MAKE_READABLE),
        ),
    )
    assert [(d.path, d.fix) for d in _unowned_drifts(scan, layout, sync)] == [
        (f"{SITE}/it's here.pth", f"rm -- '{env.prefix}/{SITE}/it'\"'\"'s here.pth'"),
        (f"{SITE}/_virtualenv.py", "poetry env remove --all && poetry sync --with docs"),
        (f"{SITE}/locked", f"chmod u+rx -- {env.prefix}/{SITE}/locked"),
    ]
