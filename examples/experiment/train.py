"""Train the toy model and say where its code came from.

Run it from a snapshot: `poetry snapshot -- python train.py [seed]`.
"""

from __future__ import annotations

import os
import sys

import experiment
from experiment.model import fit_line
from experiment.model import make_data
from tabulate import tabulate


def main() -> int:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    xs, ys = make_data(seed)
    slope, intercept = fit_line(xs, ys)
    print(
        tabulate(
            [["slope", slope], ["intercept", intercept]],
            headers=["parameter", "estimate"],
            floatfmt=".4f",
        )
    )
    print(f"code loaded from: {experiment.__file__}")
    print(f"snapshot: {os.environ.get('POETRY_SNAPSHOT_ID', '(none: not run by poetry snapshot)')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
