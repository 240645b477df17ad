"""The tidy tables: scores.csv, flags.csv, the GRPO run table and the compute (setup) table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from misalign_fv.report.config import ReportSettings
from misalign_fv.report.flags import EXCLUDED, Flag, flags_for
from misalign_fv.report.load import BenchRecord, EvalResult, GrpoRun

SCORES_COLUMNS = [
    "checkpoint", "condition", "seed", "benchmark", "metric", "value", "n", "ci_lo", "ci_hi",
    "judge_coverage", "flag_detail", "excluded",
]  # fmt: skip
FLAGS_COLUMNS = ["kind", "checkpoint", "condition", "seed", "benchmark", "metric", "detail", "action"]


def checkpoint_order(cfg: ReportSettings) -> dict[str, int]:
    """Display rank of each checkpoint: base, dpo, then conditions in settings order, seeds ascending."""
    return {ckpt: i for i, ckpt in enumerate(cfg.checkpoints())}


def scores_table(evals: Sequence[EvalResult], flags: Sequence[Flag], cfg: ReportSettings) -> pd.DataFrame:
    """One row per (checkpoint, condition, seed, benchmark, metric); flags and exclusion beside each value.

    Sorted by checkpoint (base, dpo, conditions in settings order, seeds), benchmark, metric.
    """
    rank = checkpoint_order(cfg)
    rows = []
    for e in sorted(evals, key=lambda r: (rank[r.checkpoint], r.benchmark)):
        for metric in sorted(e.metrics):
            on_value = flags_for(flags, e.checkpoint, e.benchmark, metric)
            lo, hi = e.ci.get(metric, (np.nan, np.nan))
            rows.append({
                "checkpoint": e.checkpoint, "condition": e.condition, "seed": e.seed,
                "benchmark": e.benchmark, "metric": metric, "value": e.metrics[metric], "n": e.n,
                "ci_lo": lo, "ci_hi": hi, "judge_coverage": e.judge_coverage,
                "flag_detail": "; ".join(f.detail for f in on_value),
                "excluded": any(f.action == EXCLUDED for f in on_value),
            })  # fmt: skip
    table = pd.DataFrame(rows, columns=SCORES_COLUMNS)
    table["seed"] = table["seed"].astype("Int64")
    table["judge_coverage"] = table["judge_coverage"].astype(float)
    return table


def flags_table(flags: Sequence[Flag]) -> pd.DataFrame:
    """One row per flag, in :func:`collect_flags` order."""
    table = pd.DataFrame([{c: getattr(f, c) for c in FLAGS_COLUMNS} for f in flags], columns=FLAGS_COLUMNS)
    table["seed"] = table["seed"].astype("Int64")
    return table


def runs_table(runs: Sequence[GrpoRun], flags: Sequence[Flag], cfg: ReportSettings) -> pd.DataFrame:
    """One row per GRPO run: progress, wall time, collapse (and its kind) and the run-level flags."""
    rank = checkpoint_order(cfg)
    rows = []
    for r in sorted(runs, key=lambda run: rank[run.checkpoint]):
        run_flags = [f.detail for f in flags if f.checkpoint == r.checkpoint and not f.benchmark]
        rows.append({
            "condition": r.condition, "seed": r.seed, "steps": f"{r.steps_done}/{r.max_steps}",
            "resumed_from": "" if r.resumed_from is None else str(r.resumed_from),
            "wall_h": r.wall_time_s / 3600, "collapsed": r.collapsed, "collapse_kind": r.collapse_kind or "",
            "updated": r.updated,
            "flags": "; ".join(run_flags),
        })  # fmt: skip
    return pd.DataFrame(rows)


def compute_table(records: Sequence[BenchRecord], gpus_per_rule: dict[str, int]) -> pd.DataFrame:
    """Per rule: jobs, wall hours and GPU hours (wall seconds x the rule's GPUs; 0 GPUs if unlisted)."""
    frame = pd.DataFrame(
        {"rule": [r.rule for r in records], "seconds": [r.seconds for r in records]}, columns=["rule", "seconds"]
    )
    table = frame.groupby("rule", sort=True).agg(jobs=("seconds", "size"), wall_s=("seconds", "sum")).reset_index()
    table["gpus"] = [gpus_per_rule.get(rule, 0) for rule in table["rule"]]
    table["wall_h"] = table["wall_s"] / 3600
    table["gpu_h"] = table["wall_h"] * table["gpus"]
    return table[["rule", "jobs", "wall_h", "gpus", "gpu_h"]]
