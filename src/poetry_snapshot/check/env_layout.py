"""The directories of an environment that `--deep` reads, as real paths.

Symlinks are resolved once here, for the env and its few directories, so that the paths found by
walking them and the paths built from RECORD compare as plain strings; `--deep` compares many
thousands of them and never resolves a path per file.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from poetry.utils.env import Env


@dataclass(frozen=True)
class EnvLayout:
    """An env's prefix, site-packages directories and scripts directory."""

    prefix: str  # real path of the env
    shown_prefix: str  # the env's path as Poetry names it, for messages and `#!` lines
    site_dirs: tuple[str, ...]  # purelib first, then platlib and fallbacks: real, existing, unique
    scripts_dir: str | None  # real path; None when it does not exist
    python: tuple[int, int]  # the env's interpreter version

    @classmethod
    def of(cls, env: Env) -> EnvLayout:
        # SitePackages.candidates: purelib, platlib and the interpreter's other site dirs
        # (site.getsitepackages(), the user site when enabled), as Poetry's installer sees them.
        return cls.from_paths(
            prefix=str(env.path),
            site_dirs=[str(path) for path in env.site_packages.candidates],
            scripts_dir=str(env.script_dirs[0]),
            python=(env.version_info[0], env.version_info[1]),
        )

    @classmethod
    def from_paths(
        cls,
        prefix: str,
        site_dirs: Iterable[str],
        scripts_dir: str | None,
        python: tuple[int, int],
    ) -> EnvLayout:
        real_sites: list[str] = []
        for directory in site_dirs:
            real = os.path.realpath(directory)
            if real not in real_sites and os.path.isdir(real):
                real_sites.append(real)
        scripts = os.path.realpath(scripts_dir) if scripts_dir is not None else None
        return cls(
            prefix=os.path.realpath(prefix),
            shown_prefix=os.path.normpath(prefix),
            site_dirs=tuple(real_sites),
            scripts_dir=scripts if scripts is not None and os.path.isdir(scripts) else None,
            python=python,
        )

    @property
    def purelib(self) -> str | None:
        return self.site_dirs[0] if self.site_dirs else None

    @functools.cached_property
    def roots(self) -> tuple[str, ...]:
        """Where the env's files may be: its prefix, and site dirs outside it (a user site)."""
        roots = [self.prefix]
        for directory in (*self.site_dirs, self.scripts_dir):
            if directory is not None and not _under(directory, roots):
                roots.append(directory)
        return tuple(roots)

    @functools.cached_property
    def _inside(self) -> tuple[str, ...]:
        return tuple(root.rstrip(os.sep) + os.sep for root in self.roots)

    def contains(self, path: str) -> bool:
        """Whether the real path `path` lies in the env (called once per RECORD line)."""
        return path.startswith(self._inside) or path in self.roots

    def relative(self, path: str) -> str:
        """`path` relative to the env, as reports show it; absolute when outside the env."""
        if _under(path, (self.prefix,)):
            return os.path.relpath(path, self.prefix)
        return path

    def shown(self, path: str) -> str:
        """The real path `path` under the env's own name (what the user typed or sees)."""
        if _under(path, (self.prefix,)):
            return os.path.join(self.shown_prefix, os.path.relpath(path, self.prefix))
        return path


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


class RealDirectories:
    """Real paths of directories, one `lstat` per directory ever asked about.

    The parent of a RECORD entry may be a symlink (to somewhere outside the env, even); the
    file itself is examined with lstat when it is opened.
    """

    def __init__(self, known: Iterable[str]) -> None:
        self._real = {path: path for path in known}

    def real_path(self, path: str) -> str:
        """`path` (absolute, normalized) with every directory above it resolved."""
        parent, _, name = path.rpartition(os.sep)
        parent = parent or os.sep
        real = self.real_dir(parent)
        return path if real == parent or not name else os.path.join(real, name)

    def real_dir(self, directory: str) -> str:
        real = self._real.get(directory)
        if real is not None:
            return real
        parent, name = os.path.split(directory)
        if not name:
            real = directory  # the filesystem root
        else:
            candidate = os.path.join(self.real_dir(parent), name)
            real = os.path.realpath(candidate) if os.path.islink(candidate) else candidate
        self._real[directory] = real
        return real
