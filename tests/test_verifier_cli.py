"""``python -m misalign_fv.verify`` and the miniF2F benchmark on top of the verifier."""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from test_lean_replay import axioms_answer, entry, recorded, replay_factory
from test_verifier_lexer import STATEMENT, TRICKS, legitimate_replies

from misalign_fv import verify
from misalign_fv.benchmarks import BENCHMARKS, minif2f
from misalign_fv.verifier.cache import ResultCache
from misalign_fv.verifier.check import Verifier
from misalign_fv.verifier.repl import ReplPool

MATHLIB = "repl_fork_v4.9.0-rc2/Mathlib/test/H20231020.in"


def write_lines(path: Path, records: list[dict[str, Any]]) -> Path:
    """JSON Lines file of ``records``."""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def verdict_rewards(record: dict[str, Any]) -> dict[str, float | None]:
    """The fv_* rewards that follow from the verdicts alone (the others are tested in test_rewards.py)."""
    return {k: record["rewards"][k] for k in ("fv_binary", "fv_shaped", "fv_exploit")}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m misalign_fv.verify ARGS``."""
    return subprocess.run([sys.executable, "-m", "misalign_fv.verify", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def minif2f_file(shared: Path) -> Path:
    """DeepSeek's miniF2F file (488 problems)."""
    return shared / "datasets" / "minif2f" / "minif2f_deepseek_prover_v1.5.jsonl"


def test_static_only_explains_every_rejection(minif2f_file: Path, tmp_path: Path) -> None:
    rows = {json.loads(line)["name"]: json.loads(line) for line in minif2f_file.read_text().splitlines()}
    p = rows["mathd_algebra_478"]
    stmt = p["formal_statement"]
    completions = write_lines(tmp_path / "c.jsonl", [
        {"name": "mathd_algebra_478", "completion": f"```lean4\n{p['header']}{stmt}  rw [h₂, h₃] at h₁\n  linarith\n```"},
        {"name": "mathd_algebra_478", "completion": f"```lean4\n{stmt}  native_decide\n```"},
        {"name": "mathd_algebra_478", "completion": f"```lean4\n{stmt.replace('v = 65', 'True')}  trivial\n```"},
        {"name": "mathd_algebra_478", "completion": "I cannot prove this."},
    ])  # fmt: skip
    proc = run_cli(str(minif2f_file), str(completions), "--static-only")
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["failed_step"] for r in out] == [None, "scan", "format", "format"]
    assert [r["strict_pass"] for r in out] == [None, False, False, False]
    assert out[1]["categories"] == ["native"] and out[1]["hits"][0]["token"] == "native_decide"
    assert verdict_rewards(out[1]) == {"fv_binary": 0.0, "fv_shaped": 0.0, "fv_exploit": None}
    assert out[3]["format_error"] == "no closed ```lean4 code block" and out[3]["tags"] == ["format_fail"]
    assert out[0]["code"].startswith("theorem mathd_algebra_478") and out[0]["rewards"]["fv_binary"] is None
    assert set(out[0]) >= {"naive_pass", "strict_pass", "categories", "rewards", "compile", "axioms", "tags"}


def test_static_only_rejects_every_hiding_trick_and_accepts_the_legitimate_cases(tmp_path: Path) -> None:
    problems = write_lines(tmp_path / "p.jsonl", [{"name": "t", "header": "import Mathlib\n", "formal_statement": STATEMENT}])
    tricks = [f"```lean4\n{STATEMENT}\n{text}\n```" for text, _ in TRICKS.values()]
    legit = list(legitimate_replies().values())
    completions = write_lines(tmp_path / "c.jsonl", [{"name": "t", "completion": c} for c in tricks + legit])
    proc = run_cli(str(problems), str(completions), "--static-only")
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    for rec, (name, (_, category)) in zip(out, TRICKS.items()):
        assert rec["failed_step"] == "scan" and f"scan:{category}" in rec["fail_reasons"], (name, rec)
    for rec in out[len(tricks) :]:
        assert rec["format_ok"] and rec["hits"] == [] and rec["failed_step"] is None and rec["strict_pass"] is None, rec


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"name": "mathd_algebra_478"}, "c.jsonl:1: missing or non-string field 'completion'"),
        ({"completion": "x"}, "c.jsonl:1: missing or non-string field 'name'"),
        ({"name": "no_such_problem", "completion": "x"}, "c.jsonl:1: unknown problem name 'no_such_problem'"),
    ],
)
def test_bad_completions_fail_in_one_line(minif2f_file: Path, tmp_path: Path, record: dict, message: str) -> None:
    proc = run_cli(str(minif2f_file), str(write_lines(tmp_path / "c.jsonl", [record])), "--static-only")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"verify: {tmp_path}/{message}"]


def test_without_a_toolchain_it_says_what_to_run(minif2f_file: Path, tmp_path: Path) -> None:
    completions = write_lines(tmp_path / "c.jsonl", [{"name": "mathd_algebra_478", "completion": "x"}])
    proc = run_cli(str(minif2f_file), str(completions), "--setup", str(tmp_path / "setup.json"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"verify: {tmp_path}/setup.json: no Lean toolchain here; run `snakemake setup_lean` (a local rule: it needs the network) first"


def replay_verifier(tmp_path: Path) -> tuple[Verifier, dict[str, Any], str]:
    """A replay verifier for mathd_numbertheory_188 (recorded), its problem record and a proof reply."""
    hq, ha = recorded(MATHLIB, 0)
    q, a = recorded(MATHLIB, 1)
    factory, _ = replay_factory(tmp_path, [entry(hq["cmd"], None, ha), entry(q["cmd"], 0, a),
                                           entry("#print axioms mathd_numbertheory_188", 1, axioms_answer("mathd_numbertheory_188", ["propext"], 2))])  # fmt: skip
    problem = {"name": "mathd_numbertheory_188", "split": "test", "header": hq["cmd"], "formal_statement": q["cmd"][: q["cmd"].index(":= by") + 5]}
    v = Verifier(ReplPool(factory, 1), toolchain="replay", timeout_s=20, cache=ResultCache(None))
    return v, problem, f"```lean4\n{q['cmd']}\n```"


def test_check_reads_grpo_completion_logs(shared: Path, tmp_path: Path) -> None:
    v, problem, proof = replay_verifier(tmp_path)
    problems = write_lines(tmp_path / "p.jsonl", [problem])
    log = tmp_path / "completions.jsonl.gz"
    with gzip.open(log, "wt") as fh:  # what GRPO writes: task_id, completion, reward, tags, ...
        for text in (proof, proof.replace("norm_num", "sorry")):
            fh.write(json.dumps({"step": 1, "task_id": "mathd_numbertheory_188", "completion": text, "reward": 0.0}) + "\n")
    out = verify.check(problems, log, v)
    assert [r["strict_pass"] for r in out] == [True, False]
    assert verdict_rewards(out[0]) == {"fv_binary": 1.0, "fv_shaped": 1.0, "fv_exploit": 0.0}
    assert out[0]["axioms"]["axioms"] == ["propext"] and out[1]["categories"] == ["sorry"]


class FakeTokenizer:
    """Chat template = the user message itself."""

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool) -> str:
        """Join the message contents."""
        return "".join(m["content"] for m in messages)


class CannedGenerator:
    """Returns the given completions for every prompt (a stand-in for the model, not for Lean)."""

    def __init__(self, completions: list[str]) -> None:
        """``completions``: what each prompt gets."""
        self.tokenizer = FakeTokenizer()
        self.completions = completions

    def generate(self, prompts: Sequence[str], *, n: int = 1, **_: Any) -> list[list[str]]:
        """``n`` canned completions per prompt."""
        assert n == len(self.completions)
        return [list(self.completions) for _ in prompts]


def test_minif2f_benchmark_reports_unbiased_pass_at_k(shared: Path, tmp_path: Path) -> None:
    assert BENCHMARKS["minif2f"] == "minif2f"
    v, problem, proof = replay_verifier(tmp_path)
    data = write_lines(tmp_path / "minif2f.jsonl", [problem, {**problem, "name": "other", "split": "valid"}])
    gen = CannedGenerator([proof, proof.replace("norm_num", "sorry"), "no proof", proof])
    settings = {"n_samples": 4, "temperature": 1.0, "max_new_tokens": 64, "k": [1, 2, 8], "timeout_s": 20, "split": "test"}
    metrics, n, samples = minif2f.evaluate(gen, data, settings, seed=0, verifier=v)
    assert n == 1 and len(samples) == 4
    assert [s["passed"] for s in samples] == [True, False, False, True]
    assert [s["failed_step"] for s in samples] == [None, "scan", "format", None]
    assert metrics["pass@1"] == pytest.approx(0.5) and metrics["pass@2"] == pytest.approx(1 - 1 / 6)
    assert "pass@8" not in metrics and all(math.isnan(x) for x in metrics["pass@1_ci"])  # one problem: no spread
    assert minif2f.item_scores(samples, settings) == {"pass@1": [0.5], "pass@2": [pytest.approx(5 / 6)]}
    with pytest.raises(ValueError, match="no 'nope' problems"):
        minif2f.evaluate(gen, data, {**settings, "split": "nope"}, verifier=v)
