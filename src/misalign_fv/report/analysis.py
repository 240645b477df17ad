"""stats.csv and the power table.

Per condition x benchmark metric: the mean over seeds with its t interval, the contrast with the
control and with the DPO checkpoint, and their MDEs. The pre-registered primary family (each
primary endpoint x each condition vs the control) gets Holm's correction and MDEs at the corrected
level; every other number is exploratory, uncorrected, and labelled so (``family``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from misalign_fv.report import stats
from misalign_fv.report.config import ReportSettings
from misalign_fv.report.flags import Flag, exclusions, labels, taints
from misalign_fv.report.load import EvalResult, ReportInputError

PRIMARY = "primary"
EXPLORATORY = "exploratory"
POWER_SEEDS = (3, 5, 8, 10)
CONTROL_COLUMNS = (
    "diff_control", "diff_control_t_lo", "diff_control_t_hi", "p_control", "p_adj_control",
    "mde_control", "mde_control_alpha",
)  # fmt: skip
STATS_COLUMNS = [
    "condition", "role", "benchmark", "metric", "family", "headline", "n_seeds", "excluded", "labelled",
    "mean", "sd", "t_lo", "t_hi", "base", "dpo", *CONTROL_COLUMNS,
    "diff_dpo", "diff_dpo_t_lo", "diff_dpo_t_hi", "p_dpo", "mde_dpo",
    "design_sd", "item_sd", "item_model", "tainted",
]  # fmt: skip
PAIRED = "paired"
UNPAIRED = "unpaired (item counts differ between checkpoints)"
NO_ITEMS = "no item scores"


@dataclass(frozen=True)
class Arm:
    """The usable seeds of one condition on one metric; the seeds left out and the seeds labelled, with reasons."""

    seeds: tuple[int, ...]
    values: np.ndarray
    items: tuple[np.ndarray | None, ...]
    excluded: tuple[str, ...]
    labelled: tuple[str, ...]

    @property
    def k(self) -> int:
        """Number of usable seeds."""
        return len(self.seeds)


@dataclass(frozen=True)
class Noise:
    """The variance model of one benchmark metric (see :mod:`misalign_fv.report.stats`)."""

    seed: stats.Variance  # of one seed's score, pooled over every condition
    item: stats.Variance  # of one checkpoint's score from its own item deviations
    model: str  # how ``item`` was estimated: PAIRED, UNPAIRED or NO_ITEMS

    @property
    def sd(self) -> float:
        """Design SD of one seed's score: sqrt(max(pooled seed variance, item variance)), the item
        variance flooring the seed variance (which contains it); NaN when neither is known."""
        known = [v.value for v in (self.seed, self.item) if np.isfinite(v.value)]
        return float(np.sqrt(max(known))) if known else np.nan

    @property
    def reference(self) -> stats.Variance:
        """Sampling variance of the DPO score: its item noise; without items, one seed's variance."""
        return self.item if np.isfinite(self.item.value) else self.seed


def benchmark_metrics(evals: Sequence[EvalResult]) -> dict[str, list[str]]:
    """Metric names per benchmark (the union over checkpoints), both sorted."""
    out: dict[str, set[str]] = {}
    for e in evals:
        out.setdefault(e.benchmark, set()).update(e.metrics)
    return {b: sorted(ms) for b, ms in sorted(out.items())}


def build_arm(
    by_key: dict[tuple[str, str], EvalResult], flags: Sequence[Flag], cfg: ReportSettings,
    condition: str, benchmark: str, metric: str,
) -> Arm:  # fmt: skip
    """Collect a condition's seed values of one metric, leaving out every excluded seed and noting labelled ones."""
    seeds, values, items, excluded, labelled = [], [], [], [], []
    for seed in cfg.seeds:
        ckpt = f"{condition}/seed{seed}"
        bad = exclusions(flags, ckpt, benchmark, metric)
        if bad:
            excluded.append(f"seed{seed} ({'; '.join(f.detail for f in bad)})")
            continue
        marks = labels(flags, ckpt, benchmark, metric)
        if marks:
            labelled.append(f"seed{seed} ({'; '.join(f.detail for f in marks)})")
        result = by_key[ckpt, benchmark]
        seeds.append(seed)
        values.append(result.metrics[metric])
        items.append(result.items.get(metric))
    return Arm(tuple(seeds), np.array(values, dtype=float), tuple(items), tuple(excluded), tuple(labelled))


def metric_noise(arms: Sequence[Arm], dpo_items: np.ndarray | None) -> Noise:
    """The seed variance pooled over ``arms`` and the item noise of one checkpoint, paired when every
    included checkpoint (and DPO) has the same number of items, else unpaired (conservative)."""
    seed = stats.pooled_variance([a.values for a in arms])
    present = [i for i in (*(i for a in arms for i in a.items), dpo_items) if i is not None and i.size]
    if not present:
        return Noise(seed, stats.UNKNOWN, NO_ITEMS)
    complete = len(present) == sum(a.k for a in arms) + 1
    if complete and len({i.size for i in present}) == 1:
        matrices = [np.vstack(a.items) for a in arms if a.k]
        return Noise(seed, stats.paired_item_variance(matrices), PAIRED)
    return Noise(seed, stats.unpaired_item_variance(present), UNPAIRED)


def _vs_control(arm: Arm, control: Arm, noise: Noise, alpha: float, cfg: ReportSettings) -> dict[str, float]:
    c = stats.two_sample(arm.values, control.values, cfg.confidence)
    return {
        "diff_control": c.diff, "diff_control_t_lo": c.lo, "diff_control_t_hi": c.hi, "p_control": c.p,
        "p_adj_control": np.nan, "mde_control": stats.mde_two_sample(noise.sd, arm.k, control.k, alpha, cfg.power),
        "mde_control_alpha": alpha,
    }  # fmt: skip


def vs_reference(values: np.ndarray, reference: float, noise: Noise, confidence: float) -> stats.Comparison:
    """mean(values) - the DPO score, whose own item noise (``noise.reference``) enters the standard
    error; df by Welch-Satterthwaite at the design variance (``noise.sd``), not at this arm's own s^2."""
    k = values.size
    df = stats.welch_df(noise.sd**2, k, noise.reference) if k >= 2 and np.isfinite(noise.sd) else np.nan
    return stats.reference_contrast(values, reference, noise.reference.value, df, confidence)


def _vs_dpo(arm: Arm, dpo: float, noise: Noise, cfg: ReportSettings) -> dict[str, float]:
    c = vs_reference(arm.values, dpo, noise, cfg.confidence)
    return {
        "diff_dpo": c.diff, "diff_dpo_t_lo": c.lo, "diff_dpo_t_hi": c.hi, "p_dpo": c.p,
        "mde_dpo": stats.mde_reference(noise.sd, arm.k, noise.reference, cfg.alpha, cfg.power),
    }  # fmt: skip


def _check_primary(evals: Sequence[EvalResult], cfg: ReportSettings) -> None:
    metrics = benchmark_metrics(evals)
    for bench, metric in cfg.primary:
        if metric not in metrics.get(bench, ()):
            raise ReportInputError("settings", f"primary endpoint {bench}/{metric} is in no eval JSON")


def stats_table(evals: Sequence[EvalResult], flags: Sequence[Flag], cfg: ReportSettings) -> pd.DataFrame:
    """One row per condition x benchmark metric, sorted by benchmark, metric, condition order.

    Per row: the mean over usable seeds with its t interval; the difference from the control
    (pooled two-sample t-test over seeds) and from the DPO checkpoint (t-test whose standard error
    adds the DPO score's own item noise); the MDE of each test, in the metric's units, from the
    design SD (seed variance pooled over conditions, floored by the paired item noise). Primary rows
    (``family``) get Holm's correction over the primary family only (``p_adj_control``) and MDEs at
    alpha / family size; exploratory rows keep uncorrected p-values and MDEs at alpha.
    """
    _check_primary(evals, cfg)
    by_key = {(e.checkpoint, e.benchmark): e for e in evals}
    primary = set(cfg.primary)
    rows = []
    for bench, metrics in benchmark_metrics(evals).items():
        for metric in metrics:
            base = by_key["base", bench].metrics.get(metric, np.nan)
            dpo_result = by_key["dpo", bench]
            dpo = dpo_result.metrics.get(metric, np.nan)
            arms = {c: build_arm(by_key, flags, cfg, c, bench, metric) for c in cfg.conditions}
            noise = metric_noise(list(arms.values()), dpo_result.items.get(metric))
            family = PRIMARY if (bench, metric) in primary else EXPLORATORY
            alpha = cfg.corrected_alpha if family == PRIMARY else cfg.alpha
            control = arms[cfg.control]
            taint = "; ".join(f.label for f in taints(flags, bench, metric))
            for cond, arm in arms.items():
                t_lo, t_hi = stats.t_interval(arm.values, cfg.confidence)
                vs_control = (
                    dict.fromkeys(CONTROL_COLUMNS, np.nan) if cond == cfg.control
                    else _vs_control(arm, control, noise, alpha, cfg)
                )  # fmt: skip
                rows.append({
                    "condition": cond, "role": cfg.role(cond), "benchmark": bench, "metric": metric,
                    "family": family, "headline": metric in cfg.headline_metrics.get(bench, ()),
                    "n_seeds": arm.k, "excluded": "; ".join(arm.excluded), "labelled": "; ".join(arm.labelled),
                    "mean": float(arm.values.mean()) if arm.k else np.nan,
                    "sd": float(arm.values.std(ddof=1)) if arm.k >= 2 else np.nan,
                    "t_lo": t_lo, "t_hi": t_hi, "base": base, "dpo": dpo,
                    **vs_control, **_vs_dpo(arm, dpo, noise, cfg),
                    "design_sd": noise.sd, "item_sd": float(np.sqrt(noise.item.value)), "item_model": noise.model,
                    "tainted": taint,
                })  # fmt: skip
    table = pd.DataFrame(rows, columns=STATS_COLUMNS)
    table["p_adj_control"] = primary_holm(table, cfg)
    return table


def primary_holm(table: pd.DataFrame, cfg: ReportSettings) -> np.ndarray:
    """Holm-adjusted p-values over the primary family (primary endpoints x conditions vs the control).

    The family is the pre-registered one: a test that could not be run (too few seeds) counts as
    p = 1, so it still takes its share of alpha; its own adjusted p stays NaN. Exploratory rows: NaN.
    """
    in_family = ((table["family"] == PRIMARY) & (table["condition"] != cfg.control)).to_numpy()
    raw = table["p_control"].to_numpy(dtype=float)
    adjusted = np.full(len(table), np.nan)
    adjusted[in_family] = stats.holm(np.where(np.isnan(raw[in_family]), 1.0, raw[in_family]))
    adjusted[np.isnan(raw)] = np.nan
    return adjusted


def power_table(table: pd.DataFrame, cfg: ReportSettings) -> pd.DataFrame:
    """Per primary endpoint: the MDE of a condition vs the control, in the metric's units, with
    3/5/8/10 seeds per condition (columns ``mde_<n>``) at the corrected alpha and the configured power,
    from the endpoint's design SD. Set ``grpo.seeds`` so the MDE is at most the effect that matters."""
    rows = []
    for bench, metric in cfg.primary:
        sd = table.loc[(table.benchmark == bench) & (table.metric == metric), "design_sd"].iloc[0]
        rows.append({
            "benchmark": bench, "metric": metric, "design_sd": sd, "alpha": cfg.corrected_alpha, "power": cfg.power,
            **{f"mde_{n}": stats.mde_two_sample(sd, n, n, cfg.corrected_alpha, cfg.power) for n in POWER_SEEDS},
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["benchmark", "metric", "design_sd", "alpha", "power",
                                       *(f"mde_{n}" for n in POWER_SEEDS)])  # fmt: skip


def methods_lines(cfg: ReportSettings) -> tuple[str, ...]:
    """The statistical model and tests in words, one bullet each, for the report's methods section."""
    pct = f"{cfg.confidence:.0%}"
    endpoints = ", ".join(f"{b}/{m}" for b, m in cfg.primary)
    positive = f" (the positive control {cfg.positive_control} among them)" if cfg.positive_control else ""
    return (
        "Unit of replication: the GRPO seed. A condition's mean is the mean of its included seeds' scores. "
        "Collapsed runs are outcomes: they stay in, labelled.",
        "Model: every checkpoint answers the same items, so a score = condition effect + seed effect + the "
        "item set's effect (the same for every checkpoint: it cancels in every difference) + the checkpoint's "
        "own item-level deviation. The latter's variance is estimated paired, item by item, from each item's "
        "spread across the seeds of a condition; the between-item variance never enters.",
        f"Intervals: Student t over the k included seeds, mean +/- t(1 - α/2, k - 1) x s / sqrt(k) ({pct}).",
        f"Primary family, fixed in the config before the runs: endpoints {endpoints} x each condition vs the "
        f"control {cfg.control}{positive} = {cfg.family_size} tests. Holm's step-down correction runs over "
        "this family only (p_adj_control); a test that cannot be run counts as p = 1. Every other number "
        "is exploratory: uncorrected p-values, labelled so.",
        f"Difference vs {cfg.control}: Student's pooled-variance two-sample t-test on seed scores "
        "(df = k1 + k2 - 2), with its t interval.",
        "Difference vs DPO (exploratory): the DPO checkpoint is one evaluation with its own item noise, so the "
        "standard error is sqrt(s^2 / k + v_DPO), v_DPO the paired item variance of one checkpoint's score (one "
        "seed's variance when there are no item scores), on Welch-Satterthwaite df at the design variance.",
        f"MDE: the true difference at which the test has {cfg.power:.0%} power, from the noncentral t, in the "
        "metric's units, with the design SD (seed variance pooled over conditions, floored by the paired item "
        f"variance). Primary rows: at α / {cfg.family_size} = {cfg.corrected_alpha:.4g} (Holm's first step); "
        f"exploratory rows: at α = {cfg.alpha:g}. The power table gives the primary MDEs for 3/5/8/10 seeds.",
        "Flags: a collapse labels a run and keeps it; no update (without collapse), low judge coverage "
        "(judge-derived metrics only) and a missing value exclude seed values; reference-level flags taint "
        "the numbers they feed (see Flags).",
    )
