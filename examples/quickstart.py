#!/usr/bin/env python3
"""Set everything up and run the example experiment from a snapshot.

Usage: `python3 examples/quickstart.py`.

Needs only Python 3.9+ and access to the package index. It creates `.venvs/quickstart` holding
Poetry with this plugin (as `poetry self add poetry-snapshot` would), installs the example
project's locked environment, proves it matches the lock, runs `train.py` from a snapshot, and
prints the environment.yml that `poetry env-export` writes for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "experiment"
sys.path.insert(0, str(ROOT))

from tests.run import ensure_venv  # noqa: E402  (the one venv bootstrap, shared with the tests)


def main() -> int:
    python = ensure_venv("quickstart", ["-e", "."])
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["POETRY_VIRTUALENVS_IN_PROJECT"] = (
        "true"  # the example's env lives in examples/experiment/.venv
    )
    steps = [
        ["sync"],
        ["snapshot", "--check"],
        ["snapshot", "--", "python", "train.py", "42"],
        ["env-export", "--format", "conda"],
    ]
    for step in steps:
        print(f"\n$ poetry {' '.join(step)}", flush=True)
        result = subprocess.run([str(python), "-m", "poetry", *step], cwd=EXAMPLE, env=env)
        if result.returncode != 0:
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
