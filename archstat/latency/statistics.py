"""Summaries of repeated timings, and Spearman's rank correlation (no scipy needed).

A latency is reported as the median of repeated runs with its spread (inter-quartile
range, min, max), never as a single run or a mean alone: one slow run (a page
fault, another process) moves the mean but not the median.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Spread", "spread", "spearman", "ranks"]


@dataclass(frozen=True)
class Spread:
    """Median and spread of repeated measurements (same unit as the input)."""

    median: float
    p25: float
    p75: float
    min: float
    max: float
    mean: float
    std: float
    n: int

    @property
    def iqr(self) -> float:
        """Inter-quartile range ``p75 - p25``."""
        return self.p75 - self.p25


def spread(values: Sequence[float]) -> Spread:
    """Median, quartiles (linear interpolation), min, max, mean and sample std of ``values``."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        raise ValueError("no measurements to summarise")
    p25, median, p75 = np.percentile(a, [25, 50, 75])
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return Spread(float(median), float(p25), float(p75), float(a.min()), float(a.max()), float(a.mean()), std,
                  int(a.size))


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank (the convention of Spearman's rho)."""
    a = np.asarray(values, dtype=float)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    result = np.empty(a.size, dtype=float)
    start = 0
    while start < a.size:
        end = start
        while end + 1 < a.size and sorted_a[end + 1] == sorted_a[start]:
            end += 1
        result[order[start:end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return result


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: the Pearson correlation of the average ranks.

    Returns ``nan`` for fewer than three pairs or a constant series (undefined).
    """
    if len(x) != len(y):
        raise ValueError(f"spearman: {len(x)} x values but {len(y)} y values")
    if len(x) < 3:
        return float("nan")
    rx, ry = ranks(x), ranks(y)
    dx, dy = rx - rx.mean(), ry - ry.mean()
    denom = float(np.sqrt((dx * dx).sum() * (dy * dy).sum()))
    return float((dx * dy).sum() / denom) if denom else float("nan")
