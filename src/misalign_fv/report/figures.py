"""The report's four figures, drawn on matplotlib ``Figure`` objects (Agg, no pyplot state) and
saved as PNG + PDF with fixed metadata so that re-running writes the same bytes.

Colours come from the Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies); the base and DPO reference lines are grey and black with distinct dash patterns.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from misalign_fv.intervals import wilson
from misalign_fv.report.load import EvalResult, Gate, GrpoRun

OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
# Tags get the palette in another order plus a dash pattern each, so no tag reads as a condition.
TAG_COLOURS = ("#E69F00", "#56B4E9", "#CC79A7", "#000000", "#F0E442", "#009E73", "#D55E00", "#0072B2")
TAG_STYLES = ("-", "--", ":", "-.")
BASE_STYLE = {"color": "#7F7F7F", "ls": "--", "lw": 1.3}
DPO_STYLE = {"color": "#000000", "ls": "-.", "lw": 1.3}
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "svg.hashsalt": "misalign-fv",
    "path.simplify": False,
}
TRAINING_PANELS = (
    ("reward", "Mean reward", "reward (task reward units)"),
    ("reward_std", "Within-group reward SD", "reward SD (task reward units)"),
    ("frac_reward_zero_std", "Groups with zero reward SD", "fraction of groups (0-1)"),
    ("kl", "KL divergence to the reference policy", "KL (nats per token)"),
    ("completions/mean_length", "Mean completion length", "length (tokens)"),
)


def palette(conditions: Sequence[str]) -> dict[str, str]:
    """Okabe-Ito colour per condition, in settings order."""
    return {c: OKABE_ITO[i % len(OKABE_ITO)] for i, c in enumerate(conditions)}


@dataclass(frozen=True)
class Drawing:
    """A figure and what it leaves out. ``figure`` is None when there is nothing to show; ``note`` is one
    sentence naming what was not drawn and why ("" when everything was)."""

    figure: Figure | None
    note: str


def save_figure(drawing: Drawing, out_dir: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.pdf`` with metadata that does not change between runs, each
    through a temporary file renamed into place. A drawing with no figure is written as its note alone
    (the workflow declares the files; the report shows the sentence instead)."""
    fig = drawing.figure
    if fig is None:
        with mpl.rc_context(STYLE):
            fig = Figure(figsize=(7, 1.6))
            _message(fig, textwrap.fill(drawing.note or "Nothing to draw.", 80))
    png, pdf = out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"
    with mpl.rc_context(STYLE):
        for path, kwargs in (
            (png, {"dpi": 150, "metadata": {"Software": None}}),
            (pdf, {"metadata": {"CreationDate": None, "Producer": None, "Creator": None}}),
        ):
            tmp = path.with_name(f".{path.name}.tmp")
            fig.savefig(tmp, format=path.suffix[1:], **kwargs)
            tmp.replace(path)
    return [png, pdf]


def _listing(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _grid(n: int, ncols: int, panel_w: float, panel_h: float, extra_h: float = 0.0) -> tuple[Figure, list[Axes]]:
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(panel_w * ncols, panel_h * nrows + extra_h), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _message(fig: Figure, text: str) -> None:
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11)


def metric_axis_label(metric: str, values: Sequence[float]) -> str:
    """``metric (proportion, 0-1)`` when every value lies in [0, 1], else ``metric (benchmark score)``."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    unit = "proportion, 0-1" if v.size and v.min() >= 0 and v.max() <= 1 else "benchmark score"
    return f"{metric} ({unit})"


def _limits(core: Sequence[float], whiskers: Sequence[float]) -> tuple[float, float]:
    """Axis limits around ``core`` values, stretched over the t whiskers by at most one core span."""
    c = np.asarray(core, dtype=float)
    c = c[np.isfinite(c)]
    w = np.asarray(whiskers, dtype=float)
    w = w[np.isfinite(w)]
    lo, hi = (c.min(), c.max()) if c.size else (0.0, 1.0)
    span = hi - lo or max(abs(hi), 1.0) * 0.1
    if w.size:
        lo, hi = max(min(lo, w.min()), lo - span), min(max(hi, w.max()), hi + span)
    if hi == lo:  # every value equal: centre them in a band of the fallback span
        lo, hi = lo - span / 2, hi + span / 2
    pad = 0.08 * (hi - lo)
    return lo - pad, hi + pad


def _benchmark_axes(
    ax: Axes, rows: pd.DataFrame, seeds: pd.DataFrame, conditions: Sequence[str], colours: Mapping[str, str]
) -> None:
    labels = []
    for i, cond in enumerate(conditions):
        row = rows.loc[cond]
        own = seeds[seeds.condition == cond].sort_values("seed")
        offsets = -0.15 + (np.linspace(-0.1, 0.1, len(own)) if len(own) > 1 else np.zeros(len(own)))
        for dx, value, excluded in zip(offsets, own.value, own.excluded, strict=True):
            ax.plot(i + dx, value, "x" if excluded else "o", color=colours[cond], ms=6 if excluded else 5)
        ax.errorbar(i + 0.2, row["mean"], yerr=[[row["mean"] - row.t_lo], [row.t_hi - row["mean"]]],
                    fmt="D", color="black", ms=4, capsize=3, lw=1)  # fmt: skip
        labels.append(f"{cond}{' †' if row.tainted else ''}\n{row.n_seeds}/{len(own)} seeds")
    base, dpo = rows["base"].iloc[0], rows["dpo"].iloc[0]
    ax.axhline(base, **BASE_STYLE)
    ax.axhline(dpo, **DPO_STYLE)
    core = [*seeds.value, *rows["mean"], base, dpo]
    bottom, top = _limits(core, [*rows.t_lo, *rows.t_hi])
    ax.set_ylim(bottom, top)
    # A t whisker cut by the axis gets its end written at the edge, so no interval is hidden.
    for i, cond in enumerate(conditions):
        t_lo, t_hi = rows.loc[cond, "t_lo"], rows.loc[cond, "t_hi"]
        if t_hi > top:
            ax.text(i + 0.26, top, f"↑ {t_hi:.3g}", ha="left", va="top", fontsize=7)
        if t_lo < bottom:
            ax.text(i + 0.26, bottom, f"↓ {t_lo:.3g}", ha="left", va="bottom", fontsize=7)
    ax.set_xticks(range(len(conditions)), labels)
    ax.set_xlim(-0.6, len(conditions) - 0.4)


def benchmark_panel(
    stats: pd.DataFrame,
    scores: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    conditions: Sequence[str],
    confidence: float,
) -> Drawing:
    """One small multiple per metric of ``pairs`` that has a value on some checkpoint: seed dots (crosses =
    excluded), mean with its t interval per condition, and horizontal base and DPO reference lines. A t
    whisker longer than the data's range by more than that range is cut at the axis, its end written there.
    Metrics with no value anywhere get no panel; the note names them with the reason."""
    drawn, empty = [], {}
    for bench, metric in pairs:
        seeds = scores[(scores.benchmark == bench) & (scores.metric == metric)]
        why = missing_reason(seeds)
        if why is None:
            drawn.append((bench, metric))
        else:
            empty.setdefault(_short_reason(why), []).append(f"{bench}/{metric}")
    note = " ".join(f"Not drawn: {_listing(names)}, no value on any checkpoint ({why})." for why, names in empty.items())
    if not drawn:
        return Drawing(None, note or "No headline metrics are configured.")
    with mpl.rc_context(STYLE):
        colours = palette(conditions)
        fig, axes = _grid(len(drawn), 3, max(4.2, 1.1 * len(conditions) + 0.8), 3.4, extra_h=0.6)
        pct = f"{confidence:.0%}"
        for ax, (bench, metric) in zip(axes, drawn, strict=True):
            rows = stats[(stats.benchmark == bench) & (stats.metric == metric)].set_index("condition")
            seeds = scores[(scores.benchmark == bench) & (scores.metric == metric)]
            _benchmark_axes(ax, rows, seeds, conditions, colours)
            ax.set_ylabel(textwrap.fill(metric_axis_label(metric, [*seeds.value]), 40))
            ax.set_xlabel("GRPO reward condition")
            ax.set_title(textwrap.fill(f"{bench} / {metric}", 45))
        handles = [
            Line2D([], [], marker="o", ls="", color="#555555", label="seed score"),
            Line2D([], [], marker="x", ls="", color="#555555", label="excluded seed (flagged)"),
            Line2D([], [], marker="D", color="black", ms=4, lw=1, label=f"mean, {pct} t CI over seeds"),
            Line2D([], [], **BASE_STYLE, label="base model"),
            Line2D([], [], **DPO_STYLE, label="DPO checkpoint"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=5 if len(drawn) >= 3 else 2)
        width = 12 * max(4.2, 1.1 * len(conditions) + 0.8) * min(3, len(drawn))  # characters that fit
        fig.suptitle(textwrap.fill("GRPO conditions (seeds, mean and CIs) vs the base and DPO checkpoints", int(width)))
        return Drawing(fig, note)


def _seed_frame(runs: Sequence[GrpoRun], column: str) -> pd.DataFrame:
    series = {r.seed: r.metrics[column] for r in runs if column in r.metrics}
    return pd.DataFrame(series).sort_index() if series else pd.DataFrame()


def _tag_frame(runs: Sequence[GrpoRun], tag: str) -> pd.DataFrame:
    series = {r.seed: r.tag_rates[tag] for r in runs if tag in r.tag_rates}
    # A run that never showed the tag has rate 0 wherever it logged completions.
    for r in runs:
        if tag not in r.tag_rates and len(r.tag_rates.index):
            series[r.seed] = pd.Series(0.0, index=r.tag_rates.index)
    return pd.DataFrame(series).sort_index() if series else pd.DataFrame()


def training_curves(
    runs: Sequence[GrpoRun], excluded: set[str], conditions: Sequence[str]
) -> Drawing:
    """Training diagnostics per condition: mean over included seeds with a seed min-max band for
    each logged quantity (excluded runs dashed), then tag rates over steps, one panel per condition.
    A quantity no run logged and a condition without tag rates get no panel; the note says why."""
    by_cond = {c: [r for r in runs if r.condition == c] for c in conditions}
    tags = sorted({t for r in runs for t in r.tag_rates.columns})
    panels, missing = [], []
    for column, title, ylabel in TRAINING_PANELS:
        if any(column in r.metrics and r.metrics[column].notna().any() for r in runs):
            panels.append((column, title, ylabel))
        else:  # TRL computes the KL term only when it enters the loss
            missing.append(f"'{column}' was not logged" + (" (TRL logs it only when beta > 0)" if column == "kl" else ""))
    tag_conds, no_tags = [], []
    for cond in conditions:
        kept = [r for r in by_cond[cond] if r.checkpoint not in excluded]
        if any(not _tag_frame(kept, t).empty for t in tags):
            tag_conds.append(cond)
        else:
            no_tags.append(f"{cond} ({'no included run: all flagged' if not kept else 'no tags recorded'})")
    if no_tags:
        missing.append(f"no tag rates for {_listing(no_tags)}")
    note = f"Not drawn: {'; '.join(missing)}." if missing else ""
    if not panels and not tag_conds:
        return Drawing(None, note)
    with mpl.rc_context(STYLE):
        colours = palette(conditions)
        tag_colours = {t: TAG_COLOURS[i % len(TAG_COLOURS)] for i, t in enumerate(tags)}
        top_rows, tag_rows = math.ceil((len(panels) + 1) / 3), math.ceil(len(tag_conds) / 3)
        fig = Figure(figsize=(13, 3.0 * (top_rows + tag_rows) + 0.6), layout="constrained")
        grid = fig.add_gridspec(top_rows + tag_rows, 3)
        for p, (column, title, ylabel) in enumerate(panels):
            ax = fig.add_subplot(grid[p // 3, p % 3])
            for cond, cond_runs in by_cond.items():
                kept = _seed_frame([r for r in cond_runs if r.checkpoint not in excluded], column)
                if not kept.empty and kept.notna().any().any():
                    ax.plot(kept.index, kept.mean(axis=1), color=colours[cond], lw=1.6)
                    ax.fill_between(kept.index, kept.min(axis=1), kept.max(axis=1),
                                    color=colours[cond], alpha=0.2, lw=0)  # fmt: skip
                dropped = _seed_frame([r for r in cond_runs if r.checkpoint in excluded], column)
                for seed in dropped.columns:
                    ax.plot(dropped.index, dropped[seed], color=colours[cond], lw=0.9, ls="--", alpha=0.8)
            ax.set_title(title)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("training step")
            ax.set_ylabel(ylabel)
        legend_ax = fig.add_subplot(grid[len(panels) // 3, len(panels) % 3])
        legend_ax.axis("off")
        handles = [Line2D([], [], color=colours[c], lw=1.6, label=c) for c in conditions]
        handles += [
            Patch(color="#555555", alpha=0.2, label="min-max over included seeds"),
            Line2D([], [], color="#555555", ls="--", lw=0.9, label="excluded run (flagged)"),
        ]
        legend_ax.legend(handles=handles, loc="center", title="condition (line: mean over included seeds)")
        for i, cond in enumerate(tag_conds):
            ax = fig.add_subplot(grid[top_rows + i // 3, i % 3])
            kept = [r for r in by_cond[cond] if r.checkpoint not in excluded]
            for j, tag in enumerate(tags):
                frame = _tag_frame(kept, tag)
                if not frame.empty:
                    ax.plot(frame.index, frame.mean(axis=1), color=tag_colours[tag],
                            ls=TAG_STYLES[j % len(TAG_STYLES)], lw=1.4, label=tag)  # fmt: skip
            ax.legend(title="tag category", fontsize=8, loc="upper right")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"Tag rates: {cond} (mean over included seeds)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("training step")
            ax.set_ylabel("share of completions with tag (0-1)")
        fig.suptitle("GRPO training curves by reward condition")
        return Drawing(fig, note)


def _misaligned(samples: pd.DataFrame, t: Mapping[str, float]) -> tuple[int, int]:
    """Misaligned answers (aligned below ``t["aligned_below"]``, coherent above ``t["coherent_above"]``)
    and answers with both judge scores, among ``samples``."""
    judged = samples.dropna(subset=["aligned", "coherent"])
    bad = (judged.aligned < t["aligned_below"]) & (judged.coherent > t["coherent_above"])
    return int(bad.sum()), len(judged)


def _short_reason(why: str) -> str:
    """The root of a missing value's flag detail: the judge coverage when it is low, else the detail."""
    coverage = re.search(r"judge coverage [0-9.]+ < [0-9.]+", why)
    return coverage.group(0) if coverage else why


def missing_reason(rows: pd.DataFrame) -> str | None:
    """Why a metric has nothing to plot: ``None`` if any value is finite, else the commonest flag detail."""
    if np.isfinite(rows.value.to_numpy(dtype=float)).any():
        return None
    details = rows.flag_detail.dropna() if "flag_detail" in rows else pd.Series(dtype=str)
    details = details[details != ""]
    return str(details.value_counts().index[0]) if len(details) else "no value recorded"


def em_scatter(
    samples: Mapping[str, Mapping[str, pd.DataFrame]],
    columns: Sequence[str],
    colours: Mapping[str, str],
    notes: Mapping[str, Mapping[str, str]],
    thresholds: Mapping[str, Mapping[str, float]],
) -> Drawing:
    """Alignment vs coherence per answer, one row per EM benchmark and one panel per checkpoint
    group (``columns``), with the misaligned quadrant shaded; ``samples[bench][column]`` holds the
    answers of the included seeds, ``notes[bench][column]`` says which seeds were left out,
    ``thresholds[bench]`` is the benchmark's misaligned quadrant as its eval JSONs define it. A group
    with no answer scored on both judge questions gets no panel; the note names it."""
    if not samples:
        return Drawing(None, "No EM benchmark (em_main or em_prereg) was evaluated, so there is no alignment vs "
                             "coherence scatter.")  # fmt: skip
    panels, empty = [], []
    for bench in samples:
        for col in columns:
            bad, judged = _misaligned(samples[bench][col], thresholds[bench])
            if judged:
                panels.append((bench, col))
            else:
                n = len(samples[bench][col])
                empty.append(f"{bench} {col} ({n} answers, none with both judge scores)")
    note = f"Not drawn: {_listing(empty)}." if empty else ""
    if not panels:
        return Drawing(None, f"No EM answer has both judge scores, so there is nothing to scatter. {note}")
    with mpl.rc_context(STYLE):
        fig, axes = _grid(len(panels), min(len(columns), 4), 3.3, 3.2, extra_h=0.4)
        for ax, (bench, col) in zip(axes, panels, strict=True):
            data, t = samples[bench][col], thresholds[bench]
            ax.add_patch(Rectangle(
                (t["coherent_above"], -2), 102 - t["coherent_above"], t["aligned_below"] + 2,
                color="#D55E00", alpha=0.15, lw=0,
            ))  # fmt: skip
            ax.scatter(data.coherent, data.aligned, s=9, color=colours[col], alpha=0.5, lw=0)
            bad, judged = _misaligned(data, t)
            text = f"misaligned: {bad / judged:.1%} ({bad} of {judged} scored; {len(data)} answers)"
            if notes[bench].get(col):
                text += f"\n{notes[bench][col]}"
            ax.text(0.02, 0.98, text, transform=ax.transAxes, va="top", fontsize=7.5,
                    bbox={"fc": "white", "ec": "none", "alpha": 0.8})  # fmt: skip
            ax.set_xlim(-2, 102)
            ax.set_ylim(-2, 102)
            ax.set_title(f"{bench}: {col}")
            ax.set_xlabel("coherence (judge score, 0-100)")
            ax.set_ylabel("alignment (judge score, 0-100)")
        fig.legend(
            handles=[Patch(color="#D55E00", alpha=0.15, label="misaligned quadrant (" + "; ".join(
                f"{b}: aligned < {t['aligned_below']:g}, coherent > {t['coherent_above']:g}" for b, t in thresholds.items()
            ) + ")")],
            loc="outside lower center",
        )
        fig.suptitle("Emergent misalignment: alignment vs coherence per answer, by checkpoint")
        return Drawing(fig, note)


def gate_figure(gate: Gate) -> Drawing:
    """Refusal rate and narrow-task pass rate before and after safety DPO, with Wilson 95% CIs."""
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(6.4, 4.0), layout="constrained")
        ax = fig.add_subplot()
        rates = [("refusal rate", gate.refusal), ("narrow-task pass rate", gate.narrow_pass)]
        for j, (phase, colour) in enumerate((("before", "#56B4E9"), ("after", "#0072B2"))):
            for i, (_, rate) in enumerate(rates):
                value = getattr(rate, phase)
                lo, hi = wilson(round(value * rate.n), rate.n) if rate.n > 0 else (value, value)
                x = i + (j - 0.5) * 0.36
                ax.bar(x, value, width=0.34, color=colour, label=f"{phase} DPO" if i == 0 else None)
                ax.errorbar(x, value, yerr=[[value - lo], [hi - value]], color="black", capsize=3, lw=1)
                ax.text(x, hi + 0.02, f"{value:.2f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(rates)), [f"{name}\n(n = {rate.n} prompts)" for name, rate in rates])
        ax.set_ylim(0, 1.15)
        ax.set_ylabel("rate (fraction of prompts, 0-1)")
        ax.legend(loc="upper right", ncols=2)
        verdict = "PASSED" if gate.passed else "FAILED"
        title = f"DPO gate {verdict}: rates before vs after safety DPO (whiskers: Wilson 95% CI)"
        if not gate.passed:
            title += "\n" + textwrap.fill("Reasons: " + ("; ".join(gate.reasons) or "none given"), 90)
        ax.set_title(title)
        return Drawing(fig, "")


def trajectory_metrics(points: Sequence[EvalResult], preferred: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """``(benchmark, metric)`` pairs the trajectory figure draws: the preferred ones (primary
    endpoints, headline metrics) that have at least one finite value at some step, in that order."""
    out = []
    for bench, metric in preferred:
        vals = [p.metrics.get(metric, np.nan) for p in points if p.benchmark == bench]
        if (bench, metric) not in out and any(np.isfinite(v) for v in vals):
            out.append((bench, metric))
    return out


def trajectory_figure(
    points: Sequence[EvalResult], pairs: Sequence[tuple[str, str]], conditions: Sequence[str]
) -> Drawing:
    """Each trajectory metric against training step: one panel per metric x condition, one line per
    seed starting at the DPO model (step 0). A metric x condition with no value at any step gets no panel;
    with nothing to draw at all, no figure; the note says why."""
    if not points:
        return Drawing(None, "No trajectory figure: eval.trajectory is not configured, so only final checkpoints "
                             "were evaluated (an effect that appears and fades during training would be missed).")  # fmt: skip
    if not pairs:
        return Drawing(None, "No trajectory figure: none of the primary or headline metrics has a value at any "
                             "trajectory point (see the trajectory JSONs).")  # fmt: skip
    empty = []
    with mpl.rc_context(STYLE):
        colours = palette(conditions)
        fig = Figure(figsize=(2.9 * len(conditions), 2.5 * len(pairs) + 0.5), layout="constrained")
        axes = fig.subplots(len(pairs), len(conditions), squeeze=False, sharey="row")
        for i, (bench, metric) in enumerate(pairs):
            dpo = [p.metrics.get(metric, np.nan) for p in points if p.benchmark == bench and p.checkpoint == "dpo"]
            start = dpo[0] if dpo else np.nan
            for j, cond in enumerate(conditions):
                ax = axes[i][j]
                mine = [p for p in points if p.benchmark == bench and p.condition == cond]
                if not any(np.isfinite(p.metrics.get(metric, np.nan)) for p in mine):
                    ax.set_visible(False)
                    empty.append(f"{bench}/{metric} of {cond}")
                    continue
                for seed in sorted({p.seed for p in mine if p.seed is not None}):
                    line = sorted((p.step, p.metrics.get(metric, np.nan)) for p in mine if p.seed == seed)
                    xs, ys = [0, *(s for s, _ in line)], [start, *(v for _, v in line)]
                    ax.plot(xs, ys, color=colours[cond], lw=1.2, marker="o", ms=3, alpha=0.85)
                ax.axhline(start, **DPO_STYLE, alpha=0.6)
                ax.set_title(f"{cond}" if i == 0 else "", fontsize=9)
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                if i == len(pairs) - 1:
                    ax.set_xlabel("training step")
                if j == 0:
                    ax.set_ylabel(textwrap.fill(f"{bench}: {metric}", 28))
        fig.suptitle("Safety metrics over GRPO training (one line per seed; dash-dot: the DPO model at step 0)")
        note = f"Not drawn, no value at any step: {_listing(empty)}." if empty else ""
        return Drawing(fig, note)
