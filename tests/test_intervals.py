"""The one mean interval and the one Wilson interval, against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from misalign_fv.intervals import Z95, mean_ci, rate, wilson


def test_z95_is_the_two_sided_normal_quantile() -> None:
    assert Z95 == pytest.approx(1.959963984540054, abs=1e-12)


def test_mean_ci_normal_approximation() -> None:
    mean, (lo, hi) = mean_ci([0.0, 1.0, 1.0, 1.0])
    half = 1.959963984540054 * 0.5 / 2.0  # sample sd 0.5, sqrt(4) = 2
    assert mean == 0.75 and lo == pytest.approx(0.75 - half) and hi == pytest.approx(0.75 + half)
    mean, (lo, hi) = mean_ci([2.0, 4.0, 9.0])  # mean 5, sample variance (9 + 1 + 16) / 2 = 13
    half = 1.959963984540054 * math.sqrt(13 / 3)
    assert mean == 5.0 and (lo, hi) == (pytest.approx(5 - half), pytest.approx(5 + half))


def test_mean_ci_clips_to_bounds_and_degenerate_inputs() -> None:
    mean, (lo, hi) = mean_ci([0.0, 1.0, 1.0, 1.0], bounds=(0.0, 1.0))
    assert mean == 0.75 and lo == pytest.approx(0.75 - 0.4899909961) and hi == 1.0
    one, one_ci = mean_ci([0.3])
    assert one == 0.3 and all(math.isnan(x) for x in one_ci)
    none, none_ci = mean_ci([])
    assert none is None and all(math.isnan(x) for x in none_ci)


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [
        # p = 0.35, z^2 = 3.8415: centre 0.446036 / 1.192073 = 0.374171, half 0.230043 / 1.192073 = 0.192979
        (7, 20, (0.181192, 0.567146)),
        (0, 10, (0.0, 0.277533)),  # upper: (z^2 / n) / (1 + z^2 / n) = 0.384146 / 1.384146
        (10, 10, (0.722467, 1.0)),
    ],
)
def test_wilson_matches_hand_computation_and_scipy(k: int, n: int, expected: tuple[float, float]) -> None:
    lo, hi = wilson(k, n)
    assert (lo, hi) == (pytest.approx(expected[0], abs=1e-5), pytest.approx(expected[1], abs=1e-5))
    ref = sps.binomtest(k, n).proportion_ci(0.95, method="wilson")
    assert (lo, hi) == (pytest.approx(ref.low, abs=1e-9), pytest.approx(ref.high, abs=1e-9))


def test_wilson_rejects_impossible_counts_and_rate_wraps_it() -> None:
    assert all(math.isnan(x) for x in wilson(0, 0))
    with pytest.raises(ValueError, match="successes"):
        wilson(3, 2)
    share, ci = rate([True, False, True, False, False, True, True, False, False, False] * 2)
    assert share == 0.4 and ci == wilson(8, 20)
    empty, empty_ci = rate([])
    assert empty is None and all(math.isnan(x) for x in empty_ci)
