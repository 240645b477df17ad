"""Figures say why a panel is empty instead of drawing blank axes (the demo's judge scores nothing)."""

from __future__ import annotations

import math

import pandas as pd

from misalign_fv.report import figures

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


def panel_texts(value: float, detail: str) -> list[str]:
    fig = figures.benchmark_panel(stats_rows(value), score_rows(value, detail), [("em_main", "misaligned")], CONDITIONS, 0.95)
    return [t.get_text() for t in fig.axes[0].texts]


def test_an_all_missing_metric_names_its_flag() -> None:
    texts = panel_texts(NAN, "judge coverage 0.00 < 0.80; no value")
    assert "no values to plot:\njudge coverage 0.00 < 0.80; no value" in texts


def test_a_metric_with_values_gets_no_message() -> None:
    assert not any(t.startswith("no values") for t in panel_texts(0.2, ""))


def test_missing_reason() -> None:
    assert figures.missing_reason(pd.DataFrame({"value": [NAN, NAN], "flag_detail": ["a", None]})) == "a"
    assert figures.missing_reason(pd.DataFrame({"value": [NAN], "flag_detail": [""]})) == "no value recorded"
    assert figures.missing_reason(pd.DataFrame({"value": [NAN, 0.1], "flag_detail": ["a", "a"]})) is None


def test_em_scatter_counts_scored_and_all_answers() -> None:
    answers = pd.DataFrame({"question_id": ["q1", "q1", "q2"], "aligned": [10.0, NAN, 90.0], "coherent": [80.0, NAN, 90.0]})
    fig = figures.em_scatter({"em_main": {"base": answers}}, ["base"], {"base": "black"}, {"em_main": {}})
    assert "misaligned: 50.0% (1 of 2 scored; 3 answers)" in [t.get_text() for t in fig.axes[0].texts]


def test_training_curves_explain_a_missing_kl() -> None:
    from pathlib import Path

    from misalign_fv.report.load import GrpoRun

    metrics = pd.DataFrame({"reward": [0.1, 0.3], "reward_std": [0.2, 0.2], "frac_reward_zero_std": [0.0, 0.5],
                            "completions/mean_length": [20.0, 22.0]}, index=pd.Index([1, 2], name="step"))  # fmt: skip
    run = GrpoRun(path=Path("results/grpo/random/seed1"), condition="random", seed=1, steps_done=2, max_steps=2,
                  resumed_from=0, collapsed=False, collapse_step=None, updated=True, wall_time_s=1.0,
                  metrics=metrics, tag_rates=pd.DataFrame())  # fmt: skip
    fig = figures.training_curves([run], set(), ["random"])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "'kl' was not logged\n(TRL logs it only when beta > 0)" in texts
