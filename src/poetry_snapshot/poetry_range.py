"""Which Poetry this plugin runs in: the range its installed metadata declares, one source of
truth with pyproject.toml's `poetry>=2.0,<3`."""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement
from packaging.version import InvalidVersion
from packaging.version import Version

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

DISTRIBUTION = "poetry-snapshot"


def declared_range() -> SpecifierSet | None:
    """The `poetry` requirement of the installed distribution's Requires-Dist, or None when the
    metadata cannot say (a source tree that was never installed)."""
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return None
    for line in requires:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.name == "poetry" and (
            requirement.marker is None or requirement.marker.evaluate({"extra": ""})
        ):
            return requirement.specifier
    return None


def incompatibility(poetry_version: str, supported: SpecifierSet | None) -> str | None:
    """The one line to print when `poetry_version` lies outside `supported`, else None.

    A version that is not PEP 440 (a patched build) is given the benefit of the doubt, and a
    pre-release inside the range (2.6.0b1) is in it.
    """
    if supported is None:
        return None
    try:
        version = Version(poetry_version)
    except InvalidVersion:
        return None
    if supported.contains(version, prereleases=True):
        return None
    from poetry_snapshot import __version__

    shown = ",".join(sorted(map(str, supported), key=lambda spec: not spec.startswith(">")))
    too_old = any(
        not spec.contains(version, prereleases=True)
        for spec in supported
        if spec.operator in (">=", ">", "~=", "==")
    )
    if too_old:
        fix = "Upgrade Poetry (`poetry self update`)"
    else:
        fix = (
            "Install a poetry-snapshot release made for it"
            f" (`poetry self add poetry-snapshot@latest`) or a Poetry {shown}"
        )
    return (
        f"poetry-snapshot {__version__} needs Poetry {shown}, not {poetry_version}: its"
        f" commands (snapshot, env-export) are not loaded. {fix}."
    )
