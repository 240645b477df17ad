"""Statistics over seeds: t intervals, the hierarchical bootstrap, two- and one-sample t-tests,
Holm's step-down adjustment and the minimum detectable effect (MDE).

The unit of replication is the GRPO seed: a condition's score is the mean of its seeds' scores,
and every test treats those seed scores as the sample. Item-level scores (one per benchmark
question) enter through the hierarchical bootstrap and as a floor on the seed-level variance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps


@dataclass(frozen=True)
class Comparison:
    """A difference with its t-based confidence interval and two-sided p-value."""

    diff: float
    lo: float
    hi: float
    p: float


NAN_COMPARISON = Comparison(np.nan, np.nan, np.nan, np.nan)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean: mean +/- t_{(1+c)/2, k-1} * s / sqrt(k); NaNs when k < 2."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return np.nan, np.nan
    half = sps.t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)


def two_sample(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Comparison:
    """mean(a) - mean(b) with Student's pooled-variance t-test (df = k_a + k_b - 2).

    NaNs unless both samples have at least two values.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size < 2 or b.size < 2:
        return NAN_COMPARISON
    res = sps.ttest_ind(a, b, equal_var=True)
    ci = res.confidence_interval(confidence)
    return Comparison(float(a.mean() - b.mean()), float(ci.low), float(ci.high), float(res.pvalue))


def one_sample(a: Sequence[float], reference: float, confidence: float = 0.95) -> Comparison:
    """mean(a) - reference with a one-sample t-test (df = k - 1), the reference taken as fixed.

    NaNs unless ``a`` has at least two values and the reference is finite.
    """
    a = np.asarray(a, dtype=float)
    if a.size < 2 or not np.isfinite(reference):
        return NAN_COMPARISON
    res = sps.ttest_1samp(a, popmean=reference)
    ci = res.confidence_interval(confidence)
    return Comparison(
        float(a.mean() - reference), float(ci.low - reference), float(ci.high - reference), float(res.pvalue)
    )


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN entries are left out of the family and stay NaN.

    With the m finite p-values sorted ascending, p_adj(i) = max_{j <= i} min(1, (m - j + 1) p(j)).
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(stepped, 1.0)
    return out


def hierarchical_bootstrap(
    values: Sequence[float],
    items: Sequence[np.ndarray | None],
    n_resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Bootstrap replicates of the mean over seeds, resampling seeds and then items within seeds.

    Each replicate draws k seeds with replacement; every drawn seed contributes its score shifted by
    the deviation of a fresh item resample's mean from its items' mean (so the replicates centre on
    the seed scores even when a metric is not exactly the mean of its items). A seed without items
    contributes its score unchanged (seed-level resampling only).
    """
    vals = np.asarray(values, dtype=float)
    k = vals.size
    pick = rng.integers(0, k, size=(n_resamples, k))
    reps = vals[pick]
    for s, its in enumerate(items):
        if its is None or its.size == 0:
            continue
        centre = its.mean()
        for slot in range(k):
            rows = np.flatnonzero(pick[:, slot] == s)
            draws = rng.integers(0, its.size, size=(rows.size, its.size))
            reps[rows, slot] += its[draws].mean(axis=1) - centre
    return reps.mean(axis=1)


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates; NaNs when any replicate is NaN."""
    if replicates.size == 0 or np.isnan(replicates).any():
        return np.nan, np.nan
    lo, hi = np.quantile(replicates, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def item_variance_of_score(items: np.ndarray | None) -> float:
    """Sampling variance of a seed's score from its items, var(items) / n_items; NaN without items."""
    if items is None or items.size < 2:
        return np.nan
    return float(items.var(ddof=1) / items.size)


def seed_sd(groups: Sequence[Sequence[float]], item_variances: Sequence[float]) -> float:
    """SD of one seed's score: sqrt(max(pooled seed-level variance, mean item sampling variance)).

    The seed-level variance already contains the item noise, so it cannot truly be below the item
    sampling variance; with few seeds it often is by chance, and the item term floors it. ``groups``
    are samples of seed scores (pooled with their degrees of freedom); NaN when no group has two
    values and no item variance is known.
    """
    arrays = [np.asarray(g, dtype=float) for g in groups]
    dof = sum(a.size - 1 for a in arrays if a.size >= 2)
    seed_var = sum(a.var(ddof=1) * (a.size - 1) for a in arrays if a.size >= 2) / dof if dof else np.nan
    iv = np.asarray(item_variances, dtype=float)
    iv = iv[np.isfinite(iv)]
    candidates = [v for v in (seed_var, iv.mean() if iv.size else np.nan) if np.isfinite(v)]
    return float(np.sqrt(max(candidates))) if candidates else np.nan


def t_test_power(ncp: float, df: float, alpha: float) -> float:
    """Power of a two-sided t-test at level ``alpha`` when the statistic is noncentral t(df, ncp).

    The lower tail P(T < -c | ncp) is computed as P(T > c | -ncp), which scipy evaluates stably.
    """
    crit = sps.t.ppf(1 - alpha / 2, df)
    return float(sps.nct.sf(crit, df, ncp) + sps.nct.sf(crit, df, -ncp))


def required_noncentrality(df: float, alpha: float, power: float) -> float:
    """The noncentrality at which a two-sided t-test with ``df`` reaches ``power`` (noncentral t)."""
    upper = 1.0
    while t_test_power(upper, df, alpha) < power:
        upper *= 2
    return float(optimize.brentq(lambda d: t_test_power(d, df, alpha) - power, 0.0, upper, xtol=1e-10))


def mde_two_sample(sd: float, n1: int, n2: int, alpha: float, power: float) -> float:
    """Smallest true difference the pooled two-sample t-test detects with ``power`` at ``alpha``.

    MDE = ncp* * sd * sqrt(1/n1 + 1/n2), ncp* solving the noncentral-t power equation at
    df = n1 + n2 - 2. NaN when either group has fewer than two seeds or sd is unknown.
    """
    if n1 < 2 or n2 < 2 or not np.isfinite(sd):
        return np.nan
    return required_noncentrality(n1 + n2 - 2, alpha, power) * sd * float(np.sqrt(1 / n1 + 1 / n2))


def mde_one_sample(sd: float, n: int, alpha: float, power: float) -> float:
    """Smallest true shift from a fixed reference the one-sample t-test detects (df = n - 1).

    MDE = ncp* * sd / sqrt(n); NaN when n < 2 or sd is unknown.
    """
    if n < 2 or not np.isfinite(sd):
        return np.nan
    return required_noncentrality(n - 1, alpha, power) * sd / float(np.sqrt(n))
