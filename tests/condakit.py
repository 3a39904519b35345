"""Conda things for the tests: `conda-meta/` in conda's own format, and conda-lock's parser.

conda-meta records and the history file are written as conda writes them (PrefixRecord JSON,
`==> date <==` blocks with `# cmd:`, `+channel/subdir::dist` lines and `# update specs: [...]`),
so the exporter is tested against the format, not against our own reader.

conda-lock cannot share a virtualenv with Poetry >= 2.3 (conda-lock 3.x and 4.x pin
dulwich < 0.25, Poetry 2.3+ needs dulwich >= 0.25), so its parser runs in its own virtualenv:
POETRY_SNAPSHOT_CONDA_LOCK_PYTHON names an interpreter that has it, else `.venvs/conda-lock`,
which tests/run.py prepares with the other venvs (tests themselves never touch the network).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).parents[1]


def write_conda_prefix(
    prefix: Path,
    packages: dict[str, tuple[str, str]],
    history: list[tuple[str, list[str], dict[str, list[str]]]],
    channel: str = "conda-forge",
    subdir: str = "linux-64",
) -> Path:
    """conda-meta/ for `packages` {name: (version, build)} and history blocks.

    Each history block is (command line, [names linked in it], {action: [specs]}), written as
    conda >= 4.5 writes it.
    """
    meta = prefix / "conda-meta"
    meta.mkdir(parents=True, exist_ok=True)
    for name, (version, build) in packages.items():
        dist = f"{name}-{version}-{build}"
        record = {
            "build": build,
            "build_number": 0,
            "channel": f"https://conda.anaconda.org/{channel}/{subdir}",
            "constrains": [],
            "depends": [],
            "extracted_package_dir": f"/opt/conda/pkgs/{dist}",
            "features": "",
            "files": [],
            "fn": f"{dist}.conda",
            "license": "MIT",
            "link": {"source": f"/opt/conda/pkgs/{dist}", "type": 1},
            "md5": "0" * 32,
            "name": name,
            "package_tarball_full_path": f"/opt/conda/pkgs/{dist}.conda",
            "paths_data": {"paths": [], "paths_version": 1},
            "requested_spec": "",
            "sha256": "0" * 64,
            "size": 1,
            "subdir": subdir,
            "timestamp": 1700000000000,
            "track_features": "",
            "url": f"https://conda.anaconda.org/{channel}/{subdir}/{dist}.conda",
            "version": version,
        }
        (meta / f"{dist}.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    lines = []
    for number, (cmd, linked, specs) in enumerate(history):
        lines.append(f"==> 2024-05-0{number + 1} 10:00:00 <==")
        lines.append(f"# cmd: /opt/conda/bin/conda {cmd}")
        lines.append("# conda version: 24.3.0")
        for name in linked:
            version, build = packages[name]
            lines.append(f"+{channel}/{subdir}::{name}-{version}-{build}")
        for action in ("remove", "update", "neutered"):
            if action in specs:
                lines.append(f"# {action} specs: {specs[action]!r}")
    (meta / "history").write_text("\n".join(lines) + "\n")
    return prefix


def conda_lock_python() -> str:
    """The interpreter holding conda-lock: prepared by tests/run.py, never installed by a test."""
    configured = os.environ.get("POETRY_SNAPSHOT_CONDA_LOCK_PYTHON")
    if configured:
        return configured
    python = REPO / ".venvs" / "conda-lock" / "bin" / "python"
    if not python.exists():
        pytest.skip("conda-lock's venv is missing: run `python3 tests/run.py` once to create it")
    return str(python)


_PARSE = """
import json, sys, pathlib
from conda_lock.src_parser.environment_yaml import parse_environment_file
env_file, mapping, platform = sys.argv[1:4]
spec = parse_environment_file(pathlib.Path(env_file), [platform], mapping_url=mapping)
deps = []
for dep in spec.dependencies[platform]:
    deps.append({
        "name": dep.name,
        "manager": dep.manager,
        "kind": type(dep).__name__,
        "version": getattr(dep, "version", None),
        "build": getattr(dep, "build", None),
        "hash": getattr(dep, "hash", None),
        "markers": dep.markers,
    })
print(json.dumps({"channels": [c.url for c in spec.channels], "dependencies": deps}))
"""


def parse_with_conda_lock(env_file: Path, platform: str = "linux-64") -> dict[str, Any]:
    """conda-lock's own environment.yml parser's reading of the file (raises if it rejects it)."""
    mapping = env_file.parent / "empty-pypi-mapping.json"
    # conda-lock maps PyPI names to conda names with a table it downloads; no network here,
    # and no name in these tests needs mapping.
    mapping.write_text("{}")
    result = subprocess.run(
        [conda_lock_python(), "-c", _PARSE, str(env_file), str(mapping), platform],
        capture_output=True,
        text=True,
        timeout=300,
    )
    mapping.unlink()
    if result.returncode != 0:
        raise AssertionError(f"conda-lock rejected {env_file}:\n{result.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(result.stdout)
    return data
