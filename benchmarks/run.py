#!/usr/bin/env python3
"""Run every benchmark: `python3 benchmarks/run.py [name ...]` (names: check, copy, snapshot).

Uses the test venv with the newest Poetry (built by tests/run.py on first use). Each benchmark
prints medians and ratios against its baseline, measured in the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.run import POETRY_RANGE  # noqa: E402
from tests.run import ensure_venv  # noqa: E402

BENCHMARKS = {"check": "bench_check.py", "copy": "bench_copy.py", "snapshot": "bench_snapshot.py"}


def main(names: list[str]) -> int:
    name, poetry = POETRY_RANGE[0]
    python = ensure_venv(name, ["-e", ".", "--group", "test", poetry])
    # A user's plugin runs from bytecode: pip compiles on install, and Python caches it on the
    # first import. This checkout may have none (PYTHONDONTWRITEBYTECODE is set on the dev
    # machine and in the tests' env), and recompiling ~7,000 lines would be timed in every run.
    subprocess.run([str(python), "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    status = 0
    for bench in names or list(BENCHMARKS):
        script = ROOT / "benchmarks" / BENCHMARKS[bench]
        if not script.exists():
            continue
        print(f"--- {bench}", flush=True)
        status |= subprocess.run([str(python), str(script)], cwd=ROOT, env=env).returncode
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
