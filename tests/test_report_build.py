"""build_report end to end on synthetic results trees: outputs, flags, determinism, errors."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from misalign_fv.report import ReportInputError, build_report
from misalign_fv.report.build import output_names
from report_fixtures import Tree, write_tree


def _build(tree: Tree, out: Path) -> Path:
    build_report(**tree.kwargs(out))
    return out


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    return write_tree(tmp_path_factory.mktemp("tree"))


@pytest.fixture(scope="module")
def out(tree: Tree, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tree, tmp_path_factory.mktemp("report"))


def test_writes_every_output(tree: Tree, tmp_path: Path) -> None:
    written = build_report(**tree.kwargs(tmp_path))
    assert [p.name for p in written] == output_names()
    for path in written:
        assert path.is_file() and path.stat().st_size > 0, path
    md = (tmp_path / "report.md").read_text()
    for name in output_names():
        if name.endswith(".png"):
            img = mpimg.imread(tmp_path / name)
            assert img.std() > 0.01, f"{name} is blank"
            if f"]({name})" in md:  # drawn: a real figure; otherwise its file holds the sentence the report shows
                assert img.shape[0] >= 300 and img.shape[1] >= 600, name
        if name.endswith(".pdf"):
            assert (tmp_path / name).read_bytes().startswith(b"%PDF"), name
    # the synthetic tree has no trajectory: one sentence instead of a figure
    assert "](fig_trajectory.png)" not in md and "No trajectory figure: eval.trajectory is not configured" in md


def test_scores_csv_is_tidy(tree: Tree, out: Path) -> None:
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns[:10]) == [
        "checkpoint", "condition", "seed", "benchmark", "metric", "value", "n", "ci_lo", "ci_hi", "judge_coverage",
    ]  # fmt: skip
    # 11 checkpoints x (truthfulqa: mc1, mc2 + em_main: misaligned_among_coherent, coherent_rate, misaligned)
    assert len(scores) == 11 * 5
    assert not scores.duplicated(["checkpoint", "benchmark", "metric"]).any()
    judged = scores.benchmark == "em_main"
    assert scores.loc[judged, "judge_coverage"].notna().all()
    assert scores.loc[~judged, "judge_coverage"].isna().all()
    raw = json.loads((tree.root / "results/eval/shuffled/seed1/truthfulqa_mc.json").read_text())
    row = scores[(scores.checkpoint == "shuffled/seed1") & (scores.metric == "mc1")].iloc[0]
    assert row.value == pytest.approx(raw["metrics"]["mc1"])
    assert (row.ci_lo, row.ci_hi) == pytest.approx(tuple(raw["ci"]["mc1"]))


def test_collapsed_run_is_labelled_and_kept(out: Path) -> None:
    scores = pd.read_csv(out / "scores.csv", keep_default_na=False)
    stats = pd.read_csv(out / "stats.csv", keep_default_na=False)
    flags = pd.read_csv(out / "flags.csv")
    assert flags[["kind", "checkpoint", "action"]].values.tolist() == [["collapsed", "fv_exploit/seed2", "labelled"]]
    collapsed = scores[scores.checkpoint == "fv_exploit/seed2"]
    assert not scores.excluded.any()
    assert collapsed.flag_detail.str.contains("collapsed at step 12 (starved", regex=False).all()
    for row in stats[stats.condition == "fv_exploit"].itertuples():
        assert row.n_seeds == 3 and not row.excluded and row.labelled.startswith("seed2 (collapsed at step 12 (starved")
        kept = scores[(scores.condition == "fv_exploit") & (scores.metric == row.metric)
                      & (scores.benchmark == row.benchmark)]  # fmt: skip
        assert row.mean == pytest.approx(kept.value.astype(float).mean())
    assert not stats[stats.condition != "fv_exploit"].labelled.any()
    md = (out / "report.md").read_text()
    assert "fv_exploit/seed2: collapsed at step 12 (starved: every group's rewards equal at the bottom" in md
    assert "- an outcome, kept in every statistic and labelled beside the numbers." in md
    headline_rows = [line for line in md.splitlines() if line.startswith("| truthfulqa_mc / mc1 | fv_exploit")]
    assert len(headline_rows) == 1 and "labelled: seed2 (collapsed at step 12" in headline_rows[0]
    assert "| fv_exploit (positive control) | 3/3 |" in md and "| 1 collapsed (kept) |" in md
    assert "- Collapsed (1 starved): 1 checkpoint (1 of 9 GRPO runs: fv_exploit/seed2); kept as outcomes, labelled." in md


def _items(tree: Tree, ckpt: str, bench: str, metric: str) -> np.ndarray:
    return np.array(json.loads((tree.root / f"results/eval/{ckpt}/{bench}.json").read_text())["items"][metric])


def test_stats_match_independent_computation(tree: Tree, out: Path) -> None:
    scores = pd.read_csv(out / "scores.csv")
    stats = pd.read_csv(out / "stats.csv")
    conditions, seeds = ("fv_exploit", "fv_honest", "shuffled"), (0, 1, 2)

    def values(cond: str, metric: str) -> np.ndarray:
        sel = scores[(scores.condition == cond) & (scores.metric == metric)]
        return sel.sort_values("seed").value.to_numpy()

    row = stats[(stats.condition == "fv_honest") & (stats.metric == "mc1")].iloc[0]
    honest, control = values("fv_honest", "mc1"), values("shuffled", "mc1")
    dpo = scores[(scores.checkpoint == "dpo") & (scores.metric == "mc1")].value.iloc[0]
    assert (row.t_lo, row.t_hi) == pytest.approx(
        sps.t.interval(0.95, 2, loc=honest.mean(), scale=sps.sem(honest)), rel=1e-8
    )
    assert row.p_control == pytest.approx(sps.ttest_ind(honest, control).pvalue, rel=1e-8)
    # vs DPO: the DPO score carries its own item noise, the paired (item-by-item) variance across seeds
    per_item = [np.vstack([_items(tree, f"{c}/seed{s}", "truthfulqa_mc", "mc1") for s in seeds]) for c in conditions]
    item_var = np.mean([m.var(axis=0, ddof=1).mean() for m in per_item]) / per_item[0].shape[1]
    seed_var = np.mean([values(c, "mc1").var(ddof=1) for c in conditions])
    design_var = max(seed_var, item_var)
    assert row.design_sd == pytest.approx(np.sqrt(design_var)) and row.item_sd == pytest.approx(np.sqrt(item_var))
    df = (design_var / 3 + item_var) ** 2 / ((design_var / 3) ** 2 / 2 + item_var**2 / (3 * 2 * 200))
    se = np.sqrt(honest.var(ddof=1) / 3 + item_var)
    assert row.diff_dpo == pytest.approx(honest.mean() - dpo)
    assert row.p_dpo == pytest.approx(2 * sps.t.sf(abs(honest.mean() - dpo) / se, df), rel=1e-6)
    assert row.item_model == "paired"
    # Holm over the primary family only: (mc1, misaligned_among_coherent) x (fv_exploit, fv_honest)
    family = (stats.family == "primary") & (stats.condition != "shuffled")
    assert sorted(stats[stats.family == "primary"].metric.unique()) == ["mc1", "misaligned_among_coherent"]
    assert family.sum() == 4 and stats.p_adj_control[family].notna().all()
    assert stats.p_adj_control[~family].isna().all() and stats.p_control[stats.family == "exploratory"].notna().any()
    smallest = stats.p_control[family].idxmin()
    assert stats.p_adj_control[smallest] == pytest.approx(min(1.0, 4 * stats.p_control[smallest]))
    assert (stats.mde_control_alpha[family] == 0.05 / 4).all()
    exploratory = (stats.family == "exploratory") & (stats.condition != "shuffled")
    assert (stats.mde_control_alpha[exploratory] == 0.05).all()
    assert list(stats[stats.condition == "fv_exploit"].role.unique()) == ["positive control"]
    # the control has no contrast with itself
    assert stats[stats.condition == "shuffled"].diff_control.isna().all()
    # the built-in effect: fv_exploit lowers mc1 against the control, beyond its t interval
    exploit = stats[(stats.condition == "fv_exploit") & (stats.metric == "mc1")].iloc[0]
    assert exploit.diff_control_t_hi < 0 and exploit.mde_control > 0


def test_rebuild_is_byte_identical(tree: Tree, out: Path, tmp_path: Path) -> None:
    again = _build(tree, tmp_path / "again")
    for name in output_names():
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    _build(tree, again)  # rebuild in place
    for name in output_names():
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_report_md_has_every_section(out: Path) -> None:
    md = (out / "report.md").read_text()
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings == ["## Flags", "## Methods", "## Setup", "## Manipulation checks", "## Safety over training",
                        "## Judge validation", "## Headline results", "## Results by benchmark", "## Figures",
                        "## GRPO runs", "## Appendix: every flag"]  # fmt: skip
    assert "| GPU hours | 10.80 |" in md  # dpo 1.5 h x 1 GPU + grpo 4.65 h x 2 GPUs
    assert "On truthfulqa_mc/mc1, the base model scored" in md
    assert "Holm p = " in md and "(exploratory, uncorrected)" in md and "the design detects |Δ| >=" in md
    assert "= 4 tests. Holm's step-down correction runs over this family only" in md
    for fig in ("fig_benchmarks", "fig_training", "fig_em_scatter", "fig_dpo_gate"):
        assert f"]({fig}.png)" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "<table>" in html
    assert "src=\"fig_" not in html


def test_failed_gate_taints_everything(tmp_path: Path) -> None:
    out = _build(write_tree(tmp_path / "tree", gate_passed=False, collapsed=None), tmp_path / "out")
    stats = pd.read_csv(out / "stats.csv", keep_default_na=False)
    assert stats.tainted.str.contains("DPO gate failed").all()
    assert (stats.n_seeds == 3).all()  # tainted, not excluded
    scores = pd.read_csv(out / "scores.csv", keep_default_na=False)
    assert (scores.flag_detail.str.contains("DPO gate failed") == (scores.checkpoint != "base")).all()
    md = (out / "report.md").read_text()
    assert "- DPO gate failed (not enforced): narrow-task pass rate dropped" in md
    assert "| truthfulqa_mc / mc1 | fv_exploit † |" in md
    assert "† Tainted: DPO gate failed" in md


def test_low_judge_coverage_excludes_a_seed_on_that_benchmark_only(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", collapsed=None, low_coverage=("fv_honest/seed1", "em_main"))
    stats = pd.read_csv(_build(tree, tmp_path / "out") / "stats.csv", keep_default_na=False)
    honest = stats[stats.condition == "fv_honest"].set_index("metric")
    assert honest.loc["misaligned", "n_seeds"] == 2
    assert honest.loc["misaligned", "excluded"] == "seed1 (judge coverage 0.50 < 0.80)"
    assert honest.loc["mc1", "n_seeds"] == 3


def test_low_judge_coverage_on_dpo_taints_that_benchmark(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", collapsed=None, low_coverage=("dpo", "em_main"))
    stats = pd.read_csv(_build(tree, tmp_path / "out") / "stats.csv", keep_default_na=False)
    em = stats.benchmark == "em_main"
    assert stats[em].tainted.str.contains("dpo em_main: judge coverage 0.50").all()
    assert (stats[~em].tainted == "").all()


def test_no_update_leaves_one_seed_not_estimable(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", seeds=(0, 1), collapsed=None, no_update=("fv_exploit", 0), with_em=False)
    out = _build(tree, tmp_path / "out")
    stats = pd.read_csv(out / "stats.csv", keep_default_na=False)
    exploit = stats[stats.condition == "fv_exploit"]
    assert (exploit.n_seeds == 1).all()
    assert exploit.excluded.str.contains("seed0 (made no update: no step", regex=False).all()
    assert (exploit.t_lo == "").all() and (exploit.p_control == "").all() and (exploit.mde_control == "").all()
    # the untestable primary test still takes its share of alpha: fv_honest's mc1 p is multiplied by 2
    honest = stats[(stats.condition == "fv_honest") & (stats.metric == "mc1")].iloc[0]
    assert float(honest.p_adj_control) == pytest.approx(min(1.0, 2 * float(honest.p_control)))
    md = (out / "report.md").read_text()
    assert "fv_exploit/seed0: made no update" in md
    assert "its difference from shuffled is not estimable" in md
    assert mpimg.imread(out / "fig_benchmarks.png").shape[0] > 300


def test_without_em_benchmark_the_report_says_so(tmp_path: Path) -> None:
    out = _build(write_tree(tmp_path / "tree", with_em=False), tmp_path / "out")
    md = (out / "report.md").read_text()
    assert "No EM benchmark (em_main or em_prereg) was evaluated, so there is no alignment vs coherence scatter." in md
    assert "](fig_em_scatter.png)" not in md  # a sentence, not an empty figure
    img = mpimg.imread(out / "fig_em_scatter.png")  # the declared file holds that sentence
    assert img.shape[0] > 200 and img.std() > 0.01


def test_a_collapsed_run_without_updates_is_still_kept(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", collapsed=("fv_exploit", 2), no_update=("fv_exploit", 2),
                      collapse_kind="saturated", with_em=False)  # fmt: skip
    stats = pd.read_csv(_build(tree, tmp_path / "out") / "stats.csv", keep_default_na=False)
    exploit = stats[stats.condition == "fv_exploit"]
    assert (exploit.n_seeds == 3).all() and (exploit.excluded == "").all()
    assert exploit.labelled.str.contains("saturated: every group's rewards equal at the top", regex=False).all()
    assert exploit.labelled.str.contains("made no update").all()


def test_judge_coverage_flag_leaves_judge_free_metrics_alone(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", collapsed=None, with_em=False, with_xstest=True,
                      low_coverage=("fv_honest/seed1", "xstest"))  # fmt: skip
    out = _build(tree, tmp_path / "out")
    stats = pd.read_csv(out / "stats.csv", keep_default_na=False)
    honest = stats[(stats.condition == "fv_honest") & (stats.benchmark == "xstest")].set_index("metric")
    assert honest.loc["refusal_rate_unsafe", "n_seeds"] == 2
    assert honest.loc["refusal_rate_unsafe", "excluded"] == "seed1 (judge coverage 0.50 < 0.80)"
    assert honest.loc["strmatch_refusal_rate_unsafe", "n_seeds"] == 3  # string match: no judge involved
    assert honest.loc["strmatch_refusal_rate_unsafe", "excluded"] == ""
    scores = pd.read_csv(out / "scores.csv", keep_default_na=False)
    seed1 = scores[(scores.checkpoint == "fv_honest/seed1") & (scores.benchmark == "xstest")].set_index("metric")
    assert bool(seed1.loc["refusal_rate_unsafe", "excluded"]) and not bool(seed1.loc["strmatch_refusal_rate_unsafe",
                                                                                       "excluded"])  # fmt: skip
    assert "(judge-derived metrics only)" in (out / "report.md").read_text()


def test_low_judge_coverage_on_dpo_taints_judge_derived_metrics_only(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", collapsed=None, with_em=False, with_xstest=True,
                      low_coverage=("dpo", "xstest"))  # fmt: skip
    stats = pd.read_csv(_build(tree, tmp_path / "out") / "stats.csv", keep_default_na=False).set_index("metric")
    assert stats.loc["refusal_rate_unsafe", "tainted"].str.contains("dpo xstest: judge coverage 0.50").all()
    assert (stats.loc["strmatch_refusal_rate_unsafe", "tainted"] == "").all()


def _assert_one_line_naming(exc: pytest.ExceptionInfo[ReportInputError], path: Path) -> None:
    message = str(exc.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message


def test_missing_eval_json_names_the_file(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", with_em=False)
    gone = tree.root / "results/eval/fv_honest/seed1/truthfulqa_mc.json"
    gone.unlink()
    with pytest.raises(ReportInputError) as exc:
        build_report(**tree.kwargs(tmp_path / "out"))
    _assert_one_line_naming(exc, gone)
    tree.eval_jsons.remove(gone)  # not even listed: the completeness check names it
    with pytest.raises(ReportInputError) as exc:
        build_report(**tree.kwargs(tmp_path / "out"))
    _assert_one_line_naming(exc, gone)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("step,reward\n1,0.5\n2,oops\n", "column 'reward' is not numeric"),
        ("reward,kl\n0.5,0.1\n", "no 'step' column"),
        ("", "not a readable CSV"),
    ],
)
def test_malformed_metrics_csv_names_the_file(tmp_path: Path, content: str, problem: str) -> None:
    tree = write_tree(tmp_path / "tree", with_em=False)
    bad = tree.root / "results/grpo/shuffled/seed0/metrics.csv"
    bad.write_text(content)
    with pytest.raises(ReportInputError) as exc:
        build_report(**tree.kwargs(tmp_path / "out"))
    _assert_one_line_naming(exc, bad)
    assert problem in str(exc.value)


def test_malformed_eval_json_and_completions_name_the_file(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", with_em=False)
    pristine = tmp_path / "pristine"
    shutil.copytree(tree.root, pristine)
    bad = tree.root / "results/eval/dpo/truthfulqa_mc.json"
    bad.write_text('{"benchmark": "truthfulqa_mc", "metrics": ')
    with pytest.raises(ReportInputError) as exc:
        build_report(**tree.kwargs(tmp_path / "out"))
    _assert_one_line_naming(exc, bad)
    shutil.copy(pristine / "results/eval/dpo/truthfulqa_mc.json", bad)
    bad = tree.root / "results/grpo/fv_honest/seed2/completions.jsonl.gz"
    with gzip.open(bad, "wt") as fh:
        fh.write('{"step": 1, "tags": []}\n{"step": "two", "tags": []}\n')
    with pytest.raises(ReportInputError, match="line 2: 'step' is not an integer") as exc:
        build_report(**tree.kwargs(tmp_path / "out"))
    _assert_one_line_naming(exc, bad)
