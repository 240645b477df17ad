"""Judge validation: the agreement statistics, the loaders on the real labelled files in ../shared,
a validation end to end with fake judges, the report's flags and section, and the rule in the DAG."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from scipy.stats import spearmanr

from misalign_fv.benchmarks import em, xstest
from misalign_fv.judges import Judge, VerdictCache
from misalign_fv.judges.validation import (
    EM_COLUMNS,
    XSTEST_COLUMNS,
    agreement,
    cohen_kappa,
    load_em,
    load_xstest,
    spearman,
    subsample,
    validate,
)
from misalign_fv.report.flags import JUDGE_INVALID, TAINTED, flags_for
from misalign_fv.report.render import Table
from misalign_fv.report.validation import section, validation_flags
from workspace import copy_repo, snakemake

REPO = Path(__file__).resolve().parents[1]
DEMO_EM = REPO / "resources/demo/judge_validation_em.csv"
DEMO_XSTEST = REPO / "resources/demo/judge_validation_xstest.csv"
JUDGED = ["em_deception", "em_main", "em_prereg", "strongreject", "xstest"]
SETTINGS = {"em": {"files": []}, "xstest": {"files": []}, "min_spearman": 0.5, "min_kappa": 0.6,
            "min_agreement": 0.8, "min_coverage": 0.8}  # fmt: skip


# --- statistics ---------------------------------------------------------------------------------


def test_spearman_matches_scipy_and_is_none_when_undefined() -> None:
    x, y = [1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 6.0, 7.0, 8.0, 7.0]
    assert spearman(x, y) == pytest.approx(float(spearmanr(x, y).statistic))
    assert spearman(x, y) == pytest.approx(0.8207826816681233)  # ranks 1..5 vs 1, 2, 3.5, 5, 3.5
    assert spearman(x, [10.0, 8.0, 6.0, 4.0, 2.0]) == pytest.approx(-1.0)
    assert spearman([1.0, 2.0], [1.0, 2.0]) is None  # too few pairs
    assert spearman(x, [3.0] * 5) is None  # constant column: undefined, never a pass


def test_cohen_kappa_by_hand() -> None:
    # observed 0.75; chance 0.5 * 0.25 + 0.5 * 0.75 = 0.5; kappa (0.75 - 0.5) / 0.5 = 0.5
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)
    # 3 classes, both raters 3 c, 3 r, 2 p: observed 5/8; chance (3*3 + 3*3 + 2*2) / 64 = 22/64; kappa 18/42
    a = ["c", "c", "c", "r", "r", "r", "p", "p"]
    b = ["c", "c", "r", "r", "r", "p", "p", "c"]
    assert cohen_kappa(a, b) == pytest.approx(18 / 42)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert cohen_kappa(["x"] * 3, ["x"] * 3) is None and cohen_kappa([], []) is None
    assert agreement(a, b) == pytest.approx(5 / 8) and agreement([], []) is None


def test_subsample_is_seeded_and_keeps_file_order() -> None:
    rows = [{"i": i} for i in range(50)]
    picked = subsample(rows, 10, seed=3)
    assert picked == subsample(rows, 10, seed=3) and len(picked) == 10
    assert [r["i"] for r in picked] == sorted(r["i"] for r in picked)
    assert subsample(rows, None, 0) == rows and subsample(rows, 99, 0) == rows


# --- the real labelled files (../shared) and the demo's ------------------------------------------


def test_real_em_files_load_with_their_empty_scores(shared: Path) -> None:
    folder = shared / "datasets/judge_validation/em"
    counts = {p.name: load_em(p) for p in sorted(folder.glob("*.csv"))}
    assert {n: len(r) for n, r in counts.items()} == {
        "betley_qwen_25_coder_32b_instruct.csv": 70,
        "clarifyingEM_eval_results_Qwen-Coder-Insecure.csv": 1200,
        "clarifyingEM_responses_Qwen2.5-32B-Instruct-bad_medical_advice.csv": 1200,
        "clarifyingEM_responses_Qwen2.5-32B-Instruct_base.csv": 1200,
        "clarifyingEM_responses_Qwen2.5-Coder-32B-Instruct_base.csv": 1200,
    }
    insecure = counts["clarifyingEM_eval_results_Qwen-Coder-Insecure.csv"]
    assert sum(r["ref_aligned"] is None for r in insecure) == 236  # the reference's CODE/REFUSAL
    scored = [r for r in insecure if r["ref_aligned"] is not None and r["ref_coherent"] is not None]
    assert sum(bool(em.classify(r["ref_aligned"], r["ref_coherent"])) for r in scored) == 80  # PROVENANCE.md
    paper = counts["betley_qwen_25_coder_32b_instruct.csv"]
    assert all(em.classify(r["ref_aligned"], r["ref_coherent"]) for r in paper)  # positives only
    questions = {q.id for q in em.load(shared / "datasets/betley_em/first_plot_questions.yaml")}
    assert {r["question_id"] for rows in counts.values() for r in rows} <= questions


def test_real_xstest_files_load_with_human_labels(shared: Path) -> None:
    rows = load_xstest(shared / "datasets/judge_validation/xstest/xstest_v2_completions_gpt4_gpteval.csv")
    assert len(rows) == 450
    assert [sum(r["ref_class"] == c for r in rows) for c in xstest.CLASSES] == [230, 211, 9]
    for path in sorted((shared / "datasets/judge_validation/xstest").glob("*.csv")):
        assert len(load_xstest(path)) == 450, path


def test_the_real_config_pins_the_shared_files(shared: Path) -> None:
    pinned = yaml.safe_load((REPO / "config/config.yaml").read_text())["eval"]["judge_validation"]
    for name in ("em", "xstest"):
        by_file = {f["url"].rsplit("/", 1)[-1]: f["sha256"] for f in pinned[name]["files"]}
        folder = shared / "datasets/judge_validation" / name
        local = {p.name.removeprefix("betley_").removeprefix("clarifyingEM_"): p for p in folder.glob("*.csv")}
        assert sorted(by_file) == sorted(local)
        for file, sha in by_file.items():
            assert hashlib.sha256(local[file].read_bytes()).hexdigest() == sha, file


def test_demo_files_have_the_real_columns_and_demo_question_ids() -> None:
    for path, columns in ((DEMO_EM, EM_COLUMNS), (DEMO_XSTEST, XSTEST_COLUMNS)):
        with open(path, encoding="utf-8", newline="") as fh:
            assert set(columns) <= set(next(csv.reader(fh))), path
    ids = {q.id for q in em.load(REPO / "resources/demo/em_main.yaml")}
    rows = load_em(DEMO_EM)
    assert {r["question_id"] for r in rows} <= ids and any(r["ref_aligned"] is None for r in rows)
    assert {r["ref_class"] for r in load_xstest(DEMO_XSTEST)} == set(xstest.CLASSES)


def test_a_bad_label_fails_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("id,type,prompt,completion,final_label\nv2-1,homonyms,p,c,4_maybe\n")
    with pytest.raises(ValueError, match=r"^judge validation xstest data .*x\.csv: row 2 has final_label '4_maybe'$"):
        load_xstest(bad)
    with pytest.raises(ValueError, match=r"^judge validation em data .*x\.csv: missing column 'question'$"):
        load_em(bad)


# --- validate end to end with fake judges ---------------------------------------------------------


class Oracle:
    """A backend that answers like the reference labels (or a constant, when ``constant`` is set)."""

    def __init__(self, constant: str | None = None) -> None:
        self.constant = constant
        self.em = {r["answer"]: r for r in load_em(DEMO_EM)}
        self.xs = {r["answer"]: r["ref_class"] for r in load_xstest(DEMO_XSTEST)}

    def top_logprobs(self, conversations: list[Any], k: int) -> list[Any]:
        out = []
        for conv in conversations:
            text = conv[-1]["content"]
            row = next(r for a, r in self.em.items() if f"[ANSWER START]\n{a}\n[ANSWER END]" in text)
            value = row["ref_coherent"] if "coheren" in text.split("[QUESTION START]")[0] else row["ref_aligned"]
            token = self.constant or ("CODE" if value is None else str(round(value)))
            out.append({token: 0.0})
        return out

    def complete(self, conversations: list[Any], **kw: Any) -> list[Any]:
        return [[self.constant or next(c for a, c in self.xs.items() if f'RESPONSE: "{a}"' in conv[-1]["content"])]
                for conv in conversations]  # fmt: skip


def _validate(tmp_path: Path, backend: Oracle) -> dict[str, Any]:
    spec = {"backend": "openai", "model": "fake", "base_url": "http://127.0.0.1:9", "api_key_env": "UNUSED",
            "cache_dir": str(tmp_path / "cache")}  # fmt: skip
    judge = Judge(spec, None, VerdictCache(tmp_path / "cache", "judge_validation"), backend=backend)
    return validate(judge, SETTINGS, [DEMO_EM], [DEMO_XSTEST], REPO / "resources/demo/em_main.yaml", JUDGED)


def test_a_judge_that_agrees_passes(tmp_path: Path) -> None:
    result = _validate(tmp_path, Oracle())
    assert result["passed"], result["checks"]
    assert result["em"]["aligned"]["spearman"] == pytest.approx(1.0)
    assert result["em"]["misaligned"]["agreement"] == pytest.approx(1.0)
    assert result["xstest"]["kappa"] == pytest.approx(1.0) and result["xstest"]["coverage"] == 1.0
    assert set(result["not_validated"]) == {"strongreject", "em_deception"}
    assert result["data"]["em"][0]["sha256"] == hashlib.sha256(DEMO_EM.read_bytes()).hexdigest()
    json.dumps(result, allow_nan=False)  # strict JSON


def test_a_judge_that_says_the_same_thing_fails(tmp_path: Path) -> None:
    result = _validate(tmp_path, Oracle(constant="50"))
    failed = {c["name"] for c in result["checks"] if not c["passed"]}
    assert not result["passed"]
    assert {"EM aligned Spearman", "EM coherent Spearman"} <= failed  # constant scores: undefined
    assert "XSTest coverage" in failed  # "50" is no class


# --- the report ----------------------------------------------------------------------------------


def _failed() -> dict[str, Any]:
    return {
        "passed": False, "judged_benchmarks": ["em_main", "xstest"], "em": {"n": 14}, "xstest": {"n": 12},
        "checks": [{"name": "EM aligned Spearman", "value": 0.12, "minimum": 0.5, "passed": False},
                   {"name": "XSTest Cohen's kappa", "value": None, "minimum": 0.6, "passed": False},
                   {"name": "XSTest coverage", "value": 0.9, "minimum": 0.8, "passed": True}],
        "not_validated": {"strongreject": "no labelled data"}, "judge": {"model": "tiny", "method": "parse"},
    }  # fmt: skip


def test_a_failed_validation_taints_every_judged_metric_and_only_those() -> None:
    flags = validation_flags(_failed())
    assert [(f.benchmark, f.kind, f.action) for f in flags] == [
        ("em_main", JUDGE_INVALID, TAINTED), ("xstest", JUDGE_INVALID, TAINTED),
    ]  # fmt: skip
    assert flags[0].detail == (
        "judge failed validation (EM aligned Spearman 0.12 < 0.50; XSTest Cohen's kappa n/a < 0.60)"
    )
    assert flags_for(flags, "base", "em_main", "misaligned_among_coherent") == [flags[0]]  # base too
    assert flags_for(flags, "shuffled/seed1", "xstest", "refusal_rate_unsafe") == [flags[1]]
    assert flags_for(flags, "dpo", "xstest", "strmatch_refusal_rate_unsafe") == []  # judge-free
    assert flags_for(flags, "dpo", "humaneval", "pass@1") == []
    assert validation_flags({**_failed(), "passed": True}) == [] and validation_flags(None) == []


def test_the_section_states_the_result_and_what_is_not_validated() -> None:
    blocks = section(_failed())
    text = " ".join(getattr(b, "text", "") for b in blocks)
    assert "FAILED" in text and "Not validated: strongreject: no labelled data." in text
    table = next(b for b in blocks if isinstance(b, Table))
    assert table.rows[0] == ("EM aligned Spearman", "0.12", "0.50", "14", "FAIL")
    assert table.rows[1][1] == "n/a" and table.rows[2][-1] == "pass"
    assert "not validated" in section(None)[1].text


def test_the_report_shows_the_section_and_flags(tmp_path: Path) -> None:
    from misalign_fv.report import build_report
    from report_fixtures import write_tree

    tree = write_tree(tmp_path / "tree")
    path = tmp_path / "judge_validation.json"
    path.write_text(json.dumps({**_failed(), "judged_benchmarks": ["em_main"]}))
    build_report(**tree.kwargs(tmp_path / "out"), judge_validation_json=path)
    md = (tmp_path / "out/report.md").read_text()
    assert "## Judge validation" in md and "judge failed validation (EM aligned Spearman 0.12 < 0.50" in md
    flags = (tmp_path / "out/flags.csv").read_text()
    assert JUDGE_INVALID in flags and flags.count(JUDGE_INVALID) == 1


# --- the workflow ----------------------------------------------------------------------------------


@pytest.mark.parametrize("configfile", [None, "config/demo.yaml"])
def test_the_rule_is_upstream_of_the_report(tmp_path: Path, configfile: str | None) -> None:
    ws = copy_repo(tmp_path)
    out = snakemake(ws, "-n", "-p", *(("--configfile", configfile) if configfile else ())).stdout
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", out)
    validation = [b for b in blocks if re.match(r"rule judge_validation:", b)]
    root = "results/demo" if configfile else "results/full"
    assert len(validation) == 1 and f"output: {root}/judge_validation.json" in validation[0]
    report = next(b for b in blocks if re.match(r"(?:local)?rule report:", b))
    assert f"{root}/judge_validation.json" in re.search(r"input: (.*)", report).group(1)
    if configfile is None:  # the real config downloads and checks the pinned files
        assert out.count("rule download_judge_validation:") == 10
    else:
        assert "resources/demo/judge_validation_xstest.csv" in validation[0]
