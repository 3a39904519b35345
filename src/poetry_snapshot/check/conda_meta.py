"""What a conda prefix holds and what its user asked for, read from `conda-meta/` without conda.

conda keeps one JSON record per installed package in `<prefix>/conda-meta/`
(`{name}-{version}-{build}.json`, with at least `name`, `version`, `build` and `channel`, and
`files`: the paths it installed, relative to the prefix), and
appends every transaction to `<prefix>/conda-meta/history`:

    ==> 2024-05-01 10:00:00 <==
    # cmd: /opt/conda/bin/conda create -n exp python=3.11 cuda-toolkit
    # conda version: 24.3.0
    +conda-forge/linux-64::python-3.11.9-hb806964_0_cpython
    # update specs: ['python=3.11', 'cuda-toolkit']

The packages a user explicitly asked for are replayed from those `# ... specs:` lines the way
conda's own `History.get_requested_specs_map()` does (what `conda env export --from-history`
prints): `update`/`install`/`create` specs add or replace a name, `remove`/`uninstall` specs drop
it, `neutered` specs replace it, only blocks with a `# cmd:` line count, and names no longer
installed are dropped.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from poetry_snapshot.conda_spec import spec_name
from poetry_snapshot.errors import CondaMetaError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path


@dataclass(frozen=True)
class CondaPackage:
    """One installed conda package, as its `conda-meta/*.json` record describes it."""

    name: str
    version: str
    build: str
    channel: str
    files: tuple[str, ...] = ()  # what it installed, relative to the prefix

    @property
    def exact_spec(self) -> str:
        """The MatchSpec that selects exactly this build: `name=version=build`."""
        return f"{self.name}={self.version}={self.build}"


@dataclass(frozen=True)
class CondaPrefix:
    """A conda prefix: its installed packages and the names its user explicitly requested."""

    path: Path
    packages: tuple[CondaPackage, ...]
    requested: tuple[str, ...]

    def package(self, name: str) -> CondaPackage | None:
        wanted = name.lower()
        return next((p for p in self.packages if p.name == wanted), None)


def find_conda_prefix(candidates: Iterable[Path]) -> Path | None:
    """The first candidate that is a conda prefix: conda marks its prefixes with `conda-meta/`."""
    for candidate in candidates:
        if (candidate / "conda-meta").is_dir():
            return candidate
    return None


def read_conda_prefix(prefix: Path) -> CondaPrefix:
    meta = prefix / "conda-meta"
    packages: dict[str, CondaPackage] = {}
    for record in sorted(meta.glob("*.json")):
        package = _read_record(record)
        packages[package.name] = package
    try:
        history = (meta / "history").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        history = ""  # a prefix conda never wrote a transaction into (e.g. unpacked)
    except OSError as e:
        raise CondaMetaError(f"Cannot read {meta / 'history'}: {e.strerror or e}.") from None
    requested = tuple(name for name in requested_names(history) if name in packages)
    return CondaPrefix(
        path=prefix,
        packages=tuple(packages[name] for name in sorted(packages)),
        requested=requested,
    )


def _read_record(path: Path) -> CondaPackage:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CondaMetaError(
            f"Cannot read conda record {path}: {e}.",
            "Repair the conda environment (`conda install --force-reinstall` of that package).",
        ) from None
    fields = {}
    for key in ("name", "version", "build"):
        value = data.get(key) if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise CondaMetaError(
                f"Conda record {path} has no {key!r}.",
                "Repair the conda environment (`conda install --force-reinstall` of that package).",
            )
        fields[key] = value
    channel = data.get("channel")
    files = data.get("files")
    return CondaPackage(
        name=fields["name"].lower(),
        version=fields["version"],
        build=fields["build"],
        channel=channel if isinstance(channel, str) else "",
        files=tuple(f for f in files if isinstance(f, str)) if isinstance(files, list) else (),
    )


_BLOCK = re.compile(r"==>\s*(.+?)\s*<==")
_CMD = re.compile(r"#\s*cmd:\s*(.+)")
_SPECS = re.compile(r"#\s*(\w+)\s*specs:\s*(.+)?")
_VERSION_RELATION = re.compile(r"^(=|==|>=|<=|>|<|!=|~=)")
_ACTIONS = {
    "update": "update",
    "install": "update",
    "create": "update",
    "remove": "remove",
    "uninstall": "remove",
    "neutered": "neutered",
}


def requested_names(history: str) -> list[str]:
    """The names of the packages the history says the user asked for, in request order."""
    requested: dict[str, None] = {}  # ordered set
    for comments in _blocks(history):
        if not any(_CMD.match(line) for line in comments):
            continue  # conda's get_user_requests() skips blocks without a command
        by_action: dict[str, list[str]] = {"remove": [], "update": [], "neutered": []}
        for line in comments:
            match = _SPECS.match(line)
            if match:
                action = _ACTIONS.get(match.group(1))
                if action is not None:
                    specs = (spec_name(s) for s in _specs(match.group(2) or ""))
                    by_action[action].extend(name for name in specs if name)
        # Within one transaction conda applies removals, then updates, then neutered specs.
        for name in by_action["remove"]:
            requested.pop(name, None)
        for name in by_action["update"] + by_action["neutered"]:
            requested.pop(name, None)
            requested[name] = None
    return list(requested)


def _blocks(history: str) -> list[list[str]]:
    blocks: list[list[str]] = []
    for raw in history.splitlines():
        line = raw.strip()
        if _BLOCK.match(line):
            blocks.append([])
        elif line.startswith("#") and blocks:
            blocks[-1].append(line)
    return blocks


def _specs(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("["):
        # conda >= 4.5 writes a Python list repr (`['a', 'b']`); 4.4 wrote JSON. Both parse here.
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return []
        return [s for s in value if isinstance(s, str)] if isinstance(value, list) else []
    # conda < 4.5: "python>=3.5.1,jupyter >=1.0.0,<2.0" - a part that starts with a version
    # relation continues the previous spec.
    specs: list[str] = []
    for part in text.split(","):
        if _VERSION_RELATION.match(part.strip()) and specs:
            specs[-1] = f"{specs[-1]},{part}"
        else:
            specs.append(part)
    return specs
