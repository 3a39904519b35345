#!/usr/bin/env python3
"""Run the whole test suite from a fresh checkout: `python3 tests/run.py [pytest args]`.

Needs only Python 3 (3.9+) and access to the package index. It creates two virtualenvs
under `.venvs/`, one per end of the Poetry range this plugin claims (`poetry>=2.0,<3`):
the newest Poetry 2.x the index offers, and the oldest, 2.0.0. Each gets this package
(editable) and the `test` dependency group, then runs the suite: the whole of it against the
newest Poetry, all but the tests marked `poetry_independent` against 2.0.0. The suite itself
never touches the network. Venvs are reused while pyproject.toml is unchanged.

On a Debian machine run as root, it also installs Slurm and munge from Debian's packages
(a few seconds, once): the Slurm tests start a real single-node cluster of their own
(tests/slurm_cluster.py). Elsewhere those tests skip, saying why; under CI=true they fail.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / ".venvs"
# (venv name, extra requirement pinning Poetry); the newest first: it is the one users get.
POETRY_RANGE = [("poetry-newest", "poetry>=2,<3"), ("poetry-2.0", "poetry==2.0.0")]
# conda-lock pins dulwich<0.25, which Poetry >= 2.3 cannot use: its parser gets its own venv.
CONDA_LOCK = ("conda-lock", "conda-lock>=3,<5")


def ensure_venv(name: str, requirements: list[str], *, project: bool = True) -> Path:
    """A venv under .venvs/ holding `requirements`; rebuilt when they (or, for venvs holding
    this project, pyproject.toml) change."""
    path = VENVS / name
    python = path / "bin" / "python"
    stamp = path / ".requirements-stamp"
    inputs = [*requirements, (ROOT / "pyproject.toml").read_text() if project else ""]
    wanted = hashlib.sha256("\n".join(inputs).encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"--- preparing {path.relative_to(ROOT)}", flush=True)
    venv.EnvBuilder(clear=True, with_pip=True).create(path)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-qq"]
    # pip >= 25.1 reads PEP 735 dependency groups (--group); the bundled pip may be older.
    subprocess.run([*pip, "install", "--upgrade", "pip>=25.1"], check=True)
    subprocess.run([*pip, "install", *requirements], check=True, cwd=ROOT)
    stamp.write_text(wanted)
    return python


def ensure_slurm() -> None:
    """Debian's slurm-wlm and munge, where this machine can install them (root, apt-get)."""
    import shutil

    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    sys.path.insert(0, str(ROOT))
    from tests.slurm_cluster import SlurmError
    from tests.slurm_cluster import install

    try:
        install()
    except SlurmError as e:  # the Slurm tests then say so (and fail under CI=true)
        print(f"--- Slurm could not be installed: {e}", flush=True)


def main(argv: list[str]) -> int:
    ensure_slurm()
    status = 0
    conda_lock = ensure_venv(CONDA_LOCK[0], [CONDA_LOCK[1]], project=False)
    for name, poetry in POETRY_RANGE:
        python = ensure_venv(name, ["-e", ".", "--group", "test", poetry])
        version = subprocess.run(
            [str(python), "-m", "poetry", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        args = list(argv)
        if name != POETRY_RANGE[0][0] and not any(a == "-m" or a.startswith("-m") for a in args):
            # Tests marked poetry_independent (the store, the copier, the kill loops) exercise
            # nothing that differs across the Poetry range: the newest Poetry's run covers them.
            args = ["-m", "not poetry_independent", *args]
        print(f"--- {version}: pytest {' '.join(args)}", flush=True)
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        env["POETRY_SNAPSHOT_CONDA_LOCK_PYTHON"] = str(conda_lock)
        result = subprocess.run(
            [str(python), "-m", "pytest", "-n", "auto", *args], cwd=ROOT, env=env
        )
        status = status or result.returncode
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
