"""`--deep --fetch`: download the locked files `--deep` could not find on this machine.

Through Poetry's own machinery, into the place Poetry's installer would put them: the package's
repository from the project's pool (Chooser._get_repository's rule) lists its links (a URL
dependency's link is its URL), Poetry's `Downloader` fetches one with Poetry's `Authenticator`
(credentials and certificates as configured for Poetry), and the file goes into the directory
`ArtifactCache.get_cache_directory_for_link` names for that link, so that a later `poetry sync`,
or an offline `--deep`, finds it. A download is kept only when its hash is the lock's: it is
written under a name of its own, hashed, then linked into place (never over an existing file),
and removed otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cleo.io.null_io import NullIO

from poetry_snapshot.errors import first_line
from poetry_snapshot.hashing import sha256_file

if TYPE_CHECKING:
    from collections.abc import Iterable

    from poetry.core.packages.package import Package
    from poetry.core.packages.utils.link import Link
    from poetry.poetry import Poetry
    from poetry.utils.authenticator import Authenticator
    from poetry.utils.cache import ArtifactCache

    from poetry_snapshot.check.artifacts import Candidate
    from poetry_snapshot.check.artifacts import Expectation


@dataclass(frozen=True)
class FetchOutcome:
    """What --fetch put into Poetry's cache, and why the rest is still missing."""

    paths: tuple[str, ...]
    failures: tuple[tuple[str, str], ...]  # (package, reason)


def fetch_missing(
    poetry: Poetry, expectations: Iterable[Expectation], cache: ArtifactCache
) -> FetchOutcome:
    from poetry.utils.authenticator import Authenticator

    # Executor.__init__ downloads through an Authenticator on Poetry's config, like this one.
    authenticator = Authenticator(poetry.config, NullIO())
    paths: list[str] = []
    failures: list[tuple[str, str]] = []
    for expectation in expectations:
        package = expectation.package
        missing = expectation.missing
        if not missing:
            continue
        try:
            links = _links(poetry, package, missing)
        except Exception as e:  # the index is unreachable, refuses us, or serves nonsense
            failures.append((package.name, f"--fetch cannot list its files: {first_line(e)}"))
            continue
        for candidate in missing:
            link = links.get(candidate.locked.name)
            if link is None:
                failures.append(
                    (package.name, f"--fetch: its source no longer offers {candidate.locked.name}")
                )
                continue
            try:
                paths.append(_download(link, candidate, cache, authenticator))
            except _Mismatch as e:
                failures.append((package.name, str(e)))
            except Exception as e:  # a network or disk failure: one line, as Poetry shows it
                failures.append(
                    (package.name, f"--fetch cannot download {link.filename}: {first_line(e)}")
                )
    return FetchOutcome(tuple(paths), tuple(failures))


class _Mismatch(Exception):
    """A downloaded file whose hash is not the lock's."""


def _links(poetry: Poetry, package: Package, missing: Iterable[Candidate]) -> dict[str, Link]:
    from poetry.core.packages.utils.link import Link

    urls = [c.url for c in missing if c.url is not None]
    if urls:
        # Executor._install: a URL dependency is its own link.
        return {Link(url).filename: Link(url) for url in urls}
    pool = poetry.pool
    # Chooser._get_repository: the package's source by name, else PyPI, else the first one.
    if package.source_type:
        repository = pool.repository(package.source_reference or "")
    elif pool.has_repository("pypi"):
        repository = pool.repository("pypi")
    else:
        repository = pool.repositories[0]
    return {link.filename: link for link in repository.find_links_for_package(package)}


def _download(
    link: Link, candidate: Candidate, cache: ArtifactCache, authenticator: Authenticator
) -> str:
    try:
        from poetry.utils.download import Downloader
    except ImportError:  # Poetry < 2.2
        from poetry.utils.helpers import Downloader  # type: ignore[no-redef]

    locked = candidate.locked
    if "/" in link.filename or "\\" in link.filename or link.filename.startswith("."):
        raise _Mismatch(f"--fetch: refusing the file name {link.filename!r}")
    directory = cache.get_cache_directory_for_link(link)
    final = directory / link.filename
    if final.exists():
        return str(final)  # Poetry (or another run) put it there meanwhile; it is hashed later
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{link.filename}.poetry-snapshot-{secrets.token_hex(8)}"
    try:
        downloader = Downloader(link.url, partial, authenticator)
        for _ in downloader.download_with_progress(chunk_size=1 << 16):
            pass
        digest = (
            sha256_file(partial)
            if locked.algorithm == "sha256"
            else _hexdigest(str(partial), locked.algorithm)
        )
        if digest != locked.digest:
            raise _Mismatch(
                f"--fetch: the downloaded {link.filename} does not have poetry.lock's"
                f" {locked.algorithm}; not kept"
            )
        # FileExistsError: the same file arrived meanwhile; it is hashed before it is trusted.
        with contextlib.suppress(FileExistsError):
            os.link(partial, final)
    finally:
        partial.unlink(missing_ok=True)  # only ever our own, randomly named file
    return str(final)


def _hexdigest(path: str, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()
