"""The report rule's entry point: read every input, check that the set is complete, write the
tables, figures, report.md and report.html."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from misalign_fv.benchmarks import EM_BENCHMARKS
from misalign_fv.report import figures, manipulation, validation
from misalign_fv.report.analysis import benchmark_metrics, power_table, stats_table
from misalign_fv.report.compose import FIGURES, figure_blocks, compose_report
from misalign_fv.report.config import ReportSettings
from misalign_fv.report.flags import EXCLUDED, Flag, collect_flags, exclusions
from misalign_fv.report.load import (
    EvalResult,
    GrpoRun,
    ReportInputError,
    load_bench_tsv,
    load_em_samples,
    load_eval,
    load_gate,
    load_grpo_run,
    load_signal,
    load_trajectory,
)
from misalign_fv.report.render import Block, Heading, to_html, to_markdown
from misalign_fv.report.tables import compute_table, flags_table, runs_table, scores_table

TABLES = ("scores.csv", "stats.csv", "flags.csv", "manipulation.csv", "power.csv")
DOCUMENTS = ("report.md", "report.html")
TRAJECTORY_FIGURE = "fig_trajectory"


def output_names() -> list[str]:
    """Every file :func:`build_report` writes, relative to its ``out_dir``."""
    figs = (*FIGURES, TRAJECTORY_FIGURE)
    return [*TABLES, *(f"{f}.{ext}" for f in figs for ext in ("png", "pdf")), *DOCUMENTS]


def _check_evals(evals: Sequence[EvalResult], cfg: ReportSettings) -> None:
    if not evals:
        raise ReportInputError("eval_jsons", "no eval JSON given")
    expected = cfg.checkpoints()
    seen: dict[tuple[str, str], EvalResult] = {}
    for e in evals:
        if e.checkpoint not in expected:
            problem = f"checkpoint '{e.checkpoint}' is not base, dpo or a configured condition/seed"
            raise ReportInputError(e.path, problem)
        if (e.checkpoint, e.benchmark) in seen:
            raise ReportInputError(e.path, f"duplicates {seen[e.checkpoint, e.benchmark].path}")
        seen[e.checkpoint, e.benchmark] = e
    root = evals[0].path.parent
    for _ in Path(evals[0].checkpoint).parts:
        root = root.parent
    for bench in sorted({e.benchmark for e in evals}):
        for ckpt in expected:
            if (ckpt, bench) not in seen:
                raise ReportInputError(root / ckpt / f"{bench}.json", "eval JSON missing")
    metrics = benchmark_metrics(evals)
    for bench, names in cfg.headline_metrics.items():
        for name in names:
            if name not in metrics.get(bench, ()):
                raise ReportInputError("settings", f"headline metric {bench}/{name} is in no eval JSON")


def _check_runs(runs: Sequence[GrpoRun], cfg: ReportSettings) -> None:
    if not runs:
        raise ReportInputError("grpo_dirs", "no GRPO run directory given")
    found = {}
    for r in runs:
        if (r.path.parent.name, r.path.name) != (r.condition, f"seed{r.seed}"):
            raise ReportInputError(r.path / "summary.json", f"says {r.checkpoint} but lives in {r.path}")
        if r.condition not in cfg.conditions or r.seed not in cfg.seeds:
            raise ReportInputError(r.path / "summary.json", f"run {r.checkpoint} is not a configured condition/seed")
        found[r.checkpoint] = r
    root = runs[0].path.parent.parent
    for ckpt in cfg.checkpoints()[2:]:
        if ckpt not in found:
            raise ReportInputError(root / ckpt / "summary.json", "GRPO run missing")


def _em_data(
    evals: Sequence[EvalResult], flags: Sequence[Flag], cfg: ReportSettings
) -> tuple[dict[str, dict[str, pd.DataFrame]], dict[str, dict[str, str]], dict[str, dict[str, float]]]:
    """Answers per EM benchmark and checkpoint group (base, dpo, each condition's included seeds), and
    each benchmark's misalignment thresholds as its eval JSONs define them (all must agree)."""
    by_key = {(e.checkpoint, e.benchmark): e for e in evals}
    benches = [b for b in EM_BENCHMARKS if any(e.benchmark == b for e in evals)]
    samples: dict[str, dict[str, pd.DataFrame]] = {}
    notes: dict[str, dict[str, str]] = {}
    thresholds: dict[str, dict[str, float]] = {}
    for bench in benches:
        samples[bench], notes[bench] = {}, {}
        ref = by_key["dpo", bench]
        if not {"aligned_below", "coherent_above"} <= set(ref.thresholds):
            raise ReportInputError(ref.path, "definitions.thresholds lacks aligned_below/coherent_above (rerun this evaluation)")
        for e in evals:
            if e.benchmark == bench and e.thresholds != ref.thresholds:
                raise ReportInputError(e.path, f"definitions.thresholds {e.thresholds} differ from the DPO evaluation's {ref.thresholds}")
        thresholds[bench] = ref.thresholds
        for ref in ("base", "dpo"):
            samples[bench][ref] = load_em_samples(by_key[ref, bench].samples_path)
            notes[bench][ref] = ""
        for cond in cfg.conditions:
            kept, left_out = [], []
            for seed in cfg.seeds:
                ckpt = f"{cond}/seed{seed}"
                if exclusions(flags, ckpt, bench, ""):
                    left_out.append(f"seed{seed}")
                else:
                    kept.append(load_em_samples(by_key[ckpt, bench].samples_path))
            columns = ["question_id", "aligned", "coherent"]
            samples[bench][cond] = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=columns)
            notes[bench][cond] = f"excluded (flagged): {', '.join(left_out)}" if left_out else ""
    return samples, notes, thresholds


def _trajectory_blocks(drawing: figures.Drawing, pairs: Sequence[tuple[str, str]]) -> list[Block]:
    """The trajectory section: the figure, or one sentence saying why there is none."""
    names = ", ".join(f"{b} {m}" for b, m in pairs)
    caption = (f"{names} of every run at its trajectory steps (eval.trajectory), from the DPO model at step 0 to "
               "the final model; one line per seed.")  # fmt: skip
    return [Heading(2, "Safety over training"), *figure_blocks(TRAJECTORY_FIGURE, drawing, caption)]


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` through a temporary file renamed into place (no half-written output)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    tmp.replace(path)


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    _write_text(path, table.to_csv(index=False, float_format="%.10g", lineterminator="\n"))


def build_report(
    eval_jsons: Iterable[str | Path],
    grpo_dirs: Iterable[str | Path],
    gate_json: str | Path,
    bench_tsvs: Iterable[str | Path],
    settings: Mapping[str, Any],
    out_dir: str | Path,
    trajectory_dirs: Iterable[str | Path] = (),
    signal_json: str | Path | None = None,
    judge_validation_json: str | Path | None = None,
) -> list[Path]:
    """Build the whole report into ``out_dir`` and return the written paths (see :func:`output_names`).

    Inputs: every eval JSON (``results/eval/{checkpoint}/{benchmark}.json``, EM samples read from
    beside them), every GRPO run directory, the DPO gate JSON, the Snakemake benchmark TSVs and the
    rule's settings dict; the trajectory folders (``results/trajectory/<run>``) and the reward-signal
    preflight JSON when the workflow made them, and the judge-validation JSON when it is configured
    (a failed validation taints every judged metric). Raises :class:`ReportInputError` (one line, starting with the offending
    path) when an input is missing, malformed or the set is incomplete. Output is deterministic:
    re-running on the same inputs rewrites the same bytes.
    """
    cfg = ReportSettings.from_mapping(settings)
    evals = [load_eval(p) for p in sorted(Path(p) for p in eval_jsons)]
    _check_evals(evals, cfg)
    runs = [load_grpo_run(d) for d in sorted(Path(d) for d in grpo_dirs)]
    _check_runs(runs, cfg)
    gate = load_gate(gate_json)
    bench = [load_bench_tsv(p) for p in sorted(Path(p) for p in bench_tsvs)]

    judge_check = validation.load_validation(judge_validation_json) if judge_validation_json else None
    flags = collect_flags(evals, runs, gate, cfg.coverage_threshold, validation.validation_flags(judge_check))
    scores = scores_table(evals, flags, cfg)
    stats = stats_table(evals, flags, cfg)
    runs_tab = runs_table(runs, flags, cfg)
    compute = compute_table(bench, cfg.gpus_per_rule)
    expect = {str(c): dict(v) for c, v in (settings.get("expect") or {}).items()}
    manip = manipulation.manipulation_table(runs, cfg.conditions, cfg.control, cfg.positive_control, expect, cfg.confidence)
    manip_summary = manipulation.summary_table(manip, runs, load_signal(signal_json) if signal_json else {}, expect)
    trajectory = load_trajectory(trajectory_dirs)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(scores, out / "scores.csv")
    _write_csv(stats, out / "stats.csv")
    _write_csv(flags_table(flags), out / "flags.csv")
    _write_csv(manip, out / "manipulation.csv")
    _write_csv(power_table(stats, cfg), out / "power.csv")

    excluded_runs = {f.checkpoint for f in flags if f.action == EXCLUDED and not f.benchmark}
    em_samples, em_notes, em_thresholds = _em_data(evals, flags, cfg)
    em_colours = {
        "base": figures.BASE_STYLE["color"], "dpo": figures.DPO_STYLE["color"], **figures.palette(cfg.conditions)
    }  # fmt: skip
    lead_pairs = list(dict.fromkeys([*cfg.primary, *cfg.headline_pairs()]))
    drawn = {
        "fig_benchmarks": figures.benchmark_panel(stats, scores, lead_pairs, cfg.conditions, cfg.confidence),
        "fig_training": figures.training_curves(runs, excluded_runs, cfg.conditions),
        "fig_em_scatter": figures.em_scatter(em_samples, ["base", "dpo", *cfg.conditions], em_colours, em_notes, em_thresholds),
        "fig_dpo_gate": figures.gate_figure(gate),
    }
    for name in FIGURES:
        figures.save_figure(drawn[name], out, name)
    traj_pairs = figures.trajectory_metrics(trajectory, [*cfg.primary, *cfg.headline_pairs()])
    traj = figures.trajectory_figure(trajectory, traj_pairs, cfg.conditions)
    figures.save_figure(traj, out, TRAJECTORY_FIGURE)

    checks = manipulation.section(manip_summary, cfg.steps) + _trajectory_blocks(traj, traj_pairs)
    checks += validation.section(judge_check)
    blocks = compose_report(cfg, stats, scores, flags, runs_tab, compute, gate, manip_summary, drawn, checks)
    _write_text(out / "report.md", to_markdown(blocks))
    _write_text(out / "report.html", to_html(blocks, cfg.title, out))
    return [out / name for name in output_names()]
