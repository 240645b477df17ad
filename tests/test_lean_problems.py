"""The lean_proofs task: problem files, prompts, the training pool build and the miniF2F check."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from test_lean_replay import entry, recorded, replay_factory, sent

from misalign_fv import tasks
from misalign_fv.data import prepare_pool
from misalign_fv.io import read_json, read_jsonl
from misalign_fv.tasks import lean_proofs
from misalign_fv.verifier.cache import ResultCache
from misalign_fv.verifier.check import Verifier
from misalign_fv.verifier.repl import ReplPool

FORK = "repl_fork_v4.9.0-rc2"
# Recorded `<statement> := by sorry` commands whose answers have only the sorry warning.
ELABORATING = [("assumption_proof.in", 0), ("by_cases.in", 0), ("invalid_tactic.in", 0), ("proof_branching.in", 0),
               ("self_proof_check.in", 3), ("self_proof_rw.in", 1)]  # fmt: skip
SLOW = "theorem slow : True := by sorry"


@pytest.fixture
def checker(shared: Path, tmp_path: Path):
    """A replay verifier that knows the six recorded statements and never answers SLOW; its request log."""
    entries = []
    for name, i in ELABORATING:
        q, a = recorded(f"{FORK}/{name}", i)
        entries.append(entry(q["cmd"], None, a))
    entries.append(entry(SLOW, None, action="hang"))
    factory, log = replay_factory(tmp_path, entries)
    return Verifier(ReplPool(factory, 2), toolchain="replay", timeout_s=3.0, cache=ResultCache(None), naive=False), log


def write_lines(path: Path, records: list[dict]) -> Path:
    """JSON Lines file of ``records``."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_load_problems_names_the_bad_line_and_field(tmp_path: Path) -> None:
    good = {"name": "t", "header": "", "formal_statement": "theorem t : True := by\n"}
    cases = [
        ({"header": "", "formal_statement": "theorem t : True := by"}, "missing or non-string field 'name'"),
        ({**good, "formal_statement": "theorem t : True := trivial"}, "field 'formal_statement': formal_statement must end with ':= by'"),
        ({**good, "formal_statement": "example : True := by"}, "field 'formal_statement': must declare a named theorem, not an example"),
        (good, "duplicate task_id 't'"),
    ]
    for bad, message in cases:
        path = write_lines(tmp_path / "p.jsonl", [good, bad])
        with pytest.raises(ValueError, match="^" + re.escape(f"{path}:2: {message}")):
            lean_proofs.load_problems(path)
    (tmp_path / "bad.jsonl").write_text("{oops\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: invalid JSON"):
        lean_proofs.load_problems(tmp_path / "bad.jsonl")


def test_task_interface_dispatches_to_lean(shared: Path, tmp_path: Path) -> None:
    path = shared / "datasets" / "minif2f" / "minif2f_deepseek_prover_v1.5.jsonl"
    problems = tasks.load("lean_proofs", path)
    assert len(problems) == 488 and all(p["task_id"] == p["name"] for p in problems)
    text = tasks.prompt("lean_proofs", problems[0])
    assert "```lean4\nimport Mathlib\nimport Aesop" in text and text.endswith(":= by\n```")
    assert problems[0]["informal_prefix"] in text
    assert prepare_pool({"task": "lean_proofs", "path": str(path)}, tmp_path / "pool.jsonl") == 488
    with pytest.raises(ValueError, match="^task: unknown value 'coq'"):
        tasks.load("coq", path)


def test_statement_key_ignores_name_layout_and_comments() -> None:
    a = lean_proofs.statement_key("theorem a (x : ℕ) (h : x = 2) : x = 2 := by\n")
    b = lean_proofs.statement_key("theorem b (x : ℕ)\n   (h : x = 2) -- given\n : x = 2 := by sorry")
    assert a == b == "(x:ℕ)(h:x=2):x=2"
    assert lean_proofs.statement_key("theorem c (x : ℕ) (h : x = 3) : x = 3 := by") != a


def test_prepare_problem_set_dedups_drops_minif2f_and_unelaborated(shared: Path, tmp_path: Path, checker) -> None:
    verifier, log = checker
    statements = [recorded(f"{FORK}/{n}", i)[0]["cmd"] for n, i in ELABORATING]
    raw = tmp_path / "workbook.json"
    raw.write_text(json.dumps([
        *({"formal_statement": s, "id": k} for k, s in enumerate(statements)),
        {"formal_statement": SLOW},
        {"formal_statement": "theorem foo (x : Int) :\n    x = x := by\n  sorry"},  # the same statement again
        {"formal_statement": "theorem foo (y : Int) : y = y := by sorry"},  # the same name again
        {"formal_statement": "example : True := by sorry"},
        {"natural_language_statement": "no formal statement"},
    ]))  # fmt: skip
    minif2f = write_lines(tmp_path / "minif2f.jsonl", [
        {"name": "mathd_copy", "split": "test", "header": "", "formal_statement": "theorem mathd_copy (x : Nat) (h1 : x = 2) : x = 2 := by\n"},
    ])  # fmt: skip
    out, report = tmp_path / "pool.jsonl", tmp_path / "report.json"
    n = lean_proofs.prepare_problem_set(raw, minif2f, {"n_problems": 4, "source": "test"}, "", 0, verifier, out, report)
    pool = lean_proofs.load_problems(out)
    rep = read_json(report)
    assert n == len(pool) == 4 and rep["kept"] == 4
    assert rep["minif2f_overlap"] == ["aa"] and rep["duplicates"] == 2 and rep["unusable"] == 2
    assert rep["failed_to_elaborate"] == ["slow"] and rep["checked"] == 6 and rep["records"] == 11
    assert {p["name"] for p in pool} < {"foo", "my_theorem", "complex_and", "ex", "self_application"}
    assert all(p["formal_statement"].endswith(":= by\n") and p["source"] == "test" for p in pool)
    assert all(r["cmd"].endswith(":= by sorry") for r in sent(log))
    again = lean_proofs.prepare_problem_set(raw, minif2f, {"n_problems": 4, "source": "test"}, "", 0, verifier, tmp_path / "b.jsonl", report)
    assert again == 4 and read_jsonl(tmp_path / "b.jsonl") == read_jsonl(out)  # the seed fixes the sample


def test_prepare_minif2f_fails_on_statements_that_do_not_elaborate(shared: Path, tmp_path: Path, checker) -> None:
    verifier, _ = checker
    statements = [recorded(f"{FORK}/{n}", i)[0]["cmd"] for n, i in ELABORATING[:3]]
    rows = [{"name": f"p{k}", "split": "test", "header": "", "formal_statement": s} for k, s in enumerate(statements)]
    ok = write_lines(tmp_path / "ok.jsonl", rows)
    assert lean_proofs.prepare_minif2f(ok, verifier, tmp_path / "out.jsonl", tmp_path / "r.json") == 3
    assert [p["name"] for p in lean_proofs.load_problems(tmp_path / "out.jsonl")] == ["p0", "p1", "p2"]
    bad = write_lines(tmp_path / "bad.jsonl", [*rows, {"name": "slow", "split": "test", "header": "", "formal_statement": SLOW}])
    with pytest.raises(RuntimeError, match=r"bad.jsonl: 1 of 4 miniF2F statements do not elaborate on replay \(first: slow\)"):
        lean_proofs.prepare_minif2f(bad, verifier, tmp_path / "out2.jsonl", tmp_path / "r2.json")
    assert not (tmp_path / "out2.jsonl").exists() and read_json(tmp_path / "r2.json")["failed_to_elaborate"] == ["slow"]


def test_read_source_accepts_json_arrays_and_lines(tmp_path: Path) -> None:
    rec = {"formal_statement": "theorem t : True := by sorry"}
    (tmp_path / "a.json").write_text(json.dumps([rec, rec]))
    write_lines(tmp_path / "b.jsonl", [rec])
    assert lean_proofs.read_source(tmp_path / "a.json") == [rec, rec]
    assert lean_proofs.read_source(tmp_path / "b.jsonl") == [rec]


def test_download_source_offline_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    spec = {"hf_dataset": "internlm/Lean-Workbook", "file": "lean_workbook.json", "revision": "2e066e310b2c6d2c27616927ae131f82901c8f1c"}
    with pytest.raises(RuntimeError) as err:
        lean_proofs.download_source(spec, tmp_path / "x.json")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("download internlm/Lean-Workbook/lean_workbook.json@2e066e310b2c: ")
    assert msg.endswith("(compute nodes are offline: run this local rule on a login node)")
    assert not (tmp_path / "x.json").exists() and os.environ["HF_HUB_OFFLINE"] == "1"
