"""Finding editable installs in site-packages, as data, and redirecting them to a snapshot."""

from __future__ import annotations

import os
import subprocess
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
from poetry.core.packages.package import Package

from poetry_snapshot.errors import CopyError
from poetry_snapshot.snapshot.editables import ALIAS_DIR
from poetry_snapshot.snapshot.editables import EditableInstall
from poetry_snapshot.snapshot.editables import ImportRoot
from poetry_snapshot.snapshot.editables import Redirect
from poetry_snapshot.snapshot.editables import find_editables
from poetry_snapshot.snapshot.editables import lay_out
from poetry_snapshot.snapshot.editables import parse_finder
from poetry_snapshot.snapshot.editables import plan_redirect
from poetry_snapshot.snapshot.editables import read_egg_links
from poetry_snapshot.snapshot.editables import read_import_roots
from poetry_snapshot.snapshot.git_facts import GitInfo

if TYPE_CHECKING:
    from pathlib import Path

# What setuptools (>= 64) writes as __editable___<name>_finder.py, abridged: the data, and code
# that must never run here.
SETUPTOOLS_FINDER = """\
import sys
from importlib.machinery import ModuleSpec
MAPPING: dict[str, str] = {mapping!r}
NAMESPACES: dict[str, list[str]] = {{}}
PATH_PLACEHOLDER = '__editable__.tool-0.1.finder' + ".__path_hook__"
open({marker!r}, "w").close()

def install():
    sys.meta_path.append(None)
"""

# What the `editables` library (hatchling's dev-mode-exact) writes as _editable_impl_<name>.py.
EDITABLES_IMPL = """\
from editables.redirector import RedirectingFinder as F
F.install()
F.map_module('pkg', {package!r})
F.map_module('single', {module!r})
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- reading site-packages -----------------------------------------------------------------


def test_pth_directories_in_the_order_site_adds_them(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    one, two, three = (tmp_path / n for n in ("one", "two", "three"))
    for directory in (one, two, three):
        directory.mkdir()
    (site / "rel").mkdir(parents=True)
    write(site / "b.pth", f"# a comment\n\n{two}\n{tmp_path / 'missing'}\n{one}\n")
    write(site / "a.pth", f"{one}  \nrel\n")
    write(site / ".hidden.pth", f"{three}\n")
    write(site / "c.pth.txt", f"{three}\n")

    roots = read_import_roots([str(site)])

    assert roots == (
        ImportRoot(str(one), None, "a.pth"),
        ImportRoot(str(site / "rel"), None, "a.pth"),
        ImportRoot(str(two), None, "b.pth"),
    )


def test_pth_import_lines_and_finders_are_read_never_run(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    marker = tmp_path / "executed"
    tool = tmp_path / "project" / "tool"
    code = tmp_path / "project" / "code"
    module = tmp_path / "project" / "single"
    for directory in (tool, code):
        directory.mkdir(parents=True)
    write(module.with_suffix(".py"), "")
    mapping = {"tool": str(tool), "other": str(code), "single": str(module), "gone": "/nope"}
    write(
        site / "__editable___tool_0_1_finder.py",
        SETUPTOOLS_FINDER.format(mapping=mapping, marker=str(marker)),
    )
    write(
        site / "__editable__.tool-0.1.pth",
        "import __editable___tool_0_1_finder; __editable___tool_0_1_finder.install()",
    )
    write(site / "distutils-precedence.pth", f"import os; open({str(marker)!r}, 'w')\n")
    (site / "_distutils_hack").mkdir()

    roots = read_import_roots([str(site)])

    origin = "__editable___tool_0_1_finder.py"
    assert roots == (
        ImportRoot(str(tool), "tool", origin),
        ImportRoot(str(code), "other", origin),
        ImportRoot(str(module) + ".py", "single", origin),
    )
    assert not marker.exists()


def test_parse_finder_reads_setuptools_and_editables_forms() -> None:
    assert parse_finder("MAPPING = {'a': '/x/a', 'b': '/y/c'}\nNAMESPACES = {}\n") == [
        ("a", "/x/a"),
        ("b", "/y/c"),
    ]
    assert parse_finder(
        EDITABLES_IMPL.format(package="/p/src/pkg/__init__.py", module="/p/single.py")
    ) == [("pkg", "/p/src/pkg"), ("single", "/p/single.py")]
    # Anything that is not a literal mapping of strings is no data: ignored, not evaluated.
    assert parse_finder("MAPPING = dict(a='/x')\nMAPPING2 = {'b': '/y'}\n") == []
    assert parse_finder("MAPPING = {'a': 1, 2: '/y', 'ok': '/z'}\n") == [("ok", "/z")]
    assert parse_finder("F.map_module(name, '/x')\nthis is not python") == []


def test_egg_links(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    write(site / "Legacy-Lib.egg-link", f"{tmp_path / 'legacy'}\n.\n")
    write(site / "empty.egg-link", "")
    assert read_egg_links([str(site), str(tmp_path / "absent")]) == [
        ("Legacy-Lib", str(tmp_path / "legacy"))
    ]


# --- planning the redirect -----------------------------------------------------------------


def test_plan_redirect_keeps_the_env_order_and_only_the_project(tmp_path: Path) -> None:
    project = tmp_path / "project"
    for sub in ("src", "libs/a", "libs/t/tool", "libs/t/code", ".venv/lib/site-packages/x"):
        (project / sub).mkdir(parents=True)
    write(project / "libs/t/mod.py", "")
    write(project / "libs/t/odd.py", "")
    (tmp_path / "outside").mkdir()
    roots = [
        ImportRoot(str(project / "libs/a"), None, "a.pth"),
        ImportRoot(str(tmp_path / "outside"), None, "out.pth"),
        ImportRoot(str(project / ".venv/lib/site-packages/x"), None, "venv.pth"),
        ImportRoot(str(project / "src"), None, "demo.pth"),
        ImportRoot(str(project / "libs/a"), None, "again.pth"),
        ImportRoot(str(project / "libs/t/tool"), "tool", "finder.py"),
        ImportRoot(str(project / "libs/t/code"), "other", "finder.py"),
        ImportRoot(str(project / "libs/t/mod.py"), "mod", "finder.py"),
        ImportRoot(str(project / "libs/t/odd.py"), "single", "finder.py"),
        ImportRoot(str(project / "libs/t/code"), "other", "second_finder.py"),
        ImportRoot(str(project / "libs/t/tool"), "pkg.sub", "finder.py"),
    ]

    redirect = plan_redirect(
        roots, str(project), str(project / ".venv"), fallback_roots=["src", "."]
    )

    assert redirect.entries == (
        ("libs/a", "a.pth"),
        ("src", "demo.pth"),
        ("libs/t", "finder.py"),
        (ALIAS_DIR, "finder.py"),
    )
    assert redirect.aliases == (
        ("other", "libs/t/code", "finder.py"),
        ("single.py", "libs/t/odd.py", "finder.py"),
    )
    assert redirect.fallback == (".",)
    [live] = redirect.live
    assert live.startswith(f"pkg.sub runs live from {project / 'libs/t/tool'}: finder.py maps")


def test_plan_redirect_compares_resolved_paths(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "lib").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    roots = [ImportRoot(str(tmp_path / "link" / "lib"), None, "lib.pth")]
    redirect = plan_redirect(roots, str(real), str(tmp_path / "venv"))
    assert redirect.entries == (("lib", "lib.pth"),)


# --- laying it out in a snapshot -----------------------------------------------------------


def test_lay_out_links_aliases_and_reports_what_is_not_there(tmp_path: Path) -> None:
    snapshot = tmp_path / "snap"
    (snapshot / "libs/t/code").mkdir(parents=True)
    (snapshot / "libs/a").mkdir(parents=True)
    write(snapshot / "libs/t/odd.py", "")
    redirect = Redirect(
        entries=(
            ("libs/a", "a.pth"),
            ("build/__editable__.t", "__editable__.t.pth"),
            (ALIAS_DIR, "finder.py"),
            ("libs/t", "finder.py"),
        ),
        aliases=(
            ("other", "libs/t/code", "finder.py"),
            ("single.py", "libs/t/odd.py", "finder.py"),
            ("gone", "libs/t/gone", "finder.py"),
        ),
        fallback=("src",),
        live=(),
    )

    layout = lay_out(redirect, snapshot)

    assert layout.python_path == ("libs/a", ALIAS_DIR, "libs/t", "src")
    aliases = snapshot / ALIAS_DIR
    assert sorted(os.listdir(aliases)) == ["other", "single.py"]
    assert os.readlink(aliases / "other") == "../../libs/t/code"
    assert (aliases / "single.py").resolve() == (snapshot / "libs/t/odd.py").resolve()
    assert layout.warnings == (
        "Code under libs/t/gone runs live, not from the snapshot: the env imports it from there"
        " (finder.py), but the snapshot does not hold it (ignored or excluded).",
        "Code under build/__editable__.t runs live, not from the snapshot: the env imports it"
        " from there (__editable__.t.pth), but the snapshot does not hold it (ignored or"
        " excluded).",
    )


def test_lay_out_failure_is_one_clear_error(tmp_path: Path) -> None:
    snapshot = tmp_path / "snap"
    (snapshot / "libs/code").mkdir(parents=True)
    write(snapshot / ALIAS_DIR, "not a directory")
    redirect = Redirect(((ALIAS_DIR, "f.py"),), (("other", "libs/code", "f.py"),), (), ())
    with pytest.raises(CopyError, match=r"^Cannot create '.*/\.snapshot/imports/other': "):
        lay_out(redirect, snapshot)


def test_lay_out_without_aliases_creates_nothing(tmp_path: Path) -> None:
    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    layout = lay_out(Redirect((), (), (".",), ()), snapshot)
    assert layout.python_path == (".",)
    assert layout.warnings == ()
    assert list(snapshot.iterdir()) == []


# --- the editable installs -----------------------------------------------------------------


def test_find_editables_from_the_env(tmp_path: Path) -> None:
    real = tmp_path / "real"
    project = tmp_path / "project"
    (real / "libs/inside/inside").mkdir(parents=True)
    project.symlink_to(real)
    outside = tmp_path / "outside"
    (outside / "outside").mkdir(parents=True)
    env = {"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path), "PATH": os.environ["PATH"]}
    git = ["git", "-C", str(outside), "-c", "user.name=T", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True, env=env)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "one"], check=True, env=env)
    site = tmp_path / "venv/lib/site-packages"
    write(site / "inside.pth", f"{project / 'libs/inside'}\n")
    write(site / "Legacy_Lib.egg-link", f"{tmp_path / 'gone'}\n.\n")
    installed = [
        Package("beta", "2.1"),
        Package("copied", "1.0", source_type="directory", source_url="/x", develop=False),
        Package(
            "inside",
            "1.0",
            source_type="directory",
            source_url=str(project / "libs/inside"),
            develop=True,
        ),
        Package("Outside", "1.0", source_type="directory", source_url=str(outside), develop=True),
        Package("demo", "0.1", source_type="directory", source_url=str(project), develop=True),
    ]
    fake_env = SimpleNamespace(purelib=site, platlib=site, path=tmp_path / "venv")

    found = find_editables(fake_env, installed, project, ["."])  # type: ignore[arg-type]

    names = [(e.name, e.in_project, e.snapshot_path) for e in found.installs]
    assert names == [
        ("demo", True, "."),
        ("inside", True, "libs/inside"),
        ("Legacy_Lib", False, None),
        ("Outside", False, None),
    ]
    legacy, outside_install = found.installs[2:]
    assert legacy.git is None  # its directory is gone: nothing to ask git
    assert outside_install.git is not None and not outside_install.git.dirty
    assert outside_install.to_json()["git"] == {
        "commit": outside_install.git.commit,
        "dirty": False,
    }
    assert found.redirect.entries == (("libs/inside", "inside.pth"),)
    assert found.redirect.fallback == (".",)
    assert found.warnings == (legacy.warning(), outside_install.warning())


def test_editable_install_json_and_warning() -> None:
    git = GitInfo("abc123", "main", None, True, False)
    install = EditableInstall("outlib", "/home/ada/outlib", False, None, git)
    assert install.to_json() == {
        "name": "outlib",
        "path": "/home/ada/outlib",
        "in_project": False,
        "snapshot_path": None,
        "git": {"commit": "abc123", "dirty": True},
    }
    assert install.warning() == (
        "outlib runs live from /home/ada/outlib: it is installed editable from outside the"
        " project, so the snapshot holds no copy of it (recorded in the manifest)."
    )
