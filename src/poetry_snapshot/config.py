"""`[tool.poetry-snapshot]` in pyproject.toml: validated once, unknown keys named."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from poetry_snapshot.errors import ConfigurationError

TABLE = "tool.poetry-snapshot"


@dataclass(frozen=True)
class SnapshotConfig:
    base_dir: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    link: bool = False
    conda: Mapping[str, Any] | None = None  # validated by the conda exporter

    @classmethod
    def from_pyproject(cls, pyproject: Mapping[str, Any]) -> SnapshotConfig:
        table = pyproject.get("tool", {}).get("poetry-snapshot", {})
        if not isinstance(table, Mapping):
            raise ConfigurationError(f"[{TABLE}] must be a table.", "Fix pyproject.toml.")
        known = {"base-dir", "include", "exclude", "link", "conda"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigurationError(
                f"Unknown key in [{TABLE}]: {', '.join(unknown)}.",
                f"Known keys: {', '.join(sorted(known))}.",
            )
        base_dir = table.get("base-dir")
        if base_dir is not None and not isinstance(base_dir, str):
            raise ConfigurationError(f"{TABLE}.base-dir must be a string.", "Fix pyproject.toml.")
        link = table.get("link", False)
        if not isinstance(link, bool):
            raise ConfigurationError(f"{TABLE}.link must be true or false.", "Fix pyproject.toml.")
        conda = table.get("conda")
        if conda is not None and not isinstance(conda, Mapping):
            raise ConfigurationError(f"[{TABLE}.conda] must be a table.", "Fix pyproject.toml.")
        return cls(
            base_dir=base_dir,
            include=_patterns(table, "include"),
            exclude=_patterns(table, "exclude"),
            link=link,
            conda=conda,
        )


def _patterns(table: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(
            f"{TABLE}.{key} must be a list of gitignore-style patterns.", "Fix pyproject.toml."
        )
    return tuple(value)
