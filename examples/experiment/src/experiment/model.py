"""Least squares on a line, with seeded data so every run of a snapshot gives the same answer."""

from __future__ import annotations

import random


def make_data(
    seed: int, n: int = 200, slope: float = 2.5, intercept: float = -1.0
) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    xs = [rng.uniform(0.0, 10.0) for _ in range(n)]
    ys = [slope * x + intercept + rng.gauss(0.0, 0.5) for x in xs]
    return xs, ys


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
    slope = sxy / sxx
    return slope, mean_y - slope * mean_x
