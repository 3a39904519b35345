"""`--deep`: the locked files a distribution may have been installed from, found offline where
Poetry keeps them.

poetry.lock lists, for each package from an index or a URL, the files it allows (name and
sha256). Poetry's installer (`Executor._download`, `_download_link`) asks its `Chooser` for the
best of them for the env, downloads it into its artifact cache (`ArtifactCache`, under
`cache-dir`/artifacts, one directory per link URL and hash) and checks its hash against the
lock; an sdist is built into a wheel in the same directory. Then it installs that wheel. So the
cache holds what Poetry installed, and nothing here needs the network:

- which files: Poetry's own `Chooser`, fed the lock's files instead of an index page, picks the
  file Poetry installs in this env; every other locked wheel this env supports is allowed as
  well (which one wins depends on the env's tag order, which a system upgrade can change), and
  a locked sdist only when Poetry picks it or its cache holds Poetry's build of it (a compiled
  package reinstalled from its sdist as the pure-Python fallback is not what Poetry installs);
- where: a URL dependency's file lies in the cache directory `ArtifactCache` derives from its
  URL; a file dependency is its path; an index's file URL is on the index page only, so the
  cache directories are listed once and searched by file name (each found file's hash is
  checked against the lock before it is trusted, by the caller).

Directory and git dependencies are built from source: the lock pins no file for them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import quote

# Only imported by `--deep`, which needs Poetry's repositories anyway.
from poetry.repositories.repository import Repository

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping
    from concurrent.futures import Executor

    from poetry.config.config import Config
    from poetry.core.packages.package import Package
    from poetry.core.packages.utils.link import Link
    from poetry.utils.env import Env

# Where the links the Chooser ranks "come from": never fetched, only a carrier for the file name
# and the locked hash (the Chooser reads both from the link).
_LOCKED_URL = "https://poetry.lock.invalid/"


@dataclass(frozen=True)
class LockedFile:
    """A file poetry.lock allows for a package: its name and `algorithm:hexdigest`."""

    name: str
    hash: str

    @property
    def algorithm(self) -> str:
        return self.hash.partition(":")[0]

    @property
    def digest(self) -> str:
        return self.hash.partition(":")[2]

    @property
    def is_wheel(self) -> bool:
        return self.name.endswith(".whl")


@dataclass(frozen=True)
class Candidate:
    """A locked file the installed distribution may be, and where it is on this machine."""

    locked: LockedFile
    path: str | None = None  # the file, when it is here
    others: tuple[str, ...] = ()  # more files of that name in the cache (another index's)
    built: str | None = None  # for an sdist: the wheel Poetry built from it (in the cache)
    url: str | None = None  # a URL dependency's link, for --fetch
    sdist_needs_build: bool = False  # an sdist allowed only through Poetry's build of it


@dataclass(frozen=True)
class Expectation:
    """What a locked distribution must be: one of its candidates, in Poetry's order of
    preference; or, when the lock pins no file for it, why not (`unpinned`)."""

    package: Package
    candidates: tuple[Candidate, ...] = ()
    unpinned: str | None = None

    @property
    def missing(self) -> tuple[Candidate, ...]:
        """Locked wheels this env could hold that are not on this machine: what --fetch
        downloads (a downloaded sdist proves nothing without Poetry's build of it)."""
        return tuple(c for c in self.candidates if c.path is None and c.locked.is_wheel)


class ArtifactFinder:
    """Finds, offline, the locked files of the locked distributions."""

    def __init__(self, env: Env, config: Config) -> None:
        from poetry.utils.cache import ArtifactCache

        self._env = env
        self._config = config
        self.cache_dir = str(config.artifacts_cache_directory)
        # Executor.__init__ builds its cache exactly so.
        self.cache = ArtifactCache(cache_dir=config.artifacts_cache_directory)
        self._found: dict[str, list[str]] = {}

    def expect(
        self, packages: Iterable[Package], pool: Executor | None = None
    ) -> dict[str, Expectation]:
        """What each package must be, its locked files located (the cache walked in `pool`)."""
        planned = {package.name: self._plan(package) for package in packages}
        wanted = {
            c.locked.name
            for e in planned.values()
            for c in e.candidates
            if c.path is None and c.url is None
        } - set(self._found)
        if wanted:
            self._found.update(_cached_files(self.cache_dir, wanted, pool))
            self._found.update((name, []) for name in wanted - set(self._found))
        return {name: self._locate(e) for name, e in planned.items()}

    def add(self, path: str) -> None:
        """A file --fetch has put into the cache."""
        self._found.setdefault(os.path.basename(path), []).insert(0, path)

    def _plan(self, package: Package) -> Expectation:
        kind = package.source_type
        if kind == "directory":
            return Expectation(package, unpinned="built from a directory: poetry.lock pins no file")
        if kind == "git":
            commit = (package.source_resolved_reference or "")[:12]
            return Expectation(
                package,
                unpinned=f"built from git commit {commit}: poetry.lock pins no file",
            )
        files = _locked_files(package)
        if kind == "file":
            return self._local_file(package, files)
        if kind == "url":
            return self._url_file(package, files)
        if not files:
            return Expectation(package, unpinned="poetry.lock lists no files with hashes for it")
        return Expectation(package, tuple(self._ranked(package, files)))

    def _local_file(self, package: Package, files: list[LockedFile]) -> Expectation:
        path = package.source_url or ""
        name = os.path.basename(path)
        locked = next((f for f in files if f.name == name), None)
        if locked is None:
            return Expectation(package, unpinned=f"poetry.lock lists no hash for {path}")
        if not locked.is_wheel:
            # Executor._prepare_archive builds a local sdist into a temporary directory.
            return Expectation(
                package,
                unpinned=f"built from the sdist {path}; Poetry keeps no build of it",
            )
        return Expectation(package, (Candidate(locked, path=path),))

    def _url_file(self, package: Package, files: list[LockedFile]) -> Expectation:
        from poetry.core.packages.utils.link import Link

        # Executor._install: a URL dependency is downloaded through `Link(source_url)`.
        link = Link(package.source_url or "")
        locked = next((f for f in files if f.name == link.filename), None)
        if locked is None:
            return Expectation(package, unpinned=f"poetry.lock lists no hash for {link.url}")
        directory = str(self.cache.get_cache_directory_for_link(link))
        path = os.path.join(directory, link.filename)
        candidate = Candidate(locked, url=link.url)
        if os.path.isfile(path):
            candidate = replace(candidate, path=path)
            if not locked.is_wheel:
                candidate = replace(candidate, built=self._build_beside(path, package))
        return Expectation(package, (candidate,))

    def _ranked(self, package: Package, files: list[LockedFile]) -> list[Candidate]:
        from poetry.utils.wheel import Wheel

        chosen = self._choose(package, files)
        ranked: list[Candidate] = []
        if chosen is not None:
            ranked.append(Candidate(chosen))
        if chosen is None or chosen.is_wheel:
            tags = self._env.supported_tags
            supported = []
            for file in files:
                if not file.is_wheel or file == chosen:
                    continue
                wheel = Wheel(file.name)
                if wheel.is_supported_by_environment(self._env):
                    supported.append(
                        (wheel.get_minimum_supported_index(tags) or 0, file.name, file)
                    )
            ranked.extend(Candidate(file) for _, _, file in sorted(supported))
        ranked.extend(
            Candidate(file, sdist_needs_build=True)
            for file in files
            if not file.is_wheel and file != chosen
        )
        return ranked

    def _choose(self, package: Package, files: list[LockedFile]) -> LockedFile | None:
        """The file Poetry's Chooser installs here, given only the lock's files."""
        from poetry.installation.chooser import Chooser
        from poetry.repositories.repository_pool import RepositoryPool

        # Chooser._get_repository: the package's source by name, else PyPI or the first one.
        name = package.source_reference if package.source_type else "pypi"
        pool = RepositoryPool([_LockedLinks(name or "pypi", files)])
        try:
            link = Chooser(pool, self._env, self._config).choose_for(package)
        except Exception:  # RuntimeError or PoetryRuntimeError: no file Poetry installs here
            return None
        return next((f for f in files if f.name == link.filename), None)

    def _locate(self, expectation: Expectation) -> Expectation:
        if not expectation.candidates:
            return expectation
        located = []
        for candidate in expectation.candidates:
            if candidate.path is None and candidate.url is None:
                paths = self._found.get(candidate.locked.name, [])
                if paths:
                    path = paths[0]
                    built = None
                    if not candidate.locked.is_wheel:
                        built = self._build_beside(path, expectation.package)
                        if candidate.sdist_needs_build and built is None:
                            continue
                    others = tuple(paths[1:])
                    candidate = replace(candidate, path=path, others=others, built=built)
                elif candidate.sdist_needs_build:
                    continue
            located.append(candidate)
        return replace(expectation, candidates=tuple(located))

    def _build_beside(self, sdist: str, package: Package) -> str | None:
        """The wheel Poetry built from `sdist`: Executor._download_link builds into the sdist's
        cache directory, and ArtifactCache (non-strict) then prefers the best supported wheel
        there over the sdist."""
        from packaging.utils import canonicalize_name
        from poetry.utils.wheel import InvalidWheelNameError
        from poetry.utils.wheel import Wheel

        directory = os.path.dirname(sdist)
        best: tuple[int, str] | None = None
        try:
            names = os.listdir(directory)
        except OSError:
            return None
        for name in names:
            if not name.endswith(".whl"):
                continue
            try:
                wheel = Wheel(name)
            except InvalidWheelNameError:
                continue
            if canonicalize_name(wheel.name) != package.name:
                continue
            if not wheel.is_supported_by_environment(self._env):
                continue
            rank = wheel.get_minimum_supported_index(self._env.supported_tags) or 0
            if best is None or (rank, name) < best:
                best = (rank, name)
        return None if best is None else os.path.join(directory, best[1])


def _locked_files(package: Package) -> list[LockedFile]:
    return [
        LockedFile(str(f["file"]), str(f["hash"]))
        for f in package.files
        if f.get("file") and ":" in str(f.get("hash", ""))
    ]


def _cached_files(
    root: str, wanted: set[str], pool: Executor | None = None
) -> Mapping[str, list[str]]:
    """The files named in `wanted` under the artifact cache, by name (sorted paths).

    ArtifactCache._get_directory_from_hash nests each link's directory four levels deep
    (`ab/cd/ef/<rest of the key>`); only directories are walked (no symlinks followed), and
    only the files at the fourth level are looked at, as Poetry only puts archives there. The
    first level's 256 subtrees are walked in `pool`'s threads (os.scandir releases the GIL):
    a cache of 20,000 archives takes some 60,000 directory listings.
    """
    tops = _directories(root)
    walk = functools.partial(_cached_below, wanted=wanted)
    found: dict[str, list[str]] = {}
    for below in pool.map(walk, tops) if pool is not None else map(walk, tops):
        for name, paths in below.items():
            found.setdefault(name, []).extend(paths)
    for paths in found.values():
        paths.sort()
    return found


def _cached_below(top: str, wanted: set[str]) -> dict[str, list[str]]:
    level = [top]
    for _ in range(3):
        level = [below for directory in level for below in _directories(directory)]
    found: dict[str, list[str]] = {}
    for directory in level:
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name in wanted and entry.is_file(follow_symlinks=False):
                        found.setdefault(entry.name, []).append(entry.path)
        except OSError:
            continue
    return found


def _directories(directory: str) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            return [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _link(file: LockedFile) -> Link:
    from poetry.core.packages.utils.link import Link

    return Link(f"{_LOCKED_URL}{quote(file.name)}#{file.algorithm}={file.digest}")


class _LockedLinks(Repository):
    """A repository whose only links are the lock's files, for the Chooser to rank."""

    def __init__(self, name: str, files: list[LockedFile]) -> None:
        super().__init__(name)
        self._links = [_link(f) for f in files]

    def find_links_for_package(self, package: Package) -> list[Link]:
        return list(self._links)
