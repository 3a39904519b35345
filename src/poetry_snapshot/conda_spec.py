"""conda MatchSpec strings: which package one selects, read the way conda reads it."""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def spec_name(spec: str) -> str | None:
    """The package name a conda MatchSpec string selects (`conda-forge::numpy>=1.2` -> numpy)."""
    spec = spec.strip()
    if not spec or spec.endswith("@"):
        return None  # conda's own history parser drops these (virtual "@" specs)
    for suffix in (".tar.bz2", ".conda"):
        if spec.endswith(suffix):  # a package file or URL: name-version-build.tar.bz2
            stem = spec.rsplit("/", 1)[-1][: -len(suffix)]
            parts = stem.rsplit("-", 2)
            return parts[0].lower() if len(parts) == 3 else None
    if "::" in spec:
        spec = spec.rsplit("::", 1)[1]
    match = _NAME.match(spec)
    return match.group(0).lower() if match else None
