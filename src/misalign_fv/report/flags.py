"""Flags on inputs, and what each one does to the numbers.

Policy:

* **Labelled** - a GRPO run that collapsed. Collapse is an outcome of the reward condition, not a
  broken input: the run stays in every mean, interval, test and MDE, and its label says which kind
  ("starved": every group's rewards equal at the bottom, nothing succeeds; "saturated": all equal at
  the top) beside the numbers (``labelled`` in stats.csv). Stopping a collapsed run early to save
  compute is allowed; the checkpoint it stopped at is the one evaluated.
* **Excluded** - a GRPO run that made no update (no step had a nonzero gradient) without having
  collapsed, a GRPO evaluation whose judge coverage is below the threshold (its judge-derived metrics
  only), and a GRPO metric with no value. The affected seed values are left out of every mean,
  interval, test and MDE; the exclusion is listed beside the numbers (``excluded`` in stats.csv, the
  headline table, the benchmark paragraphs) and the excluded seeds are drawn as crosses in the figures.
* **Tainted** - a failed DPO gate, and a base or DPO evaluation with low judge coverage (judge-derived
  metrics only) or a missing value. There is only one base and one DPO checkpoint, so nothing can be
  excluded; every number they feed is marked (``tainted`` in stats.csv, a dagger in the tables, a
  sentence in the text). A failed gate taints the DPO checkpoint and every GRPO checkpoint trained from it.
  A judge that failed validation (``results/judge_validation.json``) taints every judged benchmark's
  judge-derived metrics on every checkpoint, base included: all of them were read by that judge.

Judge coverage and judge validation concern only what the judge scored: metrics a benchmark computes without its judge
(XSTest's string-match refusal rates) keep their values whatever the coverage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from misalign_fv.report.load import EvalResult, Gate, GrpoRun

EXCLUDED = "excluded"
TAINTED = "tainted"
LABELLED = "labelled"
REFERENCES = ("base", "dpo")
LOW_COVERAGE = "low_judge_coverage"
JUDGE_INVALID = "judge_failed_validation"
JUDGE_KINDS = (LOW_COVERAGE, JUDGE_INVALID)  # flags that concern judge-derived metrics only
# Metrics of judged benchmarks that do not use the judge, by name prefix.
JUDGE_FREE_PREFIXES: dict[str, tuple[str, ...]] = {"xstest": ("strmatch_",)}
COLLAPSE_KINDS = {
    "starved": "starved: every group's rewards equal at the bottom, nothing succeeds",
    "saturated": "saturated: every group's rewards equal at the top",
}


def judge_derived(benchmark: str, metric: str) -> bool:
    """Whether ``benchmark``/``metric`` comes from the LLM judge (an empty metric means "any")."""
    return not (metric and metric.startswith(JUDGE_FREE_PREFIXES.get(benchmark, ())))


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
        """Whether the flag concerns ``benchmark``/``metric``; a judge flag only judge-derived metrics."""
        if self.kind in JUDGE_KINDS and not judge_derived(benchmark, metric):
            return False
        return self.benchmark in ("", benchmark) and self.metric in ("", metric)

    def covers(self, checkpoint: str) -> bool:
        """Whether the flag concerns ``checkpoint``; a study-wide flag covers all but the base model, except a
        failed judge validation, which covers the base model's judged numbers too."""
        if self.checkpoint == "":
            return checkpoint != "base" or self.kind == JUDGE_INVALID
        return self.checkpoint == checkpoint

    @property
    def label(self) -> str:
        """Short human-readable form, e.g. ``fv_exploit/seed2: collapsed at step 40``."""
        where = " ".join(p for p in (self.checkpoint, "/".join(p for p in (self.benchmark, self.metric) if p)) if p)
        return f"{where}: {self.detail}" if where else self.detail


def _run_flags(run: GrpoRun) -> list[Flag]:
    """A collapse labels the run; no update excludes it unless it collapsed (then it is the outcome)."""
    out = []
    if run.collapsed:
        at = f" at step {run.collapse_step}" if run.collapse_step is not None else ""
        kind = COLLAPSE_KINDS.get(run.collapse_kind or "", "kind not recorded")
        detail = f"collapsed{at} ({kind})"
        out.append(Flag("collapsed", run.checkpoint, run.condition, run.seed, "", "", detail, LABELLED))
    if not run.updated:
        detail = "made no update: no step had a nonzero gradient"
        action = LABELLED if run.collapsed else EXCLUDED
        out.append(Flag("no_update", run.checkpoint, run.condition, run.seed, "", "", detail, action))
    return out


def _eval_flags(result: EvalResult, metric_names: Sequence[str], threshold: float) -> list[Flag]:
    action = TAINTED if result.checkpoint in REFERENCES else EXCLUDED
    base = (result.checkpoint, result.condition, result.seed, result.benchmark)
    out = []
    cov = result.judge_coverage
    if cov is not None and not cov >= threshold:
        detail = f"judge coverage {cov:.2f} < {threshold:.2f}"
        out.append(Flag(LOW_COVERAGE, *base, "", detail, action))
    for metric in metric_names:
        if not np.isfinite(result.metrics.get(metric, np.nan)):
            out.append(Flag("missing_value", *base, metric, "no value", action))
    return out


def collect_flags(
    evals: Sequence[EvalResult], runs: Sequence[GrpoRun], gate: Gate, coverage_threshold: float,
    extra: Sequence[Flag] = (),
) -> list[Flag]:  # fmt: skip
    """Every flag raised by the inputs, plus ``extra`` (e.g. a failed judge validation), sorted."""
    metrics_by_bench: dict[str, set[str]] = {}
    for e in evals:
        metrics_by_bench.setdefault(e.benchmark, set()).update(e.metrics)
    flags = [*extra, *(f for r in runs for f in _run_flags(r))]
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


def labels(flags: Sequence[Flag], checkpoint: str, benchmark: str, metric: str) -> list[Flag]:
    """The labels (collapse) on this checkpoint's value of ``benchmark``/``metric``; the value stays in."""
    return [f for f in flags_for(flags, checkpoint, benchmark, metric) if f.action == LABELLED]


def effect(flag: Flag) -> str:
    """What the flag does to the numbers, in words (for the report's flag list)."""
    if flag.action == EXCLUDED:
        scope = " (judge-derived metrics only)" if flag.kind in JUDGE_KINDS else ""
        return f"excluded from every mean, interval, test and MDE{scope}"
    if flag.action == LABELLED:
        return "an outcome, kept in every statistic and labelled beside the numbers"
    scope = " judge-derived" if flag.kind in JUDGE_KINDS else ""
    return f"cannot be excluded; every{scope} number it feeds is marked †"


def taints(flags: Sequence[Flag], benchmark: str, metric: str) -> list[Flag]:
    """The reference-level flags that taint every statistic of ``benchmark``/``metric``."""
    return [f for f in flags if f.action == TAINTED and f.applies(benchmark, metric)]
