"""The report's content, generated from the tables: every sentence is a template filled with numbers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from misalign_fv.report.analysis import methods_lines
from misalign_fv.report.config import ReportSettings
from misalign_fv.report.figures import EM_BENCHMARKS
from misalign_fv.report.flags import Flag, effect
from misalign_fv.report.load import Gate
from misalign_fv.report.render import Block, Bullets, Heading, Image, Paragraph, Table

FIGURES = ("fig_benchmarks", "fig_training", "fig_em_scatter", "fig_dpo_gate")
DAGGER = "†"


def fmt(x: float) -> str:
    """Three significant digits (one decimal from 100 up, so no exponent); ``n/a`` for NaN."""
    if not np.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:#.3g}"


def fmt_p(p: float) -> str:
    """A p-value to three decimals, ``<0.001`` below that; ``n/a`` for NaN."""
    if not np.isfinite(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_ci(lo: float, hi: float) -> str:
    """``[lo, hi]`` or ``n/a``."""
    return "n/a" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{fmt(lo)}, {fmt(hi)}]"


def fmt_est(x: float, lo: float, hi: float) -> str:
    """An estimate with its interval, ``x [lo, hi]``; the interval is left out when it is not estimable."""
    if not np.isfinite(x):
        return "n/a"
    return f"{fmt(x)} {fmt_ci(lo, hi)}" if np.isfinite(lo) and np.isfinite(hi) else fmt(x)


def _flag_section(flags: Sequence[Flag], runs: pd.DataFrame, cfg: ReportSettings) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Flags")]
    if not flags:
        blocks.append(Paragraph(
            "No flags: no run collapsed, every run updated, every judge coverage is at or above "
            f"{cfg.coverage_threshold:.2f}, every metric has a value, and the DPO gate passed."
        ))  # fmt: skip
        return blocks
    items = [f"{f.label} - {effect(f)}." for f in flags]
    for cond in cfg.conditions:
        own = runs[runs.condition == cond]
        if len(own) and not own.updated.any():
            items.append(f"Condition {cond} made no update in any seed, so it has no estimate.")
    blocks.append(Bullets(tuple(items)))
    blocks.append(Paragraph(
        "Policy: a collapse is an outcome: the run stays in every statistic, labelled. Run-level flags (no "
        "update without collapse, low judge coverage on judge-derived metrics or a missing value on a GRPO "
        "evaluation) exclude the affected seed values; reference-level flags (a failed DPO gate, low judge "
        "coverage or a missing value on the base or DPO evaluation, a judge that failed validation) taint the "
        f"numbers they feed ({DAGGER})."
    ))  # fmt: skip
    return blocks


def _setup_section(cfg: ReportSettings, compute: pd.DataFrame) -> list[Block]:
    wall, gpu = compute.wall_h.sum(), compute.gpu_h.sum()
    setup = Table(
        ("Setting", "Value"),
        (
            ("Model", cfg.model),
            ("Task", cfg.task),
            ("Conditions", ", ".join(cfg.conditions)),
            ("Control", cfg.control),
            ("Seeds", ", ".join(str(s) for s in cfg.seeds)),
            ("GRPO steps", str(cfg.steps)),
            ("Hardware", cfg.hardware),
            ("Wall time, all jobs (h)", f"{wall:.2f}"),
            ("GPU hours", f"{gpu:.2f}"),
        ),
    )
    per_rule = Table(
        ("Rule", "Jobs", "Wall (h)", "GPUs per job", "GPU hours"),
        tuple((r.rule, str(r.jobs), f"{r.wall_h:.2f}", str(r.gpus), f"{r.gpu_h:.2f}") for r in compute.itertuples()),
    )
    note = Paragraph("Times are summed from the Snakemake benchmark files; GPU hours = wall seconds x the "
                     "rule's GPUs per job (0 for rules not listed in gpus_per_rule) / 3600.")  # fmt: skip
    return [Heading(2, "Setup"), setup, per_rule, note]


def _row_flags(row: pd.Series) -> str:
    parts = [f"excluded: {row.excluded}"] if row.excluded else []
    if row.labelled:
        parts.append(f"labelled: {row.labelled}")
    if row.tainted:
        parts.append(f"{DAGGER} {row.tainted}")
    return "; ".join(parts)


def _headline_section(
    cfg: ReportSettings, stats: pd.DataFrame, scores: pd.DataFrame
) -> list[Block]:
    pct = f"{cfg.confidence:.0%}"
    header = (
        "Benchmark / metric", "Checkpoint", "Seeds used", f"Mean [{pct} t CI]",
        f"Δ vs {cfg.control} [{pct} t CI]", "p (Holm if primary)", "MDE", f"Δ vs DPO [{pct} t CI]", "p", "Flags",
    )  # fmt: skip
    rows = []
    for bench, metric in cfg.headline_pairs():
        for ref in ("base", "dpo"):
            sel = scores[(scores.checkpoint == ref) & (scores.benchmark == bench) & (scores.metric == metric)]
            r = sel.iloc[0]
            cell = f"{fmt_est(r.value, r.ci_lo, r.ci_hi)} (eval CI)"
            mark = f"{DAGGER} {r.flag_detail}" if r.flag_detail else ""
            rows.append((f"{bench} / {metric}", ref, "-", cell, "-", "-", "-", "-", "-", mark))
        sel = stats[(stats.benchmark == bench) & (stats.metric == metric)]
        for r in sel.itertuples():
            control = r.condition == cfg.control
            name = f"{r.condition}{' ' + DAGGER if r.tainted else ''}"
            rows.append((
                f"{bench} / {metric}", name, f"{r.n_seeds}/{len(cfg.seeds)}",
                fmt_est(r.mean, r.t_lo, r.t_hi),
                "(control)" if control else fmt_est(r.diff_control, r.diff_control_t_lo, r.diff_control_t_hi),
                "-" if control else fmt_p(r.p_adj_control if r.family == "primary" else r.p_control),
                "-" if control else fmt(r.mde_control),
                fmt_est(r.diff_dpo, r.diff_dpo_t_lo, r.diff_dpo_t_hi), fmt_p(r.p_dpo),
                _row_flags(pd.Series(r._asdict())),
            ))  # fmt: skip
    note = Paragraph(
        f"Means are over the included seeds; the MDE is the smallest true difference from {cfg.control} that "
        f"the seed-level t-test detects with {cfg.power:.0%} power. Primary endpoints: Holm-adjusted p over the "
        f"{cfg.family_size} primary tests, MDE at α = {cfg.corrected_alpha:.4g}; every other row is exploratory: "
        f"uncorrected p, MDE at α = {cfg.alpha:g}."
    )
    return [Heading(2, "Headline results"), Table(header, tuple(rows)), note]


def _metric_sentences(cfg: ReportSettings, rows: pd.DataFrame, bench: str, metric: str) -> str:
    pct = f"{cfg.confidence:.0%}"
    first = rows.iloc[0]
    out = [f"On {bench}/{metric}, the base model scored {fmt(first.base)} and the DPO checkpoint {fmt(first.dpo)}."]
    control = rows[rows.condition == cfg.control].iloc[0]
    for r in rows.itertuples():
        used = f"{r.n_seeds} of {len(cfg.seeds)} seeds" + (f"; excluded {r.excluded}" if r.excluded else "")
        vs_dpo = (
            f"changed by {fmt(r.diff_dpo)} ({pct} CI {fmt_ci(r.diff_dpo_t_lo, r.diff_dpo_t_hi)}) vs DPO, "
            f"uncorrected p = {fmt_p(r.p_dpo)}"
        )
        if r.condition == cfg.control:
            out.append(f"The control {r.condition} ({used}) averaged {fmt(r.mean)} and {vs_dpo}.")
        elif r.n_seeds < 2 or control.n_seeds < 2:
            out.append(
                f"{r.condition} ({used}) averaged {fmt(r.mean)}; its difference from {cfg.control} is not "
                f"estimable (fewer than 2 usable seeds in {r.condition} or {cfg.control})."
            )
        else:
            out.append(
                f"{r.condition} ({used}) changed by {fmt(r.diff_control)} ({pct} CI "
                f"{fmt_ci(r.diff_control_t_lo, r.diff_control_t_hi)}) vs {cfg.control}; "
                + (f"Holm p = {fmt_p(r.p_adj_control)} (primary)" if r.family == "primary"
                   else f"p = {fmt_p(r.p_control)} (exploratory, uncorrected)")
                + f"; the design detects |Δ| >= {fmt(r.mde_control)} with {cfg.power:.0%} power "
                f"(α = {r.mde_control_alpha:.4g}). It {vs_dpo}."
            )
    if first.tainted:
        out.append(f"{DAGGER} Tainted: {first.tainted}.")
    return " ".join(out)


def _benchmark_section(cfg: ReportSettings, stats: pd.DataFrame, scores: pd.DataFrame) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Results by benchmark")]
    for bench in sorted(stats.benchmark.unique()):
        rows = stats[stats.benchmark == bench]
        headline = list(cfg.headline_metrics.get(bench, ()))
        metrics = headline or sorted(rows.metric.unique())
        n = scores[(scores.benchmark == bench) & (scores.checkpoint == "dpo")].n.iloc[0]
        blocks.append(Heading(3, bench))
        for i, metric in enumerate(metrics):
            text = [f"{bench} has n = {n} items in the DPO evaluation."] if i == 0 else []
            text.append(_metric_sentences(cfg, rows[rows.metric == metric], bench, metric))
            blocks.append(Paragraph(" ".join(text)))
        others = sorted(set(rows.metric) - set(metrics))
        if others:
            blocks.append(Paragraph(f"Other {bench} metrics ({', '.join(others)}) are in stats.csv."))
    if not any(b in stats.benchmark.unique() for b in EM_BENCHMARKS):
        blocks.append(Paragraph(
            "No EM benchmark (em_main or em_prereg) was evaluated, so this report has no emergent-misalignment "
            "result and the EM scatter figure is a placeholder."
        ))  # fmt: skip
    return blocks


def _figure_section(cfg: ReportSettings, gate: Gate, has_em: bool) -> list[Block]:
    pct = f"{cfg.confidence:.0%}"
    captions = {
        "fig_benchmarks": (
            "Headline metrics per GRPO condition. Dots: one seed each; crosses: excluded (flagged) seeds, not in "
            f"the mean. Diamond and whiskers: mean over included seeds with its {pct} t interval. "
            "Dashed grey: base model; dash-dot black: DPO checkpoint. "
            f"{DAGGER}: tainted."
        ),
        "fig_training": (
            "GRPO training curves. Lines: mean over included seeds; bands: min-max over included seeds; dashed: "
            "excluded (flagged) runs. Bottom panels: share of sampled completions carrying each tag, per step."
        ),
        "fig_em_scatter": (
            "Alignment vs coherence judge scores, one point per answer, included seeds pooled per condition; "
            "shaded: misaligned quadrant (aligned < 30, coherent > 50)."
            if has_em
            else "Placeholder: no EM benchmark (em_main or em_prereg) was evaluated."
        ),
        "fig_dpo_gate": (
            f"DPO gate ({'passed' if gate.passed else 'FAILED'}, {'enforced' if gate.enforce else 'not enforced'})"
            ": refusal rate and narrow-task pass rate before and after safety DPO, with Wilson 95% intervals."
        ),
    }
    return [Heading(2, "Figures"), *(Image(f"{name}.png", f"{name}.pdf", captions[name]) for name in FIGURES)]


def _runs_section(runs: pd.DataFrame) -> list[Block]:
    rows = tuple(
        (r.condition, str(r.seed), r.steps, r.resumed_from or "-", f"{r.wall_h:.2f}",
         "yes" if r.collapsed else "no", "yes" if r.updated else "no", r.flags or "-")
        for r in runs.itertuples()
    )  # fmt: skip
    header = ("Condition", "Seed", "Steps", "Resumed from", "Wall (h)", "Collapsed", "Updated", "Flags")
    return [Heading(2, "GRPO runs"), Table(header, rows)]


def _methods_section(cfg: ReportSettings) -> list[Block]:
    return [Heading(2, "Methods"), Bullets(methods_lines(cfg))]


def compose_report(
    cfg: ReportSettings,
    stats: pd.DataFrame,
    scores: pd.DataFrame,
    flags: Sequence[Flag],
    runs: pd.DataFrame,
    compute: pd.DataFrame,
    gate: Gate,
) -> list[Block]:
    """The whole report as blocks: flags, setup, headline table, text per benchmark, figures, runs, methods."""
    has_em = any(b in stats.benchmark.unique() for b in EM_BENCHMARKS)
    return [
        Heading(1, cfg.title),
        Paragraph("Generated by misalign_fv.report from the result files alone; every number and sentence "
                  "below is computed from them."),  # fmt: skip
        *_flag_section(flags, runs, cfg),
        *_setup_section(cfg, compute),
        *_headline_section(cfg, stats, scores),
        *_benchmark_section(cfg, stats, scores),
        *_figure_section(cfg, gate, has_em),
        *_runs_section(runs),
        *_methods_section(cfg),
    ]
