"""Editable installs: where the env imports them from, and how a run imports the snapshot's copy.

An editable install leaves the code where it is and tells the interpreter where to find it:

- a `.pth` file in site-packages whose lines are directories, appended to `sys.path` after
  site-packages (Poetry writes `<name>.pth` for the project and poetry-core path dependencies;
  setuptools for src layouts and its strict mode; hatchling by default; legacy
  `setup.py develop` adds its line to `easy-install.pth`);
- a PEP 660 meta path finder that a `.pth` `import` line installs after the PathFinder:
  setuptools' `__editable___<name>_finder.py` maps top-level names to paths in `MAPPING`,
  the `editables` library (hatchling's dev-mode-exact) calls `map_module(name, file)`.

All of these are read as data: no `.pth` import line is executed, no finder is imported.
PYTHONPATH entries precede site-packages and everything the `.pth` files add in `sys.path`, and
the PathFinder, which walks `sys.path`, runs before the appended finders; so the counterparts
of the in-project roots, first on PYTHONPATH, are what `import` finds. Console scripts import
their module by name, so they follow. A finder that maps a name to a directory of another name
(`package-dir`) cannot be expressed by a PYTHONPATH entry: such names get a relative symlink in
the snapshot's `.snapshot/imports/`, which goes on PYTHONPATH at that finder's place.
"""

from __future__ import annotations

import ast
import locale
import os
from dataclasses import dataclass
from importlib.machinery import all_suffixes
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from poetry_snapshot.errors import CopyError
from poetry_snapshot.errors import quoted

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Iterator
    from collections.abc import Sequence

    from poetry.core.packages.package import Package
    from poetry.utils.env import Env

    from poetry_snapshot.snapshot.git_facts import GitInfo

ALIAS_DIR = ".snapshot/imports"


@dataclass(frozen=True)
class ImportRoot:
    """One place the env imports editable code from, as site-packages says."""

    path: str  # absolute; a directory, or a module file a finder maps
    name: str | None  # None: a sys.path directory; else the import name a finder maps to `path`
    origin: str  # the site-packages file that says so


@dataclass(frozen=True)
class EditableInstall:
    """A distribution installed editable, and whether the snapshot holds its source."""

    name: str
    path: str  # its source directory (PEP 610 `url`, or an `.egg-link`)
    in_project: bool
    snapshot_path: str | None  # relative to the snapshot, '/'-separated; "." for the project
    git: GitInfo | None  # only outside the project: the project's own git facts cover the rest

    def to_json(self) -> dict[str, Any]:
        git = None if self.git is None else {"commit": self.git.commit, "dirty": self.git.dirty}
        return {
            "name": self.name,
            "path": self.path,
            "in_project": self.in_project,
            "snapshot_path": self.snapshot_path,
            "git": git,
        }

    def warning(self) -> str:
        return (
            f"{self.name} runs live from {self.path}: it is installed editable from outside"
            " the project, so the snapshot holds no copy of it (recorded in the manifest)."
        )


@dataclass(frozen=True)
class Redirect:
    """What a run puts first on PYTHONPATH so that in-project editable code comes from the
    snapshot; every path is relative to the snapshot (= the project)."""

    entries: tuple[tuple[str, str], ...]  # (path, the file that put it there), in import order
    aliases: tuple[tuple[str, str, str], ...]  # (name in ALIAS_DIR, path it links to, origin)
    fallback: tuple[str, ...]  # the root project's package roots, when no .pth names them
    live: tuple[str, ...]  # warnings: in-project code that cannot be redirected


@dataclass(frozen=True)
class Editables:
    installs: tuple[EditableInstall, ...]
    redirect: Redirect

    @property
    def warnings(self) -> tuple[str, ...]:
        outside = tuple(e.warning() for e in self.installs if not e.in_project)
        return (*outside, *self.redirect.live)


@dataclass(frozen=True)
class Layout:
    """The redirect, laid out in a snapshot: the PYTHONPATH entries that exist there."""

    python_path: tuple[str, ...]  # relative to the snapshot
    warnings: tuple[str, ...]


def find_editables(
    env: Env,
    installed: Iterable[Package],
    project_dir: Path,
    fallback_roots: Sequence[str],
) -> Editables:
    """The env's editable installs and how to redirect the in-project ones to a snapshot.

    Relies on Poetry's InstalledRepository: a package it loads with `develop` set and source
    type "directory" is an editable install whose source directory is `source_url` (from
    PEP 610 `direct_url.json` `dir_info.editable`, or an old Poetry's `<name>.pth`).
    """
    from poetry_snapshot.snapshot.git_facts import read_git_info

    project = os.path.realpath(project_dir)
    site_dirs = _site_dirs(env)
    sources: dict[str, tuple[str, str]] = {}
    for package in installed:
        if package.develop and package.source_type == "directory" and package.source_url:
            sources.setdefault(package.name, (package.pretty_name, package.source_url))
    for name, path in read_egg_links(site_dirs):
        sources.setdefault(_canonical(name), (name, path))
    installs = []
    for name, path in sorted(sources.values(), key=lambda item: _canonical(item[0])):
        relative = _relative_within(os.path.realpath(path), project)
        git = None
        if relative is None and os.path.isdir(path):
            git = read_git_info(Path(path))
        installs.append(EditableInstall(name, path, relative is not None, relative, git))
    redirect = plan_redirect(
        read_import_roots(site_dirs), project, os.path.realpath(env.path), fallback_roots
    )
    return Editables(tuple(installs), redirect)


def read_import_roots(site_dirs: Sequence[str]) -> tuple[ImportRoot, ...]:
    """Every directory the `.pth` files add to sys.path, then every name their finders map,
    in the order the interpreter's `site` module processes them.

    As `site.addpackage`: files in sorted order, hidden ones skipped; `#` lines are comments;
    `import` lines would run (here: the finder module they import is parsed); any other line
    is a path, relative to the site dir, taken when it exists, once.
    """
    paths: list[ImportRoot] = []
    finders: list[ImportRoot] = []
    seen: set[str] = set()
    for site_dir, name in _site_files(site_dirs, ".pth"):
        if name.startswith("."):
            continue
        for line in _read_lines(os.path.join(site_dir, name)):
            if line.startswith("#") or not line.strip():
                continue
            if line.startswith(("import ", "import\t")):
                for module in _imported_modules(line):
                    finders.extend(_read_finder(site_dir, module))
                continue
            path = os.path.normpath(os.path.join(site_dir, line.rstrip()))
            key = os.path.normcase(path)
            if key not in seen and os.path.exists(path):
                seen.add(key)
                paths.append(ImportRoot(path, None, name))
    return (*paths, *finders)


def _site_files(site_dirs: Sequence[str], suffix: str) -> Iterator[tuple[str, str]]:
    """(site dir, file name) of each file named `*suffix`, dirs in order, names sorted."""
    for site_dir in site_dirs:
        try:
            names = sorted(os.listdir(site_dir))
        except OSError:
            continue
        for name in names:
            if name.endswith(suffix):
                yield site_dir, name


def parse_finder(source: str) -> list[tuple[str, str]]:
    """(import name, path) pairs a PEP 660 finder module maps, read from its source as data.

    setuptools: a module-level `MAPPING = {name: path}` (path: a package directory, or a
    module's path without suffix). `editables`: `<finder>.map_module(name, file)` calls (file:
    the package's `__init__.py`, or the module file), given here as the package directory or
    the module file.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    pairs: list[tuple[str, str]] = []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "MAPPING" for t in targets):
                pairs.extend(_literal_mapping(node.value))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            call = node.value
            func = call.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            strings = [
                a.value
                for a in call.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            ]
            if called == "map_module" and len(call.args) == len(strings) == 2:
                name, file = strings
                if os.path.basename(file) == "__init__.py":
                    file = os.path.dirname(file)
                pairs.append((name, file))
    return pairs


def _literal_mapping(node: ast.expr) -> list[tuple[str, str]]:
    try:
        mapping = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return []
    if not isinstance(mapping, dict):
        return []
    return [(k, v) for k, v in mapping.items() if isinstance(k, str) and isinstance(v, str)]


def read_egg_links(site_dirs: Sequence[str]) -> list[tuple[str, str]]:
    """(distribution name, source directory) of each legacy `setup.py develop` install."""
    found = []
    for site_dir, name in _site_files(site_dirs, ".egg-link"):
        lines = _read_lines(os.path.join(site_dir, name))
        if lines and lines[0].strip():
            path = os.path.normpath(os.path.join(site_dir, lines[0].strip()))
            found.append((name[: -len(".egg-link")], path))
    return found


def plan_redirect(
    roots: Iterable[ImportRoot],
    project: str,
    env_dir: str,
    fallback_roots: Sequence[str] = (),
) -> Redirect:
    """Map the import roots inside `project` (resolved) to their counterparts in a snapshot.

    Roots inside the env (a `.venv` in the project) are the env's own, never copied. A finder
    name whose path has that base name is served by the path's parent directory, as on
    sys.path (`__file__` then mirrors the live one); any other top-level name by an alias.
    """
    entries: dict[str, str] = {}  # path -> origin, first one wins, as on sys.path
    aliases: dict[str, tuple[str, str]] = {}  # name -> (path, origin), first finder wins
    live: list[str] = []
    for root in roots:
        real = os.path.realpath(root.path)
        relative = _relative_within(real, project)
        if relative is None or _relative_within(real, env_dir) is not None:
            continue
        if root.name is None:
            entries.setdefault(relative, root.origin)
        elif "." in root.name:
            live.append(
                f"{root.name} runs live from {root.path}: {root.origin} maps a subpackage,"
                " which PYTHONPATH cannot redirect to the snapshot."
            )
        elif _serves(os.path.basename(real), root.name):
            entries.setdefault(_parent(relative), root.origin)
        else:
            suffix = "" if os.path.isdir(real) else _suffix(os.path.basename(real))
            aliases.setdefault(root.name + suffix, (relative, root.origin))
            entries.setdefault(ALIAS_DIR, root.origin)
    fallback = tuple(r for r in dict.fromkeys(fallback_roots) if r not in entries)
    return Redirect(
        entries=tuple(entries.items()),
        aliases=tuple((name, path, origin) for name, (path, origin) in aliases.items()),
        fallback=fallback,
        live=tuple(live),
    )


def lay_out(redirect: Redirect, snapshot_dir: Path) -> Layout:
    """Create the aliases in `snapshot_dir` (staging, before publish) and keep the entries
    whose counterpart the snapshot holds; the others are code that runs live: say so."""
    alias_dir = os.path.join(snapshot_dir, ALIAS_DIR)
    warnings: list[str] = []
    for name, target, origin in redirect.aliases:
        if not os.path.exists(os.path.join(snapshot_dir, target)):
            warnings.append(_not_copied(target, origin))
            continue
        link = os.path.join(alias_dir, name)
        try:
            os.makedirs(alias_dir, exist_ok=True)
            os.symlink(os.path.relpath(target, ALIAS_DIR), link)
        except OSError as e:
            raise CopyError(
                f"Cannot create {quoted(link)}: {e.strerror}.",
                "Check the base directory's file system (it must allow symlinks).",
            ) from None
    python_path: list[str] = []
    for path, origin in redirect.entries:
        if path == ALIAS_DIR:
            if os.path.isdir(alias_dir):
                python_path.append(path)
        elif os.path.isdir(os.path.join(snapshot_dir, path)):
            python_path.append(path)
        else:
            warnings.append(_not_copied(path, origin))
    python_path.extend(redirect.fallback)
    return Layout(tuple(python_path), tuple(warnings))


def _not_copied(path: str, origin: str) -> str:
    return (
        f"Code under {path} runs live, not from the snapshot: the env imports it from there"
        f" ({origin}), but the snapshot does not hold it (ignored or excluded)."
    )


def _site_dirs(env: Env) -> list[str]:
    # Poetry installs into purelib and platlib (its SitePackages), usually one directory.
    return list(dict.fromkeys(str(path) for path in (env.purelib, env.platlib)))


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError:
        return []
    try:  # as `site` reads them: UTF-8 (with BOM), else the locale's encoding
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode(locale.getpreferredencoding(False), "replace")
    return text.splitlines()


def _imported_modules(line: str) -> list[str]:
    try:
        tree = ast.parse(line.strip())
    except (SyntaxError, ValueError):
        return []
    return [
        alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names
    ]


def _read_finder(site_dir: str, module: str) -> list[ImportRoot]:
    file = os.path.join(site_dir, *module.split(".")) + ".py"
    lines = _read_lines(file)
    if not lines:
        return []
    roots = []
    for name, target in parse_finder("\n".join(lines)):
        path = _existing(os.path.join(site_dir, target))
        if path is not None:
            roots.append(ImportRoot(path, name, os.path.basename(file)))
    return roots


def _existing(path: str) -> str | None:
    """The directory or module file a finder finds at `path` (a module: without suffix)."""
    if os.path.isdir(path) or os.path.isfile(path):
        return path
    for suffix in all_suffixes():
        if os.path.isfile(path + suffix):
            return path + suffix
    return None


def _serves(base: str, name: str) -> bool:
    """Whether a sys.path entry holding `base` imports it as `name`."""
    return base == name or (base.startswith(name) and base[len(name) :] in all_suffixes())


def _suffix(base: str) -> str:
    for suffix in sorted(all_suffixes(), key=len, reverse=True):
        if base.endswith(suffix):
            return suffix
    return ""


def _parent(relative: str) -> str:
    return os.path.dirname(relative) or "."


def _relative_within(path: str, directory: str) -> str | None:
    """`path` relative to `directory` ('/'-separated, "." for itself), or None outside it."""
    if path == directory:
        return "."
    prefix = directory.rstrip(os.sep) + os.sep
    if not path.startswith(prefix):
        return None
    return path[len(prefix) :].replace(os.sep, "/")


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))
