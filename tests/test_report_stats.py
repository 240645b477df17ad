"""The report's statistics against scipy references, closed forms and simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from misalign_fv.report import stats

ALPHA, POWER = 0.05, 0.8
N_SIM = 400


@pytest.mark.parametrize("values", [[0.1, 0.4, 0.3], [1.0, 2.0, 4.0, 8.0, 3.5], [-0.2, 0.2]])
def test_t_interval_matches_scipy(values: list[float]) -> None:
    x = np.array(values)
    ref = sps.t.interval(0.95, x.size - 1, loc=x.mean(), scale=sps.sem(x))
    assert stats.t_interval(x, 0.95) == pytest.approx(ref, rel=1e-12)


def test_t_interval_needs_two_values() -> None:
    assert np.isnan(stats.t_interval([0.3])).all()


def test_two_sample_matches_pooled_closed_form() -> None:
    a, b = np.array([0.31, 0.35, 0.29]), np.array([0.40, 0.44, 0.37])
    sp2 = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
    se = np.sqrt(sp2 * (1 / a.size + 1 / b.size))
    df = a.size + b.size - 2
    diff = a.mean() - b.mean()
    half = sps.t.ppf(0.975, df) * se
    res = stats.two_sample(a, b, 0.95)
    assert res.diff == pytest.approx(diff)
    assert (res.lo, res.hi) == pytest.approx((diff - half, diff + half))
    assert res.p == pytest.approx(2 * sps.t.sf(abs(diff / se), df))


def test_one_sample_is_relative_to_the_reference() -> None:
    a, ref = np.array([0.50, 0.55, 0.47, 0.52]), 0.45
    se = a.std(ddof=1) / np.sqrt(a.size)
    half = sps.t.ppf(0.975, a.size - 1) * se
    res = stats.one_sample(a, ref, 0.95)
    assert res.diff == pytest.approx(a.mean() - ref)
    assert (res.lo, res.hi) == pytest.approx((a.mean() - ref - half, a.mean() - ref + half))
    assert res.p == pytest.approx(2 * sps.t.sf((a.mean() - ref) / se, a.size - 1))
    assert np.isnan(stats.one_sample(a[:1], ref).p)


def test_holm_hand_worked() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max(0.06, 0.04) = 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_skips_nan() -> None:
    out = stats.holm([0.5, np.nan, 0.6, 0.01])  # family of 3
    assert out[[0, 2, 3]] == pytest.approx([1.0, 1.0, 0.03])
    assert np.isnan(out[1])
    assert np.isnan(stats.holm([np.nan])).all()


def test_mde_two_sample_reduces_to_normal_formula_for_large_n() -> None:
    z = sps.norm.ppf(1 - ALPHA / 2) + sps.norm.ppf(POWER)
    assert stats.mde_two_sample(1.0, 5000, 5000, ALPHA, POWER) == pytest.approx(z * np.sqrt(2 / 5000), rel=2e-3)
    assert stats.mde_one_sample(2.0, 5000, ALPHA, POWER) == pytest.approx(z * 2.0 / np.sqrt(5000), rel=2e-3)


def test_power_at_the_required_noncentrality() -> None:
    for df in (1, 4, 30):
        ncp = stats.required_noncentrality(df, ALPHA, POWER)
        assert stats.t_test_power(ncp, df, ALPHA) == pytest.approx(POWER, abs=1e-8)
    assert stats.t_test_power(0.0, 4, ALPHA) == pytest.approx(ALPHA)


def _hierarchical_scores(rng: np.random.Generator, shift: float, k: int, between: float, within: float,
                         n_items: int) -> np.ndarray:  # fmt: skip
    """Seed scores of N_SIM datasets: seed effect N(0, between), items N(seed, within), score = item mean."""
    seed_means = shift + rng.normal(0, between, (N_SIM, k, 1))
    return (seed_means + rng.normal(0, within, (N_SIM, k, n_items))).mean(axis=2)


@pytest.mark.parametrize("effect_in_mdes, expected, tol", [(1.0, POWER, 0.07), (0.0, ALPHA, 0.035)])
def test_mde_two_sample_by_simulation(effect_in_mdes: float, expected: float, tol: float) -> None:
    k, between, within, n_items = 3, 0.03, 0.2, 50
    sd = np.sqrt(between**2 + within**2 / n_items)  # SD of one seed's score
    mde = stats.mde_two_sample(sd, k, k, ALPHA, POWER)
    rng = np.random.default_rng(7)
    control = _hierarchical_scores(rng, 0.0, k, between, within, n_items)
    treated = _hierarchical_scores(rng, effect_in_mdes * mde, k, between, within, n_items)
    p = sps.ttest_ind(treated, control, axis=1).pvalue
    assert np.mean(p < ALPHA) == pytest.approx(expected, abs=tol)


@pytest.mark.parametrize("effect_in_mdes, expected, tol", [(1.0, POWER, 0.07), (0.0, ALPHA, 0.035)])
def test_mde_one_sample_by_simulation(effect_in_mdes: float, expected: float, tol: float) -> None:
    k, between, within, n_items, ref = 4, 0.02, 0.3, 80, 0.5
    sd = np.sqrt(between**2 + within**2 / n_items)
    mde = stats.mde_one_sample(sd, k, ALPHA, POWER)
    scores = _hierarchical_scores(np.random.default_rng(11), ref + effect_in_mdes * mde, k, between, within, n_items)
    p = sps.ttest_1samp(scores, ref, axis=1).pvalue
    assert np.mean(p < ALPHA) == pytest.approx(expected, abs=tol)


def test_seed_sd_pools_groups_and_floors_at_item_noise() -> None:
    a, b = [0.1, 0.2, 0.4], [0.3, 0.35]
    pooled = (2 * np.var(a, ddof=1) + 1 * np.var(b, ddof=1)) / 3
    assert stats.seed_sd([a, b], [1e-6, 1e-6]) == pytest.approx(np.sqrt(pooled))
    # identical seeds: the item sampling variance is the floor
    assert stats.seed_sd([[0.5, 0.5, 0.5]], [0.004, 0.002, np.nan]) == pytest.approx(np.sqrt(0.003))
    assert np.isnan(stats.seed_sd([[0.5]], [np.nan]))


def test_item_variance_of_score() -> None:
    items = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    assert stats.item_variance_of_score(items) == pytest.approx(items.var(ddof=1) / 5)
    assert np.isnan(stats.item_variance_of_score(None))


def test_bootstrap_without_item_noise_spans_the_seed_range() -> None:
    # Constant items: a replicate is the mean of 3 seeds drawn with replacement; all-min and all-max
    # each have probability 1/27 > 2.5%, so the 95% percentile interval is exactly [min, max].
    values = [0.2, 0.5, 0.3]
    items = [np.full(30, v) for v in values]
    reps = stats.hierarchical_bootstrap(values, items, 2000, np.random.default_rng(0))
    assert stats.percentile_interval(reps, 0.95) == pytest.approx((0.2, 0.5))


def test_bootstrap_variance_matches_two_stage_closed_form() -> None:
    # Var(replicate) = (var0(seed scores) + mean_s var0(items_s) / n_s) / k  (plug-in, ddof = 0).
    rng = np.random.default_rng(3)
    items = [rng.normal(m, 0.3, n) for m, n in ((0.4, 40), (0.5, 60), (0.45, 50), (0.6, 30))]
    values = [float(i.mean()) for i in items]
    k = len(values)
    expected = (np.var(values) + np.mean([i.var() / i.size for i in items])) / k
    reps = stats.hierarchical_bootstrap(values, items, 40000, np.random.default_rng(4))
    assert reps.var() == pytest.approx(expected, rel=0.04)
    assert reps.mean() == pytest.approx(np.mean(values), abs=3 * np.sqrt(expected / reps.size))


def test_bootstrap_centres_on_the_reported_scores() -> None:
    # A metric that is not the mean of its items (here shifted by 10) is still the centre.
    items = [np.array([0.0, 1.0, 1.0, 0.0]), np.array([1.0, 1.0, 0.0, 1.0])]
    reps = stats.hierarchical_bootstrap([10.5, 10.75], items, 20000, np.random.default_rng(5))
    assert reps.mean() == pytest.approx(10.625, abs=0.01)


def test_percentile_interval_propagates_nan() -> None:
    assert np.isnan(stats.percentile_interval(np.array([0.1, np.nan]))).all()
    assert stats.percentile_interval(np.linspace(0, 1, 1001), 0.9) == pytest.approx((0.05, 0.95))
