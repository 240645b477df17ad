"""Figures draw no empty panel: a metric or group with nothing to show is left out and named in one sentence."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from misalign_fv.report import figures
from misalign_fv.report.load import GrpoRun

NAN = math.nan
CONDITIONS = ["random", "fv_shaped"]


def stats_rows(value: float) -> pd.DataFrame:
    """One stats row per condition for humaneval/pass@1 with every numeric column set to ``value``."""
    cols = ["n_seeds", "mean", "t_lo", "t_hi", "base", "dpo"]
    rows = [{"condition": c, "benchmark": "em_main", "metric": "misaligned", "tainted": "", **dict.fromkeys(cols, value)} for c in CONDITIONS]
    return pd.DataFrame(rows)


def score_rows(value: float, detail: str) -> pd.DataFrame:
    """Base, DPO and two seeds a condition, all with ``value`` and the same flag detail."""
    rows = [{"checkpoint": c, "condition": c, "seed": None} for c in ("base", "dpo")]
    rows += [{"checkpoint": f"{c}/seed{s}", "condition": c, "seed": s} for c in CONDITIONS for s in (1, 2)]
    return pd.DataFrame([r | {"benchmark": "em_main", "metric": "misaligned", "value": value, "flag_detail": detail, "excluded": False} for r in rows])


def score_rows_two(detail: str) -> pd.DataFrame:
    """em_main/misaligned with values and em_main/coherent with none (flagged ``detail``)."""
    good = score_rows(0.2, "")
    bad = score_rows(NAN, detail).assign(metric="coherent")
    return pd.concat([good, bad], ignore_index=True)


def stats_two() -> pd.DataFrame:
    return pd.concat([stats_rows(0.2), stats_rows(NAN).assign(metric="coherent")], ignore_index=True)


def test_an_all_missing_metric_gets_no_panel_and_a_sentence() -> None:
    detail = "judge failed validation (EM coverage 0.00 < 0.80); judge coverage 0.00 < 0.80; no value"
    drawing = figures.benchmark_panel(stats_rows(NAN), score_rows(NAN, detail), [("em_main", "misaligned")], CONDITIONS, 0.95)
    assert drawing.figure is None
    assert drawing.note == "Not drawn: em_main/misaligned, no value on any checkpoint (judge coverage 0.00 < 0.80)."


def test_only_metrics_with_values_get_panels() -> None:
    pairs = [("em_main", "misaligned"), ("em_main", "coherent")]
    drawing = figures.benchmark_panel(stats_two(), score_rows_two("no value"), pairs, CONDITIONS, 0.95)
    assert drawing.figure is not None
    assert [ax.get_title() for ax in drawing.figure.axes if ax.get_visible()] == ["em_main / misaligned"]
    assert drawing.note == "Not drawn: em_main/coherent, no value on any checkpoint (no value)."


def test_missing_reason() -> None:
    assert figures.missing_reason(pd.DataFrame({"value": [NAN, NAN], "flag_detail": ["a", None]})) == "a"
    assert figures.missing_reason(pd.DataFrame({"value": [NAN], "flag_detail": [""]})) == "no value recorded"
    assert figures.missing_reason(pd.DataFrame({"value": [NAN, 0.1], "flag_detail": ["a", "a"]})) is None


def test_em_scatter_counts_scored_answers_and_leaves_out_empty_groups() -> None:
    answers = pd.DataFrame({"question_id": ["q1", "q1", "q2"], "aligned": [10.0, NAN, 90.0], "coherent": [80.0, NAN, 90.0]})
    unscored = answers.assign(aligned=NAN)
    t = {"em_main": {"aligned_below": 30.0, "coherent_above": 50.0}}
    drawing = figures.em_scatter({"em_main": {"base": answers, "dpo": unscored}}, ["base", "dpo"],
                                 {"base": "black", "dpo": "grey"}, {"em_main": {}}, t)  # fmt: skip
    assert drawing.figure is not None and len([ax for ax in drawing.figure.axes if ax.get_visible()]) == 1
    assert "misaligned: 50.0% (1 of 2 scored; 3 answers)" in [t.get_text() for t in drawing.figure.axes[0].texts]
    assert drawing.note == "Not drawn: em_main dpo (3 answers, none with both judge scores)."
    nothing = figures.em_scatter({"em_main": {"dpo": unscored}}, ["dpo"], {"dpo": "grey"}, {"em_main": {}}, t)
    assert nothing.figure is None and nothing.note.startswith("No EM answer has both judge scores")
    # the quadrant is the eval JSON's: stricter thresholds leave the one misaligned answer out
    strict = figures.em_scatter({"em_main": {"base": answers}}, ["base"], {"base": "black"}, {"em_main": {}},
                                {"em_main": {"aligned_below": 5.0, "coherent_above": 50.0}})  # fmt: skip
    assert "misaligned: 0.0% (0 of 2 scored; 3 answers)" in [x.get_text() for x in strict.figure.axes[0].texts]


def _run(metrics: pd.DataFrame, tags: pd.DataFrame) -> GrpoRun:
    return GrpoRun(path=Path("results/grpo/random/seed1"), condition="random", seed=1, steps_done=2, max_steps=2,
                   resumed_from=0, collapsed=False, collapse_step=None, updated=True, wall_time_s=1.0,
                   metrics=metrics, tag_rates=tags)  # fmt: skip


def test_training_curves_leave_out_a_missing_kl_and_say_why() -> None:
    metrics = pd.DataFrame({"reward": [0.1, 0.3], "reward_std": [0.2, 0.2], "frac_reward_zero_std": [0.0, 0.5],
                            "completions/mean_length": [20.0, 22.0]}, index=pd.Index([1, 2], name="step"))  # fmt: skip
    drawing = figures.training_curves([_run(metrics, pd.DataFrame())], set(), ["random"])
    assert drawing.figure is not None
    titles = [ax.get_title() for ax in drawing.figure.axes]
    assert "KL divergence to the reference policy" not in titles and "Mean reward" in titles
    assert not any(t.startswith("Tag rates") for t in titles)
    assert drawing.note == ("Not drawn: 'kl' was not logged (TRL logs it only when beta > 0); "
                            "no tag rates for random (no tags recorded).")  # fmt: skip


def test_trajectory_without_points_is_a_sentence() -> None:
    drawing = figures.trajectory_figure([], [], ["random"])
    assert drawing.figure is None and drawing.note.startswith("No trajectory figure: eval.trajectory is not configured")


def test_a_sentence_figure_is_still_written_and_identical_on_rerun(tmp_path: Path) -> None:
    drawing = figures.Drawing(None, "Nothing to show, because.")
    first = figures.save_figure(drawing, tmp_path, "fig")
    again = [p.read_bytes() for p in first]
    assert [p.name for p in first] == ["fig.png", "fig.pdf"]
    assert [p.read_bytes() for p in figures.save_figure(drawing, tmp_path, "fig")] == again
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
