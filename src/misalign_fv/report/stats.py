"""Statistics over seeds: t intervals, t-tests against the control and against the DPO checkpoint,
Holm's step-down adjustment and the minimum detectable effect (MDE).

The variance model of one benchmark metric. Every checkpoint answers the same n items, so a
checkpoint's score is

    y = mu + a + g,

with ``a`` the item set's own effect (which questions were drawn), identical for every checkpoint and
so cancelling in every difference between checkpoints, and ``g`` the checkpoint's own item-level
deviation (sampling of answers, the model's item-specific quirks), of variance sigma_g^2 / n. A GRPO
run adds a seed effect, mu = mu_condition + b_seed, so a seed score varies with variance
sigma_b^2 + sigma_g^2 / n: the seed is the unit of replication. sigma_g^2 is estimated *paired*,
from each item's spread across the seeds of one condition (the between-item variance never enters);
it floors the seed variance (which cannot truly be below it) and is the sampling variance of the
single DPO checkpoint's score, which the comparison with DPO carries. That comparison's degrees of
freedom come from the design's seed variance (pooled over every condition), not from the one arm's
own k - 1 df estimate, which would make the Welch-Satterthwaite df liberal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special
from scipy import stats as sps


@dataclass(frozen=True)
class Comparison:
    """A difference with its t-based confidence interval and two-sided p-value."""

    diff: float
    lo: float
    hi: float
    p: float


NAN_COMPARISON = Comparison(np.nan, np.nan, np.nan, np.nan)


@dataclass(frozen=True)
class Variance:
    """A variance estimate with its degrees of freedom (``inf`` for a known variance)."""

    value: float
    df: float


UNKNOWN = Variance(np.nan, np.nan)


def _t_quantile(df: float, q: float) -> float:
    """Student-t quantile (``sps.t.ppf(q, df)``, through the cheaper special function)."""
    return float(special.stdtrit(df, q))


def _two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value of a t statistic on ``df`` degrees of freedom."""
    return float(2 * special.stdtr(df, -abs(t)))


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean: mean +/- t_{(1+c)/2, k-1} * s / sqrt(k); NaNs when k < 2."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return np.nan, np.nan
    half = _t_quantile(x.size - 1, (1 + confidence) / 2) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)


def two_sample(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Comparison:
    """mean(a) - mean(b) with Student's pooled-variance t-test (df = k_a + k_b - 2).

    NaNs unless both samples have at least two values.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size < 2 or b.size < 2:
        return NAN_COMPARISON
    df = a.size + b.size - 2
    pooled = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / df
    se = float(np.sqrt(pooled * (1 / a.size + 1 / b.size)))
    diff = float(a.mean() - b.mean())
    if se == 0:
        return Comparison(diff, diff, diff, 1.0 if diff == 0 else 0.0)
    half = _t_quantile(df, (1 + confidence) / 2) * se
    return Comparison(diff, diff - half, diff + half, _two_sided_p(diff / se, df))


def welch_df(seed_var: float, k: int, reference: Variance) -> float:
    """Welch-Satterthwaite df of s^2/k + v, s^2 with k - 1 df and v with ``reference.df`` df.

    Evaluated at the design's seed variance (pooled over conditions) it keeps the DPO comparison's
    type-I error at or below its level; at one arm's own s^2 it would be liberal.
    """
    a = seed_var / k
    v = reference.value
    denominator = a**2 / (k - 1) + (v**2 / reference.df if np.isfinite(reference.df) else 0.0)
    return float((a + v) ** 2 / denominator) if denominator > 0 else float(k - 1)


def reference_contrast(
    a: Sequence[float], reference: float, reference_var: float, df: float, confidence: float = 0.95
) -> Comparison:
    """mean(a) - reference, the reference being one checkpoint's score with sampling variance
    ``reference_var`` (the DPO checkpoint: one evaluation, its own item noise).

    Standard error sqrt(s_a^2 / k + v), t statistic on ``df`` degrees of freedom (the caller's
    Welch-Satterthwaite df, see :func:`welch_df`); with v = 0 and df = k - 1 this is the one-sample
    t-test. NaNs unless ``a`` has two values and the reference, v and df are finite.
    """
    x = np.asarray(a, dtype=float)
    if x.size < 2 or not (np.isfinite(reference) and np.isfinite(reference_var) and np.isfinite(df)):
        return NAN_COMPARISON
    se = float(np.sqrt(x.var(ddof=1) / x.size + reference_var))
    diff = float(x.mean() - reference)
    if se == 0:
        return Comparison(diff, diff, diff, 1.0 if diff == 0 else 0.0)
    half = _t_quantile(df, (1 + confidence) / 2) * se
    return Comparison(diff, diff - half, diff + half, _two_sided_p(diff / se, df))


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


def pooled_variance(groups: Sequence[Sequence[float]]) -> Variance:
    """Pooled within-group variance of seed scores, sum (k_i - 1) s_i^2 / sum (k_i - 1); groups with
    fewer than two values are skipped (unknown when none has two)."""
    arrays = [np.asarray(g, dtype=float) for g in groups if len(g) >= 2]
    df = sum(a.size - 1 for a in arrays)
    if df == 0:
        return UNKNOWN
    return Variance(float(sum(a.var(ddof=1) * (a.size - 1) for a in arrays) / df), float(df))


def paired_item_variance(arms: Sequence[np.ndarray]) -> Variance:
    """Sampling variance of one checkpoint's score from its own item deviations, sigma_g^2 / n.

    ``arms``: one (k seeds x n items) matrix per condition, columns aligned (the same items in the
    same order); NaN marks an unscored item. sigma_g^2 pools each item's variance across the seeds
    of a condition (only items scored in every seed of that arm), so the between-item variance
    cancels; n is the mean number of scored items per checkpoint. Unknown when no arm has two seeds.
    """
    total, df, counts = 0.0, 0, []
    for matrix in arms:
        m = np.asarray(matrix, dtype=float)
        counts += list(np.isfinite(m).sum(axis=1))
        full = m[:, np.isfinite(m).all(axis=0)]
        if full.shape[0] < 2 or full.shape[1] == 0:
            continue
        total += float(full.var(axis=0, ddof=1).sum() * (full.shape[0] - 1))
        df += (full.shape[0] - 1) * full.shape[1]
    n = float(np.mean(counts)) if counts else 0.0
    return Variance(total / df / n, float(df)) if df and n else UNKNOWN


def unpaired_item_variance(items: Sequence[np.ndarray]) -> Variance:
    """Fallback when items cannot be aligned: the mean over checkpoints of var(items) / n_items.

    It contains the between-item variance, so it overstates a checkpoint's own item noise
    (conservative). Unknown when no checkpoint has two scored items.
    """
    arrays = [a[np.isfinite(a)] for a in (np.asarray(i, dtype=float) for i in items)]
    arrays = [a for a in arrays if a.size >= 2]
    if not arrays:
        return UNKNOWN
    return Variance(float(np.mean([a.var(ddof=1) / a.size for a in arrays])), float(sum(a.size - 1 for a in arrays)))


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


def mde_reference(sd: float, k: int, reference_var: Variance, alpha: float, power: float) -> float:
    """Smallest true shift from the reference checkpoint that :func:`reference_contrast` detects.

    MDE = ncp* * sqrt(sd^2 / k + v), ncp* at the Welch-Satterthwaite df; NaN when k < 2 or sd or v
    is unknown.
    """
    if k < 2 or not (np.isfinite(sd) and np.isfinite(reference_var.value)):
        return np.nan
    df = welch_df(sd**2, k, reference_var)
    return required_noncentrality(df, alpha, power) * float(np.sqrt(sd**2 / k + reference_var.value))
