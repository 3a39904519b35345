"""Medians of whole-command wall times, and the table every benchmark prints."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def medians(commands: list[list[str]], cwd: Path, env: dict[str, str], runs: int) -> list[float]:
    """Median wall time of each command over `runs` rounds, after one warm-up round.

    The commands take turns within each round, so a slow spell of the machine (the disk here
    slows down for minutes after large deletes) falls on all of them alike, not on one.
    Only exit status 0 counts: a drifted or failing benchmark project is not a measurement.
    """
    times: list[list[float]] = [[] for _ in commands]
    for round_ in range(runs + 1):
        for argv, samples in zip(commands, times):
            # Write back what the previous command left in the page cache, so the disk's flush
            # is not charged to whichever command happens to run next.
            os.sync()
            start = time.perf_counter()
            result = subprocess.run(
                argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            elapsed = time.perf_counter() - start
            if result.returncode != 0:
                raise RuntimeError(
                    f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr.decode()}"
                )
            if round_:
                samples.append(elapsed)
    return [statistics.median(samples) for samples in times]


@dataclass
class Table:
    title: str
    rows: list[tuple[str, float, str, float, float | None]] = field(default_factory=list)

    def add(
        self,
        subject: str,
        seconds: float,
        baseline: str,
        baseline_seconds: float,
        target: float | None = None,
    ) -> None:
        self.rows.append((subject, seconds, baseline, baseline_seconds, target))

    def all_met(self) -> bool:
        return all(target is None or s / b <= target for _, s, _, b, target in self.rows)

    def print(self) -> None:
        print(f"\n{self.title}\n")
        print("| measured | median | baseline | median | ratio | target |")
        print("|---|---:|---|---:|---:|---|")
        for subject, seconds, baseline, base, target in self.rows:
            ratio = seconds / base
            verdict = (
                "" if target is None else f"≤ {target:g}× {'met' if ratio <= target else 'NOT met'}"
            )
            print(
                f"| {subject} | {seconds:.3f} s | {baseline} | {base:.3f} s"
                f" | {ratio:.2f}× | {verdict} |"
            )
