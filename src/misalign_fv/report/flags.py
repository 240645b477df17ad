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

from misalign_fv.benchmarks import JUDGE_FREE_PREFIXES
from misalign_fv.report.load import EvalResult, Gate, GrpoRun

EXCLUDED = "excluded"
TAINTED = "tainted"
LABELLED = "labelled"
REFERENCES = ("base", "dpo")
LOW_COVERAGE = "low_judge_coverage"
JUDGE_INVALID = "judge_failed_validation"
JUDGE_KINDS = (LOW_COVERAGE, JUDGE_INVALID)  # flags that concern judge-derived metrics only
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


CAUSES = {
    JUDGE_INVALID: "Judge failed validation",
    LOW_COVERAGE: "Low judge coverage",
    "missing_value": "No value",
    "collapsed": "Collapsed",
    "no_update": "No update",
    "gate_failed": "DPO gate failed",
}


def _where(checkpoints: set[str], grpo_total: int) -> str:
    """``3 checkpoints (base, dpo, 1 of 12 GRPO runs)``; GRPO runs named when there are at most 3."""
    refs = [c for c in REFERENCES if c in checkpoints]
    runs = sorted(checkpoints - set(REFERENCES))
    parts = list(refs)
    if runs:
        named = f": {', '.join(runs)}" if len(runs) <= 3 else ""
        parts.append(f"{len(runs)} of {grpo_total} GRPO runs{named}")
    noun = "checkpoint" if len(checkpoints) == 1 else "checkpoints"
    return f"{len(checkpoints)} {noun} ({', '.join(parts)})"


def _effects(group: Sequence[Flag]) -> str:
    actions = {f.action for f in group}
    judged = " judge-derived" if all(f.kind in JUDGE_KINDS for f in group) else ""
    out = []
    if EXCLUDED in actions:
        out.append(f"GRPO seed values excluded from the{judged} statistics")
    if TAINTED in actions:
        out.append(f"the{judged} numbers they feed marked †")
    if LABELLED in actions:
        out.append("kept as outcomes, labelled")
    return "; ".join(out)


def cause_lines(flags: Sequence[Flag], grpo_checkpoints: Sequence[str]) -> list[str]:
    """The flags grouped by cause, one line each with the affected checkpoints counted.

    A cause is a flag kind on one benchmark (or on the runs). A missing judge-derived value on a
    checkpoint whose judge coverage on that benchmark is low is that low coverage's consequence, so it is
    counted on the coverage line, not as a cause of its own."""
    low = {(f.checkpoint, f.benchmark) for f in flags if f.kind == LOW_COVERAGE}
    consequences: dict[str, set[str]] = {}
    groups: dict[tuple[str, str], list[Flag]] = {}
    for f in flags:
        if f.kind == "missing_value" and (f.checkpoint, f.benchmark) in low and judge_derived(f.benchmark, f.metric):
            consequences.setdefault(f.benchmark, set()).add(f.metric)
            continue
        groups.setdefault((f.kind, f.benchmark), []).append(f)
    lines = []
    for (kind, bench), group in groups.items():
        details = sorted({f.detail for f in group})
        cause = CAUSES.get(kind, kind)
        if kind == "collapsed":
            kinds = [next((k for k in COLLAPSE_KINDS if f"({k}:" in f.detail), "kind not recorded") for f in group]
            what = f"{cause} ({', '.join(f'{kinds.count(k)} {k}' for k in sorted(set(kinds)))})"
        elif kind == "missing_value":
            metrics = sorted({f.metric for f in group})
            what = f"{cause} on {bench}: {len(metrics)} metric{'s' if len(metrics) > 1 else ''} ({', '.join(metrics)})"
        elif len(details) == 1 and kind in (JUDGE_INVALID, "gate_failed", LOW_COVERAGE):
            what = f"{details[0][0].upper()}{details[0][1:]}" + (f" on {bench}" if bench else "")
        else:
            what = f"{cause}" + (f" on {bench}" if bench else "")
        study_wide = all(f.checkpoint == "" for f in group)
        if study_wide:  # see Flag.covers
            where = "every checkpoint" if kind == JUDGE_INVALID else "every checkpoint but the base model"
        else:
            where = _where({f.checkpoint for f in group}, len(grpo_checkpoints))
        line = f"{what}: {where}"
        if kind == LOW_COVERAGE and consequences.get(bench):
            n = len(consequences[bench])
            line += f"; so {n} judge-derived metric{'s have' if n > 1 else ' has'} no value there"
        lines.append(f"{line}; {_effects(group)}.")
    return lines
