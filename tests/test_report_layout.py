"""The report leads with the answer: the first screen of report.md and report.html, flags grouped by
cause, no empty figure panels; the HTML is laid out in a real browser (headless Chromium)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest

from misalign_fv.report import build_report
from misalign_fv.report.compose import fmt, fmt_ci
from misalign_fv.report.flags import EXCLUDED, LABELLED, TAINTED, Flag, cause_lines
from misalign_fv.report.manipulation import checks_sentence
from misalign_fv.report.screen import find_browser, first_screen_check, markdown_lead
from report_fixtures import Tree, judge_scores_nothing, write_tree

GRPO = [f"{c}/seed{s}" for c in ("fv_exploit", "fv_honest", "shuffled") for s in (0, 1, 2)]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report whose inputs raise one flag (a collapsed run)."""
    root = tmp_path_factory.mktemp("clean")
    tree = write_tree(root / "tree")
    build_report(**tree.kwargs(root / "out"))
    return root / "out"


@pytest.fixture(scope="module")
def judgeless(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like the demo: the judge scored nothing on em_main, so its metrics (one primary endpoint) have no
    value anywhere, every checkpoint is flagged several times over, and the EM scatter has nothing to show."""
    root = tmp_path_factory.mktemp("judgeless")
    tree: Tree = write_tree(root / "tree")
    judge_scores_nothing(tree)
    build_report(**tree.kwargs(root / "out"))
    return root / "out"


@pytest.fixture(scope="module")
def full_size(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real config's shape: 4 conditions and the control, 3 primary endpoints (15 table rows)."""
    root = tmp_path_factory.mktemp("full_size")
    tree = write_tree(root / "tree", conditions=("fv_exploit", "fv_honest", "fv_shaped", "ut_exploit", "shuffled"),
                      with_xstest=True)  # fmt: skip
    tree.settings["primary"].append({"benchmark": "xstest", "metric": "strmatch_refusal_rate_unsafe"})
    build_report(**tree.kwargs(root / "out"))
    return root / "out"


def _lead(md: str) -> list[str]:
    return md.splitlines()[:40]


def test_the_answer_paragraph_states_the_comparison_the_primary_results_and_the_checks(clean: Path) -> None:
    md = (clean / "report.md").read_text()
    lead = markdown_lead(md)
    assert lead["answer_in_lead"] and lead["answer_line"] == 3 and lead["primary_table_line"] == 5
    answer = md.splitlines()[2]
    assert answer.startswith("We compared 2 GRPO reward conditions (fv_exploit (positive control), fv_honest) with "
                             "the no-signal control shuffled, 3 seeds each, 20 steps")  # fmt: skip
    stats = pd.read_csv(clean / "stats.csv")
    row = stats[(stats.condition == "fv_exploit") & (stats.metric == "mc1")].iloc[0]
    assert (f"truthfulqa_mc/mc1 (control {fmt(row['mean'] - row.diff_control)}, DPO checkpoint {fmt(row.dpo)}): "
            f"fv_exploit {fmt(row.diff_control)} {fmt_ci(row.diff_control_t_lo, row.diff_control_t_hi)}, "
            f"p = {row.p_adj_control:.3f}, detected; fv_honest ") in answer  # fmt: skip
    assert f"; MDE {fmt(row.mde_control)}." in answer and "Holm-adjusted p over the 4 primary tests" in answer
    assert "80% power at α = 0.0125" in answer
    assert ("Answer: no treatment differed detectably from shuffled on any primary endpoint. The positive control "
            "fv_exploit did differ, so the pipeline detects an erosion that is there.") in answer  # fmt: skip
    assert "Manipulation checks" in answer and "DPO gate passed" in answer and "1 flag, grouped by cause below" in answer
    # the primary-endpoint table: each primary endpoint x each condition, control first
    start = _lead(md).index(next(line for line in _lead(md) if line.startswith("| truthfulqa_mc / mc1 |")))
    table = _lead(md)[start:start + 3]  # the endpoint is named on its first row only
    assert [line.split(" | ")[1] for line in table] == ["shuffled (control)", "fv_exploit (positive control)", "fv_honest"]
    assert table[1].startswith("|  | fv_exploit")
    assert f"| {fmt(row.mde_control)} | 1 collapsed (kept) |" in table[1]
    # then the one figure, then flags, then methods
    assert "![Primary and headline metrics per condition." in "\n".join(_lead(md))
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings[:2] == ["## Flags", "## Methods"]


def test_many_flags_stay_out_of_the_lead_grouped_by_cause(judgeless: Path) -> None:
    md = (judgeless / "report.md").read_text()
    flags = pd.read_csv(judgeless / "flags.csv")
    assert len(flags) > 40  # coverage + a missing value per metric on each of 11 checkpoints, + the collapse
    lead = markdown_lead(md)
    assert lead["answer_in_lead"] and lead["flag_lines"] <= 15
    section = md[md.index("## Flags"):md.index("## Methods")].splitlines()
    bullets = [line for line in section if line.startswith("- ")]
    assert md.index("## Flags") < md.index("## Methods") and len(md[:md.index("## Methods")].splitlines()) < 40
    assert bullets == [
        "- Judge coverage 0.00 < 0.80 on em_main: 11 checkpoints (base, dpo, 9 of 9 GRPO runs); so 3 judge-derived "
        "metrics have no value there; GRPO seed values excluded from the judge-derived statistics; the "
        "judge-derived numbers they feed marked †.",
        "- Collapsed (1 starved): 1 checkpoint (1 of 9 GRPO runs: fv_exploit/seed2); kept as outcomes, labelled.",
    ]
    # every flag is still listed, in the appendix
    appendix = md[md.index("## Appendix: every flag"):].splitlines()
    assert len([line for line in appendix if line.startswith("- ")]) == len(flags)
    # the judged primary endpoint is not estimable, and the answer says so
    answer = md.splitlines()[2]
    assert ("em_main/misaligned_among_coherent † (tainted, see Flags) (control n/a, DPO checkpoint n/a): fv_exploit "
            "not estimable (0 usable seeds); fv_honest not estimable (0 usable seeds).") in answer  # fmt: skip


def test_empty_panels_are_not_drawn_and_a_figure_with_nothing_becomes_a_sentence(judgeless: Path) -> None:
    md = (judgeless / "report.md").read_text()
    # em_main has no value anywhere: no panel, one sentence; truthfulqa still drawn
    assert ("Not drawn: em_main/misaligned_among_coherent, no value on any checkpoint (judge coverage 0.00 < 0.80)."
            in md)  # fmt: skip
    assert mpimg.imread(judgeless / "fig_benchmarks.png").shape[1] == 2 * 630  # 2 panels (mc1, mc2) of 4.2 in at 150 dpi
    # nothing to scatter: a sentence in the report, no image
    assert "](fig_em_scatter.png)" not in md
    assert "No EM answer has both judge scores, so there is nothing to scatter. Not drawn: em_main base" in md


@pytest.mark.skipif(find_browser() is None, reason="no Chromium on PATH (CI installs it: tests/install_chromium.sh)")
@pytest.mark.parametrize("fixture", ["clean", "judgeless", "full_size"])
def test_the_html_shows_the_answer_on_its_first_screen(fixture: str, request: pytest.FixtureRequest,
                                                       tmp_path: Path) -> None:  # fmt: skip
    out: Path = request.getfixturevalue(fixture)
    shot = tmp_path / "first_screen.png"
    screen = first_screen_check(out / "report.html", screenshot=shot)
    assert screen["viewport_width"] == 1280
    assert screen["answer_on_first_screen"], screen
    assert screen["answer"]["top"] < screen["primary"]["top"] < screen["lead-figure"]["top"] < 900  # figure starts there
    img = mpimg.imread(shot)
    assert img.shape[:2] == (900, 1280) and img.std() > 0.05


def test_cause_lines_count_checkpoints_and_fold_missing_values_into_their_coverage() -> None:
    def flag(kind: str, ckpt: str, metric: str, detail: str, action: str) -> Flag:
        seed = int(ckpt[-1]) if "/" in ckpt else None
        return Flag(kind, ckpt, ckpt.split("/")[0] if seed is not None else "", seed, "xstest", metric, detail, action)

    flags = [
        flag("low_judge_coverage", "dpo", "", "judge coverage 0.40 < 0.80", TAINTED),
        flag("low_judge_coverage", "a/seed1", "", "judge coverage 0.40 < 0.80", EXCLUDED),
        flag("missing_value", "a/seed1", "refusal_rate_unsafe", "no value", EXCLUDED),  # caused by the coverage
        flag("missing_value", "a/seed2", "strmatch_refusal_rate_unsafe", "no value", EXCLUDED),  # its own cause
        Flag("collapsed", "a/seed2", "a", 2, "", "", "collapsed at step 3 (saturated: every group's rewards equal "
             "at the top)", LABELLED),  # fmt: skip
    ]
    assert cause_lines(flags, ["a/seed1", "a/seed2", "b/seed1", "b/seed2"]) == [
        "Judge coverage 0.40 < 0.80 on xstest: 2 checkpoints (dpo, 1 of 4 GRPO runs: a/seed1); so 1 judge-derived "
        "metric has no value there; GRPO seed values excluded from the judge-derived statistics; the "
        "judge-derived numbers they feed marked †.",
        "No value on xstest: 1 metric (strmatch_refusal_rate_unsafe): 1 checkpoint (1 of 4 GRPO runs: a/seed2); GRPO "
        "seed values excluded from the statistics.",
        "Collapsed (1 saturated): 1 checkpoint (1 of 4 GRPO runs: a/seed2); kept as outcomes, labelled.",
    ]


def test_the_manipulation_sentence_says_which_conditions_took_and_why_not() -> None:
    summary = pd.DataFrame({
        "condition": ["up", "shuffled", "dead", "thin", "flat"], "took": ["yes", "n/a", "no", "no", "no"],
        "collapsed": ["none", "none", "3 starved", "none", "none"], "signal_share": [0.9, 1.0, 0.0, 0.1, 0.8],
    })  # fmt: skip
    assert checks_sentence(summary) == (
        "Manipulation checks: the reward rose (slope interval above 0) in up; not in dead (starved), thin (only 10% "
        "of groups had varying rewards), flat (no reliable rise), so a null there says nothing about that treatment."
    )
    assert checks_sentence(summary.iloc[:2]) == (
        "Manipulation checks passed: the reward rose (slope interval above 0) in up."
    )
