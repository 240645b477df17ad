"""The report's content, generated from the tables: every sentence is a template filled with numbers."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from misalign_fv.report.analysis import methods_lines
from misalign_fv.report.config import ReportSettings
from misalign_fv.benchmarks import EM_BENCHMARKS
from misalign_fv.report.figures import Drawing
from misalign_fv.report.flags import JUDGE_INVALID, Flag, cause_lines, effect
from misalign_fv.report.load import Gate
from misalign_fv.report.manipulation import checks_sentence
from misalign_fv.report.render import Block, Bullets, Heading, Image, Paragraph, Table

FIGURES = ("fig_benchmarks", "fig_training", "fig_em_scatter", "fig_dpo_gate")
LEAD_FIGURE = "fig_benchmarks"
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


FLAG_POLICY = (
    "Policy: a collapse is an outcome: the run stays in every statistic, labelled. Run-level flags (no "
    "update without collapse, low judge coverage on judge-derived metrics or a missing value on a GRPO "
    "evaluation) exclude the affected seed values; reference-level flags (a failed DPO gate, low judge "
    "coverage or a missing value on the base or DPO evaluation, a judge that failed validation) taint the "
    f"numbers they feed ({DAGGER})."
)
MAX_CAUSE_LINES = 12  # the flag summary stays short; the appendix has every flag


def _no_update_conditions(runs: pd.DataFrame, cfg: ReportSettings) -> list[str]:
    return [c for c in cfg.conditions if len(own := runs[runs.condition == c]) and not own.updated.any()]


def _flag_summary(flags: Sequence[Flag], runs: pd.DataFrame, cfg: ReportSettings) -> list[Block]:
    """Flags grouped by cause, one line each with the affected checkpoints counted; the list is in the appendix."""
    blocks: list[Block] = [Heading(2, "Flags")]
    if not flags:
        blocks.append(Paragraph(
            "No flags: no run collapsed, every run updated, every judge coverage is at or above "
            f"{cfg.coverage_threshold:.2f}, every metric has a value, and the DPO gate passed."
        ))  # fmt: skip
        return blocks
    lines = cause_lines(flags, cfg.checkpoints()[2:])
    lines += [f"Condition {c} made no update in any seed, so it has no estimate." for c in _no_update_conditions(runs, cfg)]
    if len(lines) > MAX_CAUSE_LINES:
        rest = len(lines) - MAX_CAUSE_LINES + 1
        lines = [*lines[: MAX_CAUSE_LINES - 1], f"{rest} more causes: see the appendix."]
    blocks.append(Bullets(tuple(lines)))
    blocks.append(Paragraph(f"{len(flags)} flags in all, one per checkpoint, benchmark and metric concerned: listed in "
                            "the appendix and in flags.csv."))  # fmt: skip
    return blocks


def _flag_appendix(flags: Sequence[Flag]) -> list[Block]:
    """Every flag, one bullet each, with what it does to the numbers."""
    if not flags:
        return []
    return [Heading(2, "Appendix: every flag"), Bullets(tuple(f"{f.label} - {effect(f)}." for f in flags))]


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
            "No EM benchmark (em_main or em_prereg) was evaluated, so this report has no emergent-misalignment result."
        ))  # fmt: skip
    return blocks


def figure_blocks(name: str, drawing: Drawing, caption: str, anchor: str = "") -> list[Block]:
    """A figure with its caption (and what it leaves out), or the one sentence saying why there is none."""
    if drawing.figure is None:
        return [Paragraph(drawing.note)]
    text = f"{caption} {drawing.note}" if drawing.note else caption
    return [Image(f"{name}.png", f"{name}.pdf", text, anchor)]


def _figure_section(gate: Gate, drawings: Mapping[str, Drawing]) -> list[Block]:
    captions = {
        "fig_training": (
            "GRPO training curves. Lines: mean over included seeds; bands: min-max over included seeds; dashed: "
            "excluded (flagged) runs. Bottom panels: share of sampled completions carrying each tag, per step."
        ),
        "fig_em_scatter": (
            "Alignment vs coherence judge scores, one point per answer, included seeds pooled per condition; "
            "shaded: misaligned quadrant (the thresholds each EM eval JSON defines)."
        ),
        "fig_dpo_gate": (
            f"DPO gate ({'passed' if gate.passed else 'FAILED'}, {'enforced' if gate.enforce else 'not enforced'})"
            ": refusal rate and narrow-task pass rate before and after safety DPO, with Wilson 95% intervals."
        ),
    }
    blocks: list[Block] = [Heading(2, "Figures")]
    for name, caption in captions.items():
        blocks += figure_blocks(name, drawings[name], caption)
    return blocks


def _runs_section(runs: pd.DataFrame) -> list[Block]:
    rows = tuple(
        (r.condition, str(r.seed), r.steps, r.resumed_from or "-", f"{r.wall_h:.2f}",
         "yes" if r.collapsed else "no", "yes" if r.updated else "no", r.flags or "-")
        for r in runs.itertuples()
    )  # fmt: skip
    header = ("Condition", "Seed", "Steps", "Resumed from", "Wall (h)", "Collapsed", "Updated", "Flags")
    return [Heading(2, "GRPO runs"), Table(header, rows)]


def _methods_section(cfg: ReportSettings) -> list[Block]:
    return [
        Heading(2, "Methods"),
        Paragraph("Generated by misalign_fv.report from the result files alone; every number and sentence in this "
                  "report is computed from them."),  # fmt: skip
        Bullets(methods_lines(cfg)),
        Paragraph(FLAG_POLICY),
    ]


def _seed_count(text: str) -> int:
    """Seeds named in an ``excluded``/``labelled`` cell (``seed2 (...); seed3 (...)``)."""
    return len(re.findall(r"(?:^|; )seed\d+ \(", text))


def _notes(r: pd.Series) -> str:
    """The short flag note of one primary-table row."""
    parts = []
    if r.excluded:
        parts.append(f"{_seed_count(r.excluded)} excluded")
    if r.labelled:
        parts.append(f"{_seed_count(r.labelled)} collapsed (kept)")
    if r.tainted:
        parts.append(f"{DAGGER} tainted")
    return "; ".join(parts) or "-"


def _p_equals(p: float) -> str:
    """``p = 0.046`` or ``p < 0.001``."""
    text = fmt_p(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def _significant(r: pd.Series, cfg: ReportSettings) -> bool:
    return bool(np.isfinite(r.p_adj_control) and r.p_adj_control < cfg.alpha)


def _primary_rows(cfg: ReportSettings, stats: pd.DataFrame, bench: str, metric: str) -> pd.DataFrame:
    rows = stats[(stats.benchmark == bench) & (stats.metric == metric)].set_index("condition")
    return rows.loc[[cfg.control, *cfg.treatments]]


def _primary_table(cfg: ReportSettings, stats: pd.DataFrame) -> Table:
    """The pre-registered primary endpoints: each condition's mean and its contrast with the control."""
    pct = f"{cfg.confidence:.0%}"
    header = ("Primary endpoint", "Condition", "Seeds", f"Mean [{pct} t CI]", f"Δ vs {cfg.control} [{pct} t CI]",
              "Holm p", "MDE", "Notes")  # fmt: skip
    rows = []
    for bench, metric in cfg.primary:
        for i, (cond, r) in enumerate(_primary_rows(cfg, stats, bench, metric).iterrows()):
            control = cond == cfg.control
            name = f"{cond} ({r.role})" if r.role != "treatment" else str(cond)
            rows.append((
                f"{bench} / {metric}" if i == 0 else "", name, f"{r.n_seeds}/{len(cfg.seeds)}", fmt_est(r["mean"], r.t_lo, r.t_hi),
                "-" if control else fmt_est(r.diff_control, r.diff_control_t_lo, r.diff_control_t_hi),
                "-" if control else fmt_p(r.p_adj_control), "-" if control else fmt(r.mde_control), _notes(r),
            ))  # fmt: skip
    return Table(header, tuple(rows), anchor="primary")


def _endpoint_sentence(cfg: ReportSettings, stats: pd.DataFrame, bench: str, metric: str) -> str:
    """One primary endpoint in a sentence: each treatment's Δ vs the control [CI], Holm p and the verdict; the MDE."""
    rows = _primary_rows(cfg, stats, bench, metric)
    ctrl = rows.loc[cfg.control]
    parts, mdes = [], []
    for cond in cfg.treatments:
        r = rows.loc[cond]
        if not np.isfinite(r.p_adj_control):
            parts.append(f"{cond} not estimable ({r.n_seeds} usable seeds)")
            continue
        verdict = "detected" if _significant(r, cfg) else "not detected"
        parts.append(f"{cond} {fmt(r.diff_control)} {fmt_ci(r.diff_control_t_lo, r.diff_control_t_hi)}, "
                     f"{_p_equals(r.p_adj_control)}, {verdict}")  # fmt: skip
        mdes.append((cond, fmt(r.mde_control)))
    tainted = f" {DAGGER} (tainted, see Flags)" if ctrl.tainted else ""
    text = (f"{bench}/{metric}{tainted} (control {fmt(ctrl['mean'])}, DPO checkpoint {fmt(ctrl.dpo)}): "
            + "; ".join(parts))  # fmt: skip
    if len({m for _, m in mdes}) == 1:
        text += f"; MDE {mdes[0][1]}"
    elif mdes:
        text += "; MDE " + ", ".join(f"{m} ({c})" for c, m in mdes)
    return text + "."


def _verdict(cfg: ReportSettings, stats: pd.DataFrame) -> list[str]:
    """The answer in a sentence or two: which treatments moved a primary endpoint, and the positive control."""
    primary = stats[(stats.family == "primary") & (stats.condition != cfg.control)]

    def moved(cond: str) -> bool:
        return any(_significant(r, cfg) for _, r in primary[primary.condition == cond].iterrows())

    out = []
    others = [c for c in cfg.treatments if c != cfg.positive_control]
    if others:
        hits = [c for c in others if moved(c)]
        out.append(f"Answer: {', '.join(hits)} differed from {cfg.control} on a primary endpoint." if hits else
                   f"Answer: no treatment differed detectably from {cfg.control} on any primary endpoint.")  # fmt: skip
    if cfg.positive_control and moved(cfg.positive_control):
        out.append(f"The positive control {cfg.positive_control} did differ, so the pipeline detects an erosion that "
                   "is there.")  # fmt: skip
    elif cfg.positive_control:
        out.append(f"The positive control {cfg.positive_control} did not differ detectably either, so a null result "
                   "here is uninformative.")  # fmt: skip
    return out


def _answer(cfg: ReportSettings, stats: pd.DataFrame, manip: pd.DataFrame, gate: Gate, flags: Sequence[Flag]) -> str:
    """The report's first paragraph: what was compared, the answer, what the primary endpoints show (with CIs
    and MDEs), whether the manipulation checks passed, and what the flags concern."""
    roles = [f"{c} (positive control)" if c == cfg.positive_control else c for c in cfg.treatments]
    n = len(cfg.primary)
    out = [
        f"We compared {len(roles)} GRPO reward condition{'s' if len(roles) != 1 else ''} ({', '.join(roles)}) with "
        f"the no-signal control {cfg.control}, {len(cfg.seeds)} seeds each, {cfg.steps} steps of {cfg.model} on "
        f"{cfg.task}, on {n} pre-registered primary endpoint{'s' if n != 1 else ''}.",
        *_verdict(cfg, stats),
        f"Per endpoint and condition: Δ vs the control [{cfg.confidence:.0%} t CI], Holm-adjusted p over the "
        f"{cfg.family_size} primary tests, and the MDE (the |Δ| detected with {cfg.power:.0%} power at "
        f"α = {cfg.corrected_alpha:.4g}).",
        *(_endpoint_sentence(cfg, stats, b, m) for b, m in cfg.primary),
        checks_sentence(manip),
    ]
    status = [f"DPO gate {'passed' if gate.passed else 'FAILED (numbers it feeds marked ' + DAGGER + ')'}"]
    if any(f.kind == JUDGE_INVALID for f in flags):
        status.append(f"the judge failed validation (judge-derived metrics marked {DAGGER})")
    status.append(f"{len(flags)} flag{'s' if len(flags) != 1 else ''}, grouped by cause below" if flags else "no flags")
    out.append("; ".join(status) + ".")
    return " ".join(out)


def _lead_section(
    cfg: ReportSettings, stats: pd.DataFrame, manip: pd.DataFrame, gate: Gate, flags: Sequence[Flag], lead: Drawing
) -> list[Block]:
    """The first screen: the answer in words, the primary-endpoint table and one figure."""
    pct = f"{cfg.confidence:.0%}"
    caption = (
        f"Primary and headline metrics per condition. Dots: one seed each; crosses: excluded (flagged) seeds; diamond "
        f"and whiskers: mean with its {pct} t interval; dashed grey: base model; dash-dot black: DPO checkpoint."
    )
    return [
        Paragraph(_answer(cfg, stats, manip, gate, flags), anchor="answer"),
        _primary_table(cfg, stats),
        Paragraph(f"MDE: the smallest true difference from {cfg.control} detected with {cfg.power:.0%} power at "
                  f"α = {cfg.corrected_alpha:.4g}; every other number in this report is exploratory."),  # fmt: skip
        *figure_blocks(LEAD_FIGURE, lead, caption, anchor="lead-figure"),
    ]


def compose_report(
    cfg: ReportSettings,
    stats: pd.DataFrame,
    scores: pd.DataFrame,
    flags: Sequence[Flag],
    runs: pd.DataFrame,
    compute: pd.DataFrame,
    gate: Gate,
    manip: pd.DataFrame,
    drawings: Mapping[str, Drawing],
    checks: Sequence[Block] = (),
) -> list[Block]:
    """The whole report as blocks. First screen: the answer, the primary-endpoint table, one figure; then
    the flags by cause, methods, setup, the checks (``checks``: manipulation, trajectory, judge validation
    sections), every headline metric, text per benchmark, the other figures, the runs, every flag."""
    return [
        Heading(1, cfg.title),
        *_lead_section(cfg, stats, manip, gate, flags, drawings[LEAD_FIGURE]),
        *_flag_summary(flags, runs, cfg),
        *_methods_section(cfg),
        *_setup_section(cfg, compute),
        *checks,
        *_headline_section(cfg, stats, scores),
        *_benchmark_section(cfg, stats, scores),
        *_figure_section(gate, drawings),
        *_runs_section(runs),
        *_flag_appendix(flags),
    ]
