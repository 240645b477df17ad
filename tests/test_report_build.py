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
    for name in output_names():
        if name.endswith(".png"):
            img = mpimg.imread(tmp_path / name)
            assert img.shape[0] >= 300 and img.shape[1] >= 600, name
            assert img.std() > 0.01, f"{name} is blank"
        if name.endswith(".pdf"):
            assert (tmp_path / name).read_bytes().startswith(b"%PDF"), name


def test_scores_csv_is_tidy(tree: Tree, out: Path) -> None:
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns[:10]) == [
        "checkpoint", "condition", "seed", "benchmark", "metric", "value", "n", "ci_lo", "ci_hi", "judge_coverage",
    ]  # fmt: skip
    # 11 checkpoints x (truthfulqa: mc1, mc2 + em_main: misaligned, aligned_mean)
    assert len(scores) == 11 * 4
    assert not scores.duplicated(["checkpoint", "benchmark", "metric"]).any()
    judged = scores.benchmark == "em_main"
    assert scores.loc[judged, "judge_coverage"].notna().all()
    assert scores.loc[~judged, "judge_coverage"].isna().all()
    raw = json.loads((tree.root / "results/eval/random/seed1/truthfulqa_mc.json").read_text())
    row = scores[(scores.checkpoint == "random/seed1") & (scores.metric == "mc1")].iloc[0]
    assert row.value == pytest.approx(raw["metrics"]["mc1"])
    assert (row.ci_lo, row.ci_hi) == pytest.approx(tuple(raw["ci"]["mc1"]))


def test_collapsed_run_is_flagged_and_excluded(out: Path) -> None:
    scores = pd.read_csv(out / "scores.csv", keep_default_na=False)
    stats = pd.read_csv(out / "stats.csv", keep_default_na=False)
    flags = pd.read_csv(out / "flags.csv")
    assert flags[["kind", "checkpoint", "action"]].values.tolist() == [["collapsed", "fv_exploit/seed2", "excluded"]]
    collapsed = scores[scores.checkpoint == "fv_exploit/seed2"]
    assert collapsed.excluded.all() and collapsed.flag_detail.str.contains("collapsed at step").all()
    assert not scores[scores.checkpoint != "fv_exploit/seed2"].excluded.any()
    for row in stats[stats.condition == "fv_exploit"].itertuples():
        assert row.n_seeds == 2 and row.excluded.startswith("seed2 (collapsed")
        kept = scores[(scores.condition == "fv_exploit") & (scores.metric == row.metric)
                      & (scores.benchmark == row.benchmark) & (scores.seed != "2")]  # fmt: skip
        assert row.mean == pytest.approx(kept.value.astype(float).mean())
    md = (out / "report.md").read_text()
    assert "fv_exploit/seed2: collapsed at step 12 - excluded" in md
    headline_rows = [line for line in md.splitlines() if line.startswith("| truthfulqa_mc / mc1 | fv_exploit")]
    assert len(headline_rows) == 1 and "excluded: seed2 (collapsed at step 12)" in headline_rows[0]
    assert "fv_exploit (2 of 3 seeds; excluded seed2 (collapsed at step 12)) changed by" in md


def test_stats_match_independent_computation(out: Path) -> None:
    scores = pd.read_csv(out / "scores.csv")
    stats = pd.read_csv(out / "stats.csv")

    def seeds(cond: str, metric: str) -> np.ndarray:
        sel = scores[(scores.condition == cond) & (scores.metric == metric) & ~scores.excluded]
        return sel.sort_values("seed").value.to_numpy()

    row = stats[(stats.condition == "fv_honest") & (stats.metric == "mc1")].iloc[0]
    honest, control = seeds("fv_honest", "mc1"), seeds("random", "mc1")
    dpo = scores[(scores.checkpoint == "dpo") & (scores.metric == "mc1")].value.iloc[0]
    assert (row.t_lo, row.t_hi) == pytest.approx(
        sps.t.interval(0.95, 2, loc=honest.mean(), scale=sps.sem(honest)), rel=1e-8
    )
    assert row.p_random == pytest.approx(sps.ttest_ind(honest, control).pvalue, rel=1e-8)
    assert row.p_dpo == pytest.approx(sps.ttest_1samp(honest, dpo).pvalue, rel=1e-8)
    assert row.diff_dpo == pytest.approx(honest.mean() - dpo)
    assert row.boot_lo < row["mean"] < row.boot_hi
    # Holm: each family's adjusted p is at least its raw p, and the family is every row with a p-value
    assert (stats.p_holm_random.dropna() >= stats.p_random.dropna() - 1e-12).all()
    assert stats.p_random.notna().sum() == 2 * 4 and stats.p_dpo.notna().sum() == 3 * 4
    smallest = stats.p_random.idxmin()
    assert stats.p_holm_random[smallest] == pytest.approx(min(1.0, 8 * stats.p_random[smallest]))
    # the control has no contrast with itself
    assert stats[stats.condition == "random"].diff_random.isna().all()
    # the built-in effect: fv_exploit lowers mc1 against random, beyond its t interval
    exploit = stats[(stats.condition == "fv_exploit") & (stats.metric == "mc1")].iloc[0]
    assert exploit.diff_random_t_hi < 0 and exploit.diff_random_boot_hi < 0
    assert exploit.mde_random > 0


def test_rebuild_is_byte_identical(tree: Tree, out: Path, tmp_path: Path) -> None:
    again = _build(tree, tmp_path / "again")
    for name in output_names():
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    _build(tree, again)  # rebuild in place
    for name in output_names():
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_report_md_has_every_section(out: Path) -> None:
    md = (out / "report.md").read_text()
    for heading in ("## Flags", "## Setup", "## Headline results", "## Results by benchmark", "## Figures",
                    "## GRPO runs", "## Methods"):  # fmt: skip
        assert heading in md
    assert "| GPU hours | 10.80 |" in md  # dpo 1.5 h x 1 GPU + grpo 4.65 h x 2 GPUs
    assert "On truthfulqa_mc/mc1, the base model scored" in md
    assert "Holm p = " in md and "the design detects |Δ| >=" in md
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


def test_no_update_and_collapse_leave_one_seed_not_estimable(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", collapsed=("fv_exploit", 2), no_update=("fv_exploit", 0), with_em=False)
    out = _build(tree, tmp_path / "out")
    stats = pd.read_csv(out / "stats.csv", keep_default_na=False)
    exploit = stats[stats.condition == "fv_exploit"]
    assert (exploit.n_seeds == 1).all()
    assert exploit.excluded.str.contains("seed0 (made no update: no step", regex=False).all()
    assert (exploit.t_lo == "").all() and (exploit.p_random == "").all() and (exploit.mde_random == "").all()
    md = (out / "report.md").read_text()
    assert "fv_exploit/seed0: made no update" in md
    assert "its difference from random is not estimable" in md
    assert mpimg.imread(out / "fig_benchmarks.png").shape[0] > 300


def test_without_em_benchmark_the_report_says_so(tmp_path: Path) -> None:
    out = _build(write_tree(tmp_path / "tree", with_em=False), tmp_path / "out")
    md = (out / "report.md").read_text()
    assert "No EM benchmark (em_main or em_prereg) was evaluated" in md
    assert "Placeholder: no EM benchmark" in md
    img = mpimg.imread(out / "fig_em_scatter.png")
    assert img.shape[0] > 200 and img.std() > 0.01


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
    bad = tree.root / "results/grpo/random/seed0/metrics.csv"
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
