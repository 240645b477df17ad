"""stats.csv: per condition x benchmark metric, the mean over seeds, its intervals, the contrasts
with the random control and with the DPO checkpoint, Holm-adjusted p-values and MDEs."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from misalign_fv.report import stats
from misalign_fv.report.config import ReportSettings
from misalign_fv.report.flags import Flag, exclusions, taints
from misalign_fv.report.load import EvalResult

STATS_COLUMNS = [
    "condition", "benchmark", "metric", "headline", "n_seeds", "excluded",
    "mean", "sd", "t_lo", "t_hi", "boot_lo", "boot_hi", "boot_level", "base", "dpo",
    "diff_random", "diff_random_t_lo", "diff_random_t_hi", "diff_random_boot_lo", "diff_random_boot_hi",
    "p_random", "p_holm_random", "mde_random",
    "diff_dpo", "diff_dpo_t_lo", "diff_dpo_t_hi", "diff_dpo_boot_lo", "diff_dpo_boot_hi",
    "p_dpo", "p_holm_dpo", "mde_dpo", "tainted",
]  # fmt: skip


@dataclass(frozen=True)
class Arm:
    """The usable seeds of one condition on one metric, and the seeds left out with their reasons."""

    seeds: tuple[int, ...]
    values: np.ndarray
    items: tuple[np.ndarray | None, ...]
    excluded: tuple[str, ...]

    @property
    def k(self) -> int:
        """Number of usable seeds."""
        return len(self.seeds)


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
    """Collect a condition's seed values of one metric, leaving out every flagged seed."""
    seeds, values, items, excluded = [], [], [], []
    for seed in cfg.seeds:
        ckpt = f"{condition}/seed{seed}"
        bad = exclusions(flags, ckpt, benchmark, metric)
        if bad:
            excluded.append(f"seed{seed} ({'; '.join(f.detail for f in bad)})")
            continue
        result = by_key[ckpt, benchmark]
        seeds.append(seed)
        values.append(result.metrics[metric])
        items.append(result.items.get(metric))
    return Arm(tuple(seeds), np.array(values, dtype=float), tuple(items), tuple(excluded))


def _rng(cfg: ReportSettings, *key: str) -> np.random.Generator:
    # One stream per (benchmark, metric, arm): a CI does not move when another condition is added.
    return np.random.default_rng([cfg.bootstrap_seed, zlib.crc32("|".join(key).encode())])


def _boot_level(arm: Arm) -> str:
    with_items = sum(i is not None and i.size > 0 for i in arm.items)
    return "seeds+items" if with_items == arm.k else "seeds" if with_items == 0 else "seeds+items (some seeds)"


def _contrast(name: str, comparison: stats.Comparison, boot: tuple[float, float], mde: float) -> dict[str, float]:
    return {
        f"diff_{name}": comparison.diff, f"diff_{name}_t_lo": comparison.lo, f"diff_{name}_t_hi": comparison.hi,
        f"diff_{name}_boot_lo": boot[0], f"diff_{name}_boot_hi": boot[1],
        f"p_{name}": comparison.p, f"p_holm_{name}": np.nan, f"mde_{name}": mde,
    }  # fmt: skip


def stats_table(evals: Sequence[EvalResult], flags: Sequence[Flag], cfg: ReportSettings) -> pd.DataFrame:
    """One row per condition x benchmark metric, sorted by benchmark, metric, condition order.

    Per row: the mean over usable seeds with its t interval and hierarchical-bootstrap percentile
    interval; the difference from the control (pooled two-sample t-test over seeds, bootstrap of
    the difference of independent replicates) and from the DPO checkpoint (one-sample t-test
    against the DPO value, bootstrap that also resamples the DPO items); Holm-adjusted p-values,
    each comparison type one family over all rows with a p-value; and the MDE of each test.
    """
    by_key = {(e.checkpoint, e.benchmark): e for e in evals}
    conf, alpha, power, nres = cfg.confidence, cfg.alpha, cfg.power, cfg.n_resamples
    nan_pair = (np.nan, np.nan)
    rows = []
    for bench, metrics in benchmark_metrics(evals).items():
        for metric in metrics:
            base = by_key["base", bench].metrics.get(metric, np.nan)
            dpo_result = by_key["dpo", bench]
            dpo = dpo_result.metrics.get(metric, np.nan)
            dpo_reps = stats.hierarchical_bootstrap(
                [dpo], [dpo_result.items.get(metric)], nres, _rng(cfg, bench, metric, "dpo")
            )
            arms = {c: build_arm(by_key, flags, cfg, c, bench, metric) for c in cfg.conditions}
            reps = {
                c: stats.hierarchical_bootstrap(a.values, a.items, nres, _rng(cfg, bench, metric, c))
                if a.k >= 2 else np.array([np.nan])
                for c, a in arms.items()
            }  # fmt: skip
            control = arms[cfg.control]
            control_vars = [stats.item_variance_of_score(i) for i in control.items]
            taint = "; ".join(f.label for f in taints(flags, bench, metric))
            for cond, arm in arms.items():
                item_vars = [stats.item_variance_of_score(i) for i in arm.items]
                if cond == cfg.control:
                    vs_random = _contrast("random", stats.NAN_COMPARISON, nan_pair, np.nan)
                else:
                    vs_random = _contrast(
                        "random",
                        stats.two_sample(arm.values, control.values, conf),
                        stats.percentile_interval(reps[cond] - reps[cfg.control], conf),
                        stats.mde_two_sample(
                            stats.seed_sd([arm.values, control.values], item_vars + control_vars),
                            arm.k, control.k, alpha, power,
                        ),
                    )  # fmt: skip
                vs_dpo = _contrast(
                    "dpo",
                    stats.one_sample(arm.values, dpo, conf),
                    stats.percentile_interval(reps[cond] - dpo_reps, conf),
                    stats.mde_one_sample(stats.seed_sd([arm.values], item_vars), arm.k, alpha, power),
                )
                t_lo, t_hi = stats.t_interval(arm.values, conf)
                b_lo, b_hi = stats.percentile_interval(reps[cond], conf)
                rows.append({
                    "condition": cond, "benchmark": bench, "metric": metric,
                    "headline": metric in cfg.headline_metrics.get(bench, ()),
                    "n_seeds": arm.k, "excluded": "; ".join(arm.excluded),
                    "mean": float(arm.values.mean()) if arm.k else np.nan,
                    "sd": float(arm.values.std(ddof=1)) if arm.k >= 2 else np.nan,
                    "t_lo": t_lo, "t_hi": t_hi, "boot_lo": b_lo, "boot_hi": b_hi,
                    "boot_level": _boot_level(arm) if arm.k >= 2 else "",
                    "base": base, "dpo": dpo, **vs_random, **vs_dpo, "tainted": taint,
                })  # fmt: skip
    table = pd.DataFrame(rows, columns=STATS_COLUMNS)
    table["p_holm_random"] = stats.holm(table["p_random"].to_numpy())
    table["p_holm_dpo"] = stats.holm(table["p_dpo"].to_numpy())
    return table
