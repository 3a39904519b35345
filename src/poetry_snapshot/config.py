"""`[tool.poetry-snapshot]` in pyproject.toml: parsed and validated once, unknown keys named.

Every command reads the whole table through `SnapshotConfig.from_pyproject`, so a typo in it
is the same one-line error from `poetry snapshot` and from `poetry env-export`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from poetry_snapshot.conda_spec import spec_name
from poetry_snapshot.errors import ConfigurationError

TABLE = "tool.poetry-snapshot"
CONDA_TABLE = f"[{TABLE}.conda]"
_KEYS = ("base-dir", "include", "exclude", "link", "conda")
_CONDA_KEYS = ("channels", "dependencies")


@dataclass(frozen=True)
class CondaSettings:
    """The `[tool.poetry-snapshot.conda]` table: what conda, not pip, provides."""

    channels: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()  # conda MatchSpecs, one per package, in file order


@dataclass(frozen=True)
class SnapshotConfig:
    base_dir: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    link: bool = False
    conda: CondaSettings = field(default_factory=CondaSettings)

    @classmethod
    def from_pyproject(cls, pyproject: Mapping[str, Any]) -> SnapshotConfig:
        tool = pyproject.get("tool", {})
        table = tool.get("poetry-snapshot", {}) if isinstance(tool, Mapping) else {}
        if not isinstance(table, Mapping):
            raise ConfigurationError(f"[{TABLE}] must be a table.", "Fix pyproject.toml.")
        unknown = sorted(set(table) - set(_KEYS))
        if unknown:
            raise ConfigurationError(
                f"Unknown key in [{TABLE}]: {', '.join(unknown)}.",
                f"Known keys: {', '.join(sorted(_KEYS))}.",
            )
        base_dir = table.get("base-dir")
        if base_dir is not None and not isinstance(base_dir, str):
            raise ConfigurationError(f"{TABLE}.base-dir must be a string.", "Fix pyproject.toml.")
        link = table.get("link", False)
        if not isinstance(link, bool):
            raise ConfigurationError(f"{TABLE}.link must be true or false.", "Fix pyproject.toml.")
        return cls(
            base_dir=base_dir,
            include=_patterns(table, "include"),
            exclude=_patterns(table, "exclude"),
            link=link,
            conda=_conda(table.get("conda")),
        )


def _patterns(table: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(
            f"{TABLE}.{key} must be a list of gitignore-style patterns.", "Fix pyproject.toml."
        )
    return tuple(value)


def _conda(table: object) -> CondaSettings:
    if table is None:
        return CondaSettings()
    if not isinstance(table, Mapping):
        raise _invalid(f"{CONDA_TABLE} must be a table.")
    unknown = sorted(set(table) - set(_CONDA_KEYS))
    if unknown:
        raise _invalid(
            f"Unknown key {unknown[0]!r} in {CONDA_TABLE}.",
            f"Allowed keys: {', '.join(_CONDA_KEYS)}.",
        )
    channels = _string_list(table, "channels")
    for channel in channels:
        if any(c.isspace() for c in channel):
            raise _invalid(f"Channel {channel!r} in {CONDA_TABLE} contains whitespace.")
    if len(set(channels)) != len(channels):
        raise _invalid(f"{CONDA_TABLE} channels lists a channel twice.")
    dependencies = _string_list(table, "dependencies")
    seen: set[str] = set()
    for spec in dependencies:
        name = spec_name(spec)
        if name is None:
            raise _invalid(
                f"{spec!r} in {CONDA_TABLE} dependencies is not a conda package spec.",
                'Write specs as conda does, e.g. "cuda-toolkit=12.4" or "conda-forge::nodejs>=20".',
            )
        if name in ("python", "pip"):
            raise _invalid(
                f"{CONDA_TABLE} dependencies must not list {name}: it is pinned from the"
                " project environment.",
                f"Remove {spec!r}.",
            )
        if name in seen:
            raise _invalid(f"{CONDA_TABLE} dependencies lists {name} twice.")
        seen.add(name)
    return CondaSettings(channels=channels, dependencies=dependencies)


def _string_list(table: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _invalid(f"{CONDA_TABLE} {key} must be a list of strings.")
    items = tuple(item.strip() for item in value)
    if any(not item or "\n" in item or "\r" in item for item in items):
        raise _invalid(f"{CONDA_TABLE} {key} has an empty or multi-line entry.")
    return items


def _invalid(message: str, fix: str | None = None) -> ConfigurationError:
    return ConfigurationError(message, fix or f"Fix {CONDA_TABLE} in pyproject.toml.")
