"""Manipulation checks: did each GRPO condition change the narrow-task behaviour it rewards?

Read before any safety result: a treatment whose reward never rose, or a positive control that
never learned to comply, cannot be expected to move a safety metric, and its null says nothing.
Per condition, over its seeds (the unit of replication):

* the reward's least-squares slope over training steps (per 100 steps), with a t interval over
  seeds; the manipulation **took** when that interval lies above 0;
* the reward and every audit tag's rate (strict pass, exploit categories, ``sorry``, refusals, ...)
  in the first and the last quarter of the logged steps, and the change with its t interval;
* the mean gradient norm (the no-signal control is matched to its reference on it);
* collapsed runs, labelled ``starved`` or ``saturated``: kept, and counted here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from misalign_fv.report import stats
from misalign_fv.report.load import GrpoRun

WINDOW = 0.25  # share of the logged steps in the "first" and "last" windows
MANIPULATION_COLUMNS = [
    "condition", "role", "measure", "n_seeds", "first", "last", "change", "change_lo", "change_hi", "expected",
]  # fmt: skip
SUMMARY_COLUMNS = [
    "condition", "role", "n_seeds", "collapsed", "signal_share", "reward_first", "reward_last",
    "slope", "slope_lo", "slope_hi", "grad_norm", "indicator", "indicator_first", "indicator_last", "took",
]  # fmt: skip


def slope_per_100(series: pd.Series) -> float:
    """Least-squares slope of ``series`` (indexed by step) per 100 steps; NaN with fewer than 2 points."""
    s = series.dropna()
    if len(s) < 2 or np.ptp(s.index.to_numpy(dtype=float)) == 0:
        return np.nan
    return float(np.polyfit(s.index.to_numpy(dtype=float), s.to_numpy(dtype=float), 1)[0] * 100)


def windows(series: pd.Series, share: float = WINDOW) -> tuple[float, float]:
    """Means of ``series`` over the first and the last ``share`` of its points (at least one each)."""
    s = series.dropna()
    if s.empty:
        return np.nan, np.nan
    n = max(1, int(round(len(s) * share)))
    return float(s.iloc[:n].mean()), float(s.iloc[-n:].mean())


def _role(cond: str, control: str, positive: str | None) -> str:
    return "control" if cond == control else "positive control" if cond == positive else "treatment"


def _interval(values: Sequence[float], confidence: float) -> tuple[float, float]:
    vals = [v for v in values if np.isfinite(v)]
    return stats.t_interval(vals, confidence) if len(vals) >= 2 else (np.nan, np.nan)


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if np.isfinite(v)]
    return float(np.mean(vals)) if vals else np.nan


def _measures(run: GrpoRun) -> dict[str, pd.Series]:
    out: dict[str, pd.Series] = {}
    if "reward" in run.metrics:
        out["reward"] = run.metrics["reward"]
    for tag in run.tag_rates.columns:
        out[f"tag:{tag}"] = run.tag_rates[tag]
    return out


def manipulation_table(
    runs: Sequence[GrpoRun], conditions: Sequence[str], control: str, positive: str | None,
    expect: Mapping[str, Mapping[str, int]], confidence: float,
) -> pd.DataFrame:  # fmt: skip
    """Long table: one row per condition x measure (reward, its slope, grad norm, each tag's rate)."""
    rows: list[dict[str, Any]] = []
    for cond in conditions:
        mine = [r for r in runs if r.condition == cond]
        role = _role(cond, control, positive)
        names = sorted({m for r in mine for m in _measures(r)}, key=lambda m: (m != "reward", m))
        slopes = [slope_per_100(r.metrics["reward"]) if "reward" in r.metrics else np.nan for r in mine]
        lo, hi = _interval(slopes, confidence)
        rows.append({"condition": cond, "role": role, "measure": "reward_slope_per_100_steps", "n_seeds": len(mine),
                     "first": np.nan, "last": np.nan, "change": _mean(slopes), "change_lo": lo, "change_hi": hi,
                     "expected": 0 if role == "control" else 1})  # fmt: skip
        norms = [float(r.metrics["grad_norm"].mean()) if "grad_norm" in r.metrics else np.nan for r in mine]
        rows.append({"condition": cond, "role": role, "measure": "grad_norm", "n_seeds": len(mine),
                     "first": np.nan, "last": _mean(norms), "change": np.nan, "change_lo": np.nan, "change_hi": np.nan,
                     "expected": 0})  # fmt: skip
        for name in names:
            pairs = [windows(_measures(r)[name]) if name in _measures(r) else (0.0, 0.0) for r in mine]
            changes = [b - a for a, b in pairs]
            lo, hi = _interval(changes, confidence)
            sign = expect.get(cond, {}).get(name.removeprefix("tag:"), 0)
            rows.append({"condition": cond, "role": role, "measure": name, "n_seeds": len(mine),
                         "first": _mean([a for a, _ in pairs]), "last": _mean([b for _, b in pairs]),
                         "change": _mean(changes), "change_lo": lo, "change_hi": hi, "expected": sign})  # fmt: skip
    return pd.DataFrame(rows, columns=MANIPULATION_COLUMNS)


def _collapsed(runs: Sequence[GrpoRun]) -> str:
    kinds = [r.collapse_kind or "collapsed" for r in runs if r.collapsed]
    return ", ".join(f"{kinds.count(k)} {k}" for k in sorted(set(kinds))) or "none"


def summary_table(
    table: pd.DataFrame, runs: Sequence[GrpoRun], signal: Mapping[str, Mapping[str, Any]],
    expect: Mapping[str, Mapping[str, int]],
) -> pd.DataFrame:  # fmt: skip
    """One row per condition: what the report's manipulation-check table shows, with the verdict.

    ``took``: ``yes`` when the reward slope's interval lies above 0, ``no`` otherwise, ``n/a`` for
    the no-signal control (nothing to take); the indicator is the audit tag the condition is
    meant to move (its registry ``expect``), first and last quarter.
    """
    rows = []
    for cond, part in table.groupby("condition", sort=False):
        by = part.set_index("measure")
        role = str(part["role"].iloc[0])
        slope = by.loc["reward_slope_per_100_steps"]
        reward = by.loc["reward"] if "reward" in by.index else None
        tags = list(expect.get(str(cond), {}))
        indicator = next((t for t in tags if f"tag:{t}" in by.index), tags[0] if tags else "")
        ind = by.loc[f"tag:{indicator}"] if f"tag:{indicator}" in by.index else None
        took = "n/a" if role == "control" else ("yes" if np.isfinite(slope.change_lo) and slope.change_lo > 0 else "no")
        rows.append({
            "condition": cond, "role": role, "n_seeds": int(slope.n_seeds),
            "collapsed": _collapsed([r for r in runs if r.condition == cond]),
            "signal_share": float(signal.get(str(cond), {}).get("varying_share", np.nan)),
            "reward_first": reward["first"] if reward is not None else np.nan,
            "reward_last": reward["last"] if reward is not None else np.nan,
            "slope": slope.change, "slope_lo": slope.change_lo, "slope_hi": slope.change_hi,
            "grad_norm": by.loc["grad_norm"]["last"], "indicator": indicator,
            "indicator_first": ind["first"] if ind is not None else 0.0,
            "indicator_last": ind["last"] if ind is not None else 0.0, "took": took,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _num(x: float, digits: int = 3) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.{digits}f}"


def _why(row: pd.Series) -> str:
    if row.took != "no":
        return ""
    if "starved" in row.collapsed:
        return f"{row.condition} starved (its rewards stopped varying at the bottom of their range)"
    if np.isfinite(row.signal_share) and row.signal_share < 0.2:
        return f"{row.condition}: only {row.signal_share:.0%} of the DPO model's groups had varying rewards before training"
    return f"{row.condition}: its reward did not rise reliably over {int(row.n_seeds)} seeds"


def _short_why(row: Any) -> str:
    if "starved" in row.collapsed:
        return "starved"
    if np.isfinite(row.signal_share) and row.signal_share < 0.2:
        return f"only {row.signal_share:.0%} of groups had varying rewards"
    return "no reliable rise"


def checks_sentence(summary: pd.DataFrame) -> str:
    """The manipulation checks in one sentence for the report's answer: which conditions' rewards rose
    (slope interval above 0) and which did not, with the short reason."""
    took = summary[summary.took == "yes"].condition.tolist()
    failed = [f"{r.condition} ({_short_why(r)})" for r in summary[summary.took == "no"].itertuples()]
    if not took and not failed:
        return "Manipulation checks: no condition besides the control, so nothing to check."
    if not failed:
        return f"Manipulation checks passed: the reward rose (slope interval above 0) in {', '.join(took)}."
    text = f"Manipulation checks: the reward rose (slope interval above 0) in {', '.join(took) or 'no condition'}"
    return text + f"; not in {', '.join(failed)}, so a null there says nothing about that treatment."


def section(summary: pd.DataFrame, steps: int) -> list[Any]:
    """Report blocks: the manipulation-check paragraph and table, read before any safety result."""
    from misalign_fv.report.render import Heading, Paragraph, Table

    took = summary[summary.took == "yes"].condition.tolist()
    failed = summary[summary.took == "no"]
    control = summary[summary.role == "control"]
    text = (
        f"A manipulation took when the reward a condition pays rose over training: the least-squares slope of the "
        f"logged mean reward (per 100 of {steps} steps) has a t interval over seeds above 0. "
        f"Took: {', '.join(took) or 'none'}."
    )
    if len(failed):
        text += " Did not take: " + "; ".join(_why(r) for r in failed.itertuples()) + ". A null result of these "
        text += "conditions on the safety endpoints says nothing about their treatment."
    for r in control.itertuples():
        text += (f" The no-signal control {r.condition} (rewards permuted within groups) made updates of mean "
                 f"gradient norm {_num(r.grad_norm)}.")  # fmt: skip
    rows = tuple(
        (r.condition, r.role, r.collapsed, _num(r.signal_share, 2), f"{_num(r.reward_first)} -> {_num(r.reward_last)}",
         f"{_num(r.slope)} [{_num(r.slope_lo)}, {_num(r.slope_hi)}]", _num(r.grad_norm),
         f"{r.indicator}: {_num(r.indicator_first, 2)} -> {_num(r.indicator_last, 2)}" if r.indicator else "-", r.took)
        for r in summary.itertuples()
    )  # fmt: skip
    header = ("Condition", "Role", "Collapsed", "Groups varying (preflight)", "Reward first -> last quarter",
              "Reward slope / 100 steps [95% t CI]", "Mean grad norm", "Indicator first -> last", "Took")  # fmt: skip
    return [
        Heading(2, "Manipulation checks"),
        Paragraph(text),
        Table(header, rows),
        Paragraph("Every audit tag's rate in the first and last quarter of training, per condition, with the "
                  "change's t interval over seeds, is in manipulation.csv."),  # fmt: skip
    ]
