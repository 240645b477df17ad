"""Flags on inputs, and what each one does to the numbers.

Policy:

* **Excluded** - a GRPO run that collapsed, a GRPO run that made no update (no step had a nonzero
  gradient), a GRPO evaluation whose judge coverage is below the threshold, and a GRPO metric with
  no value. The affected seed values are left out of every mean, interval, test and MDE; the
  exclusion is listed beside the numbers (``excluded`` in stats.csv, the headline table, the
  benchmark paragraphs) and the excluded seeds are drawn as crosses in the figures.
* **Tainted** - a failed DPO gate, and a base or DPO evaluation with low judge coverage or a missing
  value. There is only one base and one DPO checkpoint, so nothing can be excluded; every number
  they feed is marked (``tainted`` in stats.csv, a dagger in the tables, a sentence in the text).
  A failed gate taints the DPO checkpoint and every GRPO checkpoint trained from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from misalign_fv.report.load import EvalResult, Gate, GrpoRun

EXCLUDED = "excluded"
TAINTED = "tainted"
REFERENCES = ("base", "dpo")


@dataclass(frozen=True)
class Flag:
    """One problem with an input. Empty ``checkpoint``/``benchmark``/``metric`` mean "all"."""

    kind: str
    checkpoint: str
    condition: str
    seed: int | None
    benchmark: str
    metric: str
    detail: str
    action: str

    def applies(self, benchmark: str, metric: str) -> bool:
        """Whether the flag concerns ``benchmark``/``metric``."""
        return self.benchmark in ("", benchmark) and self.metric in ("", metric)

    def covers(self, checkpoint: str) -> bool:
        """Whether the flag concerns ``checkpoint``; a study-wide flag covers all but the base model."""
        return self.checkpoint == checkpoint or (self.checkpoint == "" and checkpoint != "base")

    @property
    def label(self) -> str:
        """Short human-readable form, e.g. ``fv_exploit/seed2: collapsed at step 40``."""
        where = " ".join(p for p in (self.checkpoint, "/".join(p for p in (self.benchmark, self.metric) if p)) if p)
        return f"{where}: {self.detail}" if where else self.detail


def _run_flags(run: GrpoRun) -> list[Flag]:
    out = []
    if run.collapsed:
        at = f" at step {run.collapse_step}" if run.collapse_step is not None else ""
        out.append(Flag("collapsed", run.checkpoint, run.condition, run.seed, "", "", f"collapsed{at}", EXCLUDED))
    if not run.updated:
        detail = "made no update: no step had a nonzero gradient"
        out.append(Flag("no_update", run.checkpoint, run.condition, run.seed, "", "", detail, EXCLUDED))
    return out


def _eval_flags(result: EvalResult, metric_names: Sequence[str], threshold: float) -> list[Flag]:
    action = TAINTED if result.checkpoint in REFERENCES else EXCLUDED
    base = (result.checkpoint, result.condition, result.seed, result.benchmark)
    out = []
    cov = result.judge_coverage
    if cov is not None and not cov >= threshold:
        out.append(Flag("low_judge_coverage", *base, "", f"judge coverage {cov:.2f} < {threshold:.2f}", action))
    for metric in metric_names:
        if not np.isfinite(result.metrics.get(metric, np.nan)):
            out.append(Flag("missing_value", *base, metric, "no value", action))
    return out


def collect_flags(
    evals: Sequence[EvalResult], runs: Sequence[GrpoRun], gate: Gate, coverage_threshold: float
) -> list[Flag]:
    """Every flag raised by the inputs, sorted."""
    metrics_by_bench: dict[str, set[str]] = {}
    for e in evals:
        metrics_by_bench.setdefault(e.benchmark, set()).update(e.metrics)
    flags = [f for r in runs for f in _run_flags(r)]
    flags += [f for e in evals for f in _eval_flags(e, sorted(metrics_by_bench[e.benchmark]), coverage_threshold)]
    if not gate.passed:
        reasons = "; ".join(gate.reasons) or "no reason given"
        enforced = "enforced" if gate.enforce else "not enforced"
        flags.append(Flag("gate_failed", "", "", None, "", "", f"DPO gate failed ({enforced}): {reasons}", TAINTED))
    # Study-wide flags first, then by checkpoint.
    return sorted(flags, key=lambda f: (f.checkpoint != "", f.checkpoint, f.benchmark, f.metric, f.kind, f.detail))


def flags_for(flags: Sequence[Flag], checkpoint: str, benchmark: str, metric: str) -> list[Flag]:
    """The flags on one number: checkpoint ``checkpoint``, ``benchmark``/``metric``."""
    return [f for f in flags if f.covers(checkpoint) and f.applies(benchmark, metric)]


def exclusions(flags: Sequence[Flag], checkpoint: str, benchmark: str, metric: str) -> list[Flag]:
    """The flags that exclude this checkpoint's value of ``benchmark``/``metric`` from the statistics."""
    return [f for f in flags_for(flags, checkpoint, benchmark, metric) if f.action == EXCLUDED]


def taints(flags: Sequence[Flag], benchmark: str, metric: str) -> list[Flag]:
    """The reference-level flags that taint every statistic of ``benchmark``/``metric``."""
    return [f for f in flags if f.action == TAINTED and f.applies(benchmark, metric)]
