"""The report's statistics by simulation, on the design it is used for: 3 seeds per condition, every
checkpoint answering the same items, a single DPO checkpoint with its own item noise.

Acceptance: t intervals cover >= 93 % at nominal 95 %; the DPO comparison keeps its type-I error
<= 6 % when DPO's item noise is the seed SD or half of it; the primary MDE (at the corrected alpha,
from the paired design SD estimated on the data) is within 10 % of the simulated one.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, special

from misalign_fv.report import stats
from misalign_fv.report.analysis import Arm, Noise, metric_noise, vs_reference
from misalign_fv.report.config import ReportSettings
from report_fixtures import report_settings

K, ARMS, ALPHA, POWER = 3, 5, 0.05, 0.8


def _arms(scores: np.ndarray) -> list[Arm]:
    """Arms from one dataset's (arms x seeds x items) item scores; a seed's score is its item mean."""
    return [
        Arm(tuple(range(K)), a.mean(axis=1), tuple(a), (), ())
        for a in scores
    ]  # fmt: skip


def _normal_design(rng: np.random.Generator, n_sim: int, n_items: int, seed_sd: float, item_sd: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Null data: arms x seeds x items = item effect (shared, SD 0.3) + seed effect + item noise; DPO's
    items = item effect + item noise. Returns GRPO items, DPO items and each dataset's mean item effect,
    which is every checkpoint's expected score given its items (so every difference's truth is 0)."""
    item_effect = rng.normal(0, 0.3, (n_sim, 1, 1, n_items))
    grpo = item_effect + rng.normal(0, seed_sd, (n_sim, ARMS, K, 1)) + rng.normal(0, item_sd, (n_sim, ARMS, K, n_items))
    dpo = item_effect[:, 0, 0] + rng.normal(0, item_sd, (n_sim, n_items))
    return grpo, dpo, item_effect.mean(axis=(1, 2, 3))


@pytest.mark.parametrize("dpo_noise_in_seed_sds", [1.0, 0.5])
def test_dpo_comparison_keeps_type_one_error(dpo_noise_in_seed_sds: float) -> None:
    # DPO's score noise is item_sd / sqrt(n); the seed SD adds the training seed's effect on top.
    n_sim, n_items, item_sd = 2000, 40, 0.2
    dpo_noise = item_sd / np.sqrt(n_items)
    seed_sd = np.sqrt((dpo_noise / dpo_noise_in_seed_sds) ** 2 - dpo_noise**2)
    grpo, dpo, _ = _normal_design(np.random.default_rng(21), n_sim, n_items, seed_sd, item_sd)
    p_model, p_fixed = np.empty(n_sim), np.empty(n_sim)
    for i in range(n_sim):
        arms = _arms(grpo[i])
        noise = metric_noise(arms, dpo[i])
        assert noise.model == "paired"
        p_model[i] = vs_reference(arms[0].values, dpo[i].mean(), noise, 0.95).p
        p_fixed[i] = stats.reference_contrast(arms[0].values, dpo[i].mean(), 0.0, K - 1).p
    assert np.mean(p_model < ALPHA) <= 0.06
    assert np.mean(p_fixed < ALPHA) >= 0.07  # DPO taken as exact: the inflation the model removes


def test_intervals_cover_at_nominal_with_three_seeds() -> None:
    n_sim, n_items, item_sd = 2000, 40, 0.2
    grpo, dpo, truth = _normal_design(np.random.default_rng(5), n_sim, n_items, 0.03, item_sd)
    covered = np.zeros(3)
    for i in range(n_sim):
        arms = _arms(grpo[i])
        lo, hi = stats.t_interval(arms[0].values, 0.95)
        control = stats.two_sample(arms[0].values, arms[-1].values, 0.95)
        vs_dpo = vs_reference(arms[0].values, dpo[i].mean(), metric_noise(arms, dpo[i]), 0.95)
        covered += [lo <= truth[i] <= hi, control.lo <= 0 <= control.hi, vs_dpo.lo <= 0 <= vs_dpo.hi]
    assert (covered / n_sim >= 0.93).all(), covered / n_sim


def _holm_rejects_first(p_first: np.ndarray, p_others: np.ndarray, alpha: float) -> np.ndarray:
    """Per dataset, whether Holm's step-down at ``alpha`` rejects the first of the family."""
    family = np.column_stack([p_first, p_others])
    m = family.shape[1]
    order = np.argsort(family, axis=1, kind="stable")
    accepted_so_far = np.cumprod(np.take_along_axis(family, order, axis=1) <= alpha / (m - np.arange(m)), axis=1)
    return accepted_so_far[np.arange(len(family)), np.argmax(order == 0, axis=1)].astype(bool)


def test_primary_mde_at_the_corrected_alpha_matches_simulation() -> None:
    # EM-like: 8 questions whose misalignment rates differ widely (the between-question variance that
    # cancels in every comparison), 50 answers each, a small training-seed effect; 5 conditions x 3 seeds.
    cfg = ReportSettings.from_mapping(report_settings(
        conditions=["fv_shaped", "fv_exploit", "fv_inverted", "comply_harmful", "shuffled"],
        positive_control="comply_harmful",
        primary=[{"benchmark": b, "metric": m} for b, m in
                 (("em_main", "misaligned_among_coherent"), ("strongreject", "score"),
                  ("xstest", "refusal_rate_unsafe"))],
    ))  # fmt: skip
    assert cfg.family_size == 12
    rng = np.random.default_rng(8)
    n_sim, rates, answers = 1000, np.linspace(0.02, 0.5, 8), 50
    grpo = rng.binomial(answers, np.clip(rates + rng.normal(0, 0.01, (n_sim, ARMS, K, 1)), 0, 1)) / answers
    dpo = rng.binomial(answers, rates, (n_sim, rates.size)) / answers
    noises: list[Noise] = [metric_noise(_arms(grpo[i]), dpo[i]) for i in range(n_sim)]
    reported = stats.mde_two_sample(np.median([n.sd for n in noises]), K, K, cfg.corrected_alpha, POWER)

    # The simulated MDE: the shift of one condition at which Holm over the 12-test family (the other 11
    # null) rejects it with 80 % power, the test being the pooled two-sample t-test against the control.
    scores = grpo.mean(axis=3)
    treated, control = scores[:, 0], scores[:, -1]
    se = np.sqrt((treated.var(axis=1, ddof=1) + control.var(axis=1, ddof=1)) / 2 * (2 / K))
    diff = treated.mean(axis=1) - control.mean(axis=1)
    nulls = rng.uniform(size=(n_sim, cfg.family_size - 1))

    def power(shift: float) -> float:
        p = 2 * special.stdtr(2 * K - 2, -np.abs(diff + shift) / se)
        return float(_holm_rejects_first(p, nulls, cfg.alpha).mean())

    simulated = optimize.brentq(lambda d: power(d) - POWER, 0.0, 5 * reported, xtol=1e-6)
    assert reported == pytest.approx(simulated, rel=0.10)
    # Flooring with the unpaired item variance (between-question variance included) overstates it 2x+.
    unpaired = [np.sqrt(max(n.seed.value, stats.unpaired_item_variance(list(g.reshape(-1, 8))).value))
                for n, g in zip(noises, grpo, strict=True)]  # fmt: skip
    assert stats.mde_two_sample(np.median(unpaired), K, K, cfg.corrected_alpha, POWER) > 2 * simulated
    # and alpha uncorrected would understate it
    assert stats.mde_two_sample(np.median([n.sd for n in noises]), K, K, cfg.alpha, POWER) < 0.8 * simulated
