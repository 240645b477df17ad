"""The report's statistics against scipy references, closed forms and simulation (the design-level
simulations of the issue's acceptance criteria are in test_report_simulation.py)."""

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


def test_reference_contrast_without_reference_noise_is_the_one_sample_t_test() -> None:
    a, ref = np.array([0.50, 0.55, 0.47, 0.52]), 0.45
    res = stats.reference_contrast(a, ref, 0.0, a.size - 1, 0.95)
    scipy_res = sps.ttest_1samp(a, ref)
    ci = scipy_res.confidence_interval(0.95)
    assert res.diff == pytest.approx(a.mean() - ref)
    assert (res.lo, res.hi) == pytest.approx((ci.low - ref, ci.high - ref))
    assert res.p == pytest.approx(scipy_res.pvalue)
    assert np.isnan(stats.reference_contrast(a[:1], ref, 0.0, 1).p)
    assert np.isnan(stats.reference_contrast(a, ref, np.nan, 3).p)


def test_reference_contrast_adds_the_reference_variance() -> None:
    a, ref, v, df = np.array([0.31, 0.35, 0.29]), 0.25, 0.0004, 7.5
    se = np.sqrt(a.var(ddof=1) / 3 + v)
    res = stats.reference_contrast(a, ref, v, df, 0.9)
    assert res.p == pytest.approx(2 * sps.t.sf((a.mean() - ref) / se, df))
    assert res.hi - res.lo == pytest.approx(2 * sps.t.ppf(0.95, df) * se)


def test_welch_df() -> None:
    # v = 0: the seed variance's own k - 1; a known v (df inf) adds no df of its own to estimate
    assert stats.welch_df(0.01, 3, stats.Variance(0.0, np.inf)) == pytest.approx(2)
    s2, k, v, dv = 0.03, 3, 0.01, 40.0
    expected = (s2 / k + v) ** 2 / ((s2 / k) ** 2 / (k - 1) + v**2 / dv)
    assert stats.welch_df(s2, k, stats.Variance(v, dv)) == pytest.approx(expected)


def test_pooled_variance() -> None:
    a, b = [0.1, 0.2, 0.4], [0.3, 0.35]
    pooled = stats.pooled_variance([a, b, [0.9]])  # a single value adds nothing
    assert pooled.value == pytest.approx((2 * np.var(a, ddof=1) + np.var(b, ddof=1)) / 3) and pooled.df == 3
    assert np.isnan(stats.pooled_variance([[0.5]]).value)


def test_paired_item_variance_cancels_the_item_effects() -> None:
    # Items differ wildly (between-item SD 0.3), each checkpoint's deviation is small (SD 0.02).
    rng = np.random.default_rng(2)
    n = 400
    item_effect = rng.normal(0, 0.3, n)
    arms = [item_effect + rng.normal(0, 0.02, (3, n)) for _ in range(4)]
    paired = stats.paired_item_variance(arms)
    assert paired.df == 4 * 2 * n
    assert paired.value == pytest.approx(0.02**2 / n, rel=0.05)
    unpaired = stats.unpaired_item_variance([row for arm in arms for row in arm])
    assert unpaired.value > 100 * paired.value  # the between-item variance the paired estimate leaves out


def test_paired_item_variance_skips_unscored_items() -> None:
    arm = np.array([[0.0, 1.0, np.nan, 0.5], [1.0, 1.0, 0.2, 0.5]])
    # items 0, 1, 3 are scored in both seeds: variances 0.5, 0, 0; n = mean scored per checkpoint = 3.5
    assert stats.paired_item_variance([arm]).value == pytest.approx((0.5 / 3) / 3.5)
    assert np.isnan(stats.paired_item_variance([arm[:1]]).value)


def test_holm_hand_worked() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max(0.06, 0.04) = 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_skips_nan() -> None:
    out = stats.holm([0.5, np.nan, 0.6, 0.01])  # family of 3
    assert out[[0, 2, 3]] == pytest.approx([1.0, 1.0, 0.03])
    assert np.isnan(out[1])
    assert np.isnan(stats.holm([np.nan])).all()


def test_mde_reduces_to_normal_formula_for_large_n() -> None:
    z = sps.norm.ppf(1 - ALPHA / 2) + sps.norm.ppf(POWER)
    assert stats.mde_two_sample(1.0, 5000, 5000, ALPHA, POWER) == pytest.approx(z * np.sqrt(2 / 5000), rel=2e-3)
    known = stats.Variance(0.5, np.inf)
    assert stats.mde_reference(2.0, 5000, known, ALPHA, POWER) == pytest.approx(z * np.sqrt(4 / 5000 + 0.5), rel=2e-3)


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
def test_mde_reference_by_simulation(effect_in_mdes: float, expected: float, tol: float) -> None:
    # A known reference variance v (df inf): the statistic is (mean - ref) / sqrt(s^2/k + v).
    k, between, within, n_items, ref, v = 4, 0.02, 0.3, 80, 0.5, 0.0003
    sd = np.sqrt(between**2 + within**2 / n_items)
    known = stats.Variance(v, np.inf)
    mde = stats.mde_reference(sd, k, known, ALPHA, POWER)
    rng = np.random.default_rng(11)
    scores = _hierarchical_scores(rng, ref + effect_in_mdes * mde, k, between, within, n_items)
    observed_ref = ref + rng.normal(0, np.sqrt(v), N_SIM)
    se = np.sqrt(scores.var(axis=1, ddof=1) / k + v)
    df = stats.welch_df(sd**2, k, known)
    p = 2 * sps.t.sf(np.abs(scores.mean(axis=1) - observed_ref) / se, df)
    assert np.mean(p < ALPHA) == pytest.approx(expected, abs=tol)
