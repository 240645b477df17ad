"""The 95 % intervals every benchmark and figure reports: a mean's and a proportion's.

One implementation of each, so that every number in an eval JSON and in the report means the
same thing: :func:`mean_ci` (normal approximation, sample sd) for means over items, and
:func:`wilson` (Wilson score) for shares of successes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

Z95 = NormalDist().inv_cdf(0.975)  # 1.959963984540054: two-sided 95 % normal quantile


def mean_ci(values: Sequence[float], bounds: tuple[float, float] | None = None) -> tuple[float | None, list[float]]:
    """Mean and normal-approximation 95 % interval, ``mean +/- Z95 * sd / sqrt(n)`` (sample sd, ddof 1).

    No values: ``(None, [nan, nan])``; one value: its value and ``[nan, nan]`` (no spread to
    estimate). ``bounds``: the range the quantity lives in (e.g. ``(0, 1)`` for pass@k); the
    interval is clipped to it.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return None, [math.nan, math.nan]
    mean = float(arr.mean())
    if arr.size < 2:
        return mean, [math.nan, math.nan]
    half = Z95 * float(arr.std(ddof=1)) / math.sqrt(arr.size)
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(bounds[0], lo), min(bounds[1], hi)
    return mean, [lo, hi]


def wilson(successes: int, n: int) -> list[float]:
    """Wilson score 95 % interval of a binomial proportion ``successes / n``; ``[nan, nan]`` when n = 0."""
    if not 0 <= successes <= n:
        raise ValueError(f"wilson: need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return [math.nan, math.nan]
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return [max(0.0, centre - half), min(1.0, centre + half)]


def rate(flags: Sequence[bool]) -> tuple[float | None, list[float]]:
    """Share of True among ``flags`` and its Wilson interval (``None, [nan, nan]`` when empty)."""
    k, n = sum(bool(f) for f in flags), len(flags)
    return (k / n if n else None), wilson(k, n)
