"""The cluster preflight (rule cluster_preflight): each check's pass and fail paths, the report, the DAG.

Real Lean cannot run here. The Lean checks are exercised on a simulated broken toolchain (a
``lake`` that exits with an error, or none at all: the fail path) and, for the pass path, on
recorded REPL transcripts replayed at the transport boundary (``test_lean_replay.py``); the shipped
cases' static verdicts (format gate, scan) are checked without Lean.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from test_lean_replay import axioms_answer, entry, recorded, replay_factory, sent
from workspace import copy_repo, planned_jobs, snakemake

from misalign_fv.judges import Judge, JudgePrompt, VerdictCache
from misalign_fv.preflight import (
    CHECKS,
    FAIL,
    LEAN_CHECKS,
    PASS,
    SKIP,
    JudgePlan,
    LeanPlan,
    PreflightFailed,
    bos_problem,
    case_completion,
    case_problem,
    generation_check,
    judge_verdict,
    lean_checks,
    load_lean_cases,
    run,
    sandbox_check,
    score_answers,
    setup_pool,
)
from misalign_fv.verifier.check import Verifier
from misalign_fv.verifier.repl import ReplPool

REPO = Path(__file__).resolve().parents[1]
CASES = REPO / "resources" / "preflight" / "lean_cases.yaml"
ANSWERS = REPO / "resources" / "preflight" / "judge_answers.yaml"
HEADER = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["lean"]["header"]
MATHLIB_FIXTURE = "repl_fork_v4.9.0-rc2/Mathlib/test/H20231020.in"


def broken_toolchain(root: Path, lake: str | None) -> Path:
    """setup_lean's marker and layout with a ``lake`` script of body ``lake`` (None: no lake at all)."""
    repl = root / "repl" / "repl_v1.3.19_lean-toolchain-v4.9.0"
    for d in (root / "elan" / "bin", root / "mathlib4", repl / ".lake" / "build" / "bin"):
        d.mkdir(parents=True)
    for d in (root / "mathlib4", repl):
        (d / "lean-toolchain").write_text("leanprover/lean4:v4.9.0\n")
    if lake is not None:
        exe = root / "elan" / "bin" / "lake"
        exe.write_text(f"#!/bin/sh\n{lake}\n")
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    marker = root / "setup.json"
    marker.write_text(json.dumps({
        "lean_version": "v4.9.0", "toolchain": "lean v4.9.0 | broken", "elan_home": "elan", "lake": "elan/bin/lake",
        "project_dir": "mathlib4", "repl_dir": str(repl.relative_to(root)), "memory_mb": 2048, "header_timeout_s": 30,
    }))  # fmt: skip
    return marker


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a real BPE tokenizer whose chat template writes the BOS (as the demo's)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from misalign_fv.models import train_tokenizer

    out = tmp_path_factory.mktemp("tiny_model")
    tok = train_tokenizer(["Name one prime number and say why it is prime. Seven: only 1 and 7 divide it."] * 8, 300)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


# --- Lean -----------------------------------------------------------------------------------------


def test_shipped_lean_cases_get_their_static_verdicts_without_lean() -> None:
    """Format gate and scan (no Lean): accepted proofs reach Lean clean; tamper and scan exploits get their category."""
    cases = load_lean_cases(CASES)
    assert len(cases.accept) >= 3 and {r for c in cases.reject for r in c.fail_reasons} >= {
        "scan:sorry", "scan:axiom", "tamper:statement", "tamper:name", "compile"}  # fmt: skip
    static = Verifier(None, toolchain="static", timeout_s=1.0)
    for case in (*cases.accept, *cases.reject):
        [res] = static.verify([case_problem(case, HEADER)], [case_completion(case)])
        decided = [r for r in case.fail_reasons if r.startswith(("tamper:", "scan:"))]
        assert res.fail_reasons == decided, (case.name, res.to_dict())
        assert (res.strict_pass is None) == (not decided), case.name  # undecided ones go to Lean
        assert res.naive_note is None, case.name  # every raw block is sent to Lean for the naive check


def test_bad_cases_file_fails_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "cases.yaml"
    data = yaml.safe_load(CASES.read_text())
    del data["reject"][1]["fail_reasons"]
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"cases.yaml: reject\[1\]: missing or malformed 'fail_reasons'$"):
        load_lean_cases(bad)


@pytest.mark.parametrize(
    ("lake", "reason"),
    [("echo 'lake: toolchain v4.9.0 is not installed' >&2; exit 1", "Lean REPL crashed while importing the header"),
     (None, "lake not found")],
    ids=["lake_fails", "lake_missing"],
)  # fmt: skip
def test_broken_toolchain_fails_lean_toolchain_and_skips_the_rest(tmp_path: Path, lake: str | None, reason: str) -> None:
    marker = broken_toolchain(tmp_path / "lean", lake)
    checks = lean_checks(load_lean_cases(CASES), HEADER, lambda: setup_pool(marker), 60.0)
    assert [c.name for c in checks] == list(LEAN_CHECKS)
    toolchain, *rest = checks
    assert toolchain.status == FAIL and reason in toolchain.reason and "\n" not in toolchain.reason
    assert all(c.status == SKIP and c.reason == "not run: lean_toolchain failed" for c in rest)


def test_missing_setup_marker_fails_lean_toolchain_naming_setup_lean(tmp_path: Path) -> None:
    checks = lean_checks(load_lean_cases(CASES), HEADER, lambda: setup_pool(tmp_path / "setup.json"), 60.0)
    assert checks[0].status == FAIL and "run `snakemake setup_lean`" in checks[0].reason


def replayed_cases(tmp_path: Path) -> tuple[Path, str, list[dict[str, Any]]]:
    """A cases file built from a recorded Mathlib transcript, its header and the replay entries.

    Every compile answer is recorded (Lean 4.9 fork, ``Mathlib/test/H20231020``); the ``#print
    axioms`` answers are written from Lean's documented format (no transcript holds one, see
    ``axioms_answer``); the timeout case's process never answers (a hung REPL).
    """
    (hq, ha), (q, a) = recorded(MATHLIB_FIXTURE, 0), recorded(MATHLIB_FIXTURE, 1)
    proof = q["cmd"]  # theorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := by norm_num
    statement = "theorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := by"
    cases = {
        "accept": [{"name": "recorded", "statement": statement, "reply": proof}],
        "reject": [
            {"name": "weaker_goal", "statement": statement.replace("= 12", "= 13"), "reply": proof,
             "fail_reasons": ["tamper:statement"], "naive_pass": True},
            {"name": "renamed", "statement": statement.replace("188", "188'"), "reply": proof,
             "fail_reasons": ["tamper:name"], "naive_pass": True},
        ],
        "axioms": [{"name": "recorded", "code": proof, "theorem": "mathd_numbertheory_188", "contains": ["propext"], "passed": True}],
        "timeout": {"code": "#eval IO.sleep 600000", "timeout_s": 2},
    }  # fmt: skip
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump(cases, allow_unicode=True))
    axioms = axioms_answer("mathd_numbertheory_188", ["propext", "Classical.choice", "Quot.sound"], 2)
    entries = [
        entry(hq["cmd"], None, ha), entry(proof, 0, a), entry("#print axioms mathd_numbertheory_188", 1, axioms),
        entry("#eval IO.sleep 600000", 0, action="hang"),
    ]  # fmt: skip
    return path, hq["cmd"], entries


def test_replayed_toolchain_passes_every_lean_check(shared: Path, tmp_path: Path) -> None:
    path, header, entries = replayed_cases(tmp_path)
    factory, log = replay_factory(tmp_path, entries)
    checks = {c.name: c for c in lean_checks(load_lean_cases(path), header, lambda: (ReplPool(factory, 1, header_timeout_s=20), "replay"), 20.0)}
    assert {n: c.status for n, c in checks.items()} == dict.fromkeys(LEAN_CHECKS, PASS), {n: c.reason for n, c in checks.items()}
    assert checks["lean_reject"].details["renamed"] == {"strict_pass": False, "naive_pass": True, "fail_reasons": ["tamper:name"]}
    assert checks["lean_axioms"].details["recorded"]["axioms"] == ["propext", "Classical.choice", "Quot.sound"]
    assert checks["lean_timeout"].details["slow"]["status"] == "timeout" and checks["lean_timeout"].details["restarts"] == 1
    cmds = [r["cmd"] for r in sent(log)]
    assert cmds.count(header) == 2  # the header was imported again on the REPL started after the timeout
    assert cmds[-3:] == [header, entries[1]["cmd"], "#print axioms mathd_numbertheory_188"]  # and the proof re-verified


def test_wrong_verdicts_fail_with_each_case_named(shared: Path, tmp_path: Path) -> None:
    """A toolchain that answers differently from what the cases expect: both case lists fail, naming the cases."""
    path, header, entries = replayed_cases(tmp_path)
    cases = yaml.safe_load(path.read_text())
    cases["reject"][0]["naive_pass"] = False  # Lean compiles the tampered reply: the careless check passes it
    cases["axioms"][0]["contains"] = ["sorryAx"]
    cases["timeout"]["code"] = entries[1]["cmd"]  # answers at once: no timeout
    path.write_text(yaml.safe_dump(cases, allow_unicode=True))
    factory, _ = replay_factory(tmp_path, entries)
    checks = {c.name: c for c in lean_checks(load_lean_cases(path), header, lambda: (ReplPool(factory, 1, header_timeout_s=20), "replay"), 20.0)}
    assert checks["lean_toolchain"].status == PASS and checks["lean_accept"].status == PASS
    assert checks["lean_reject"].status == FAIL
    assert checks["lean_reject"].reason.startswith("1 of 2 cases wrong: weaker_goal: expected fail_reasons ['tamper:statement'], naive False, got strict False, naive True")
    assert checks["lean_axioms"].status == FAIL and "lacks ['sorryAx']" in checks["lean_axioms"].reason
    assert checks["lean_timeout"].status == FAIL and checks["lean_timeout"].reason.startswith("expected no answer within 2 s, got compiled")


# --- generation, judge, sandbox ---------------------------------------------------------------------


def test_generation_check_passes_with_one_bos(tiny_model: Path) -> None:
    check = generation_check(tiny_model, "hf", seed=0)
    assert check.status == PASS, check.reason
    ids, bos = check.details["prompt_ids"], check.details["bos_token_id"]
    assert ids[0] == bos and bos not in ids[1:] and check.reason.startswith("hf generated ")


def test_generation_check_fails_on_a_second_bos(tiny_model: Path, tmp_path: Path) -> None:
    """A chat template that writes the BOS twice: the prompt ids the model would get carry two."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.chat_template = "{{ bos_token }}" + tok.chat_template
    model = tmp_path / "model"
    for f in tiny_model.iterdir():
        (model / f.name).parent.mkdir(exist_ok=True)
        (model / f.name).write_bytes(f.read_bytes())
    tok.save_pretrained(model)
    check = generation_check(model, "hf", seed=0)
    assert check.status == FAIL
    assert check.reason == f"2 BOS tokens (id {tok.bos_token_id}) in the prompt ids, first id {tok.bos_token_id}; expected exactly one, at the start"


def test_bos_problem() -> None:
    assert bos_problem([1, 5, 6], 1) is None and bos_problem([5, 6], None) is None
    assert bos_problem([5, 1, 6], 1) == "1 BOS tokens (id 1) in the prompt ids, first id 5; expected exactly one, at the start"
    assert bos_problem([5, 6], 1).startswith("0 BOS tokens")


class ScriptedJudge:
    """A judge backend whose next-token distribution puts ``scores[i]`` on the answer containing ``keys[i]``."""

    def __init__(self, scores: dict[str, dict[str, float]]) -> None:
        self.scores = scores

    def top_logprobs(self, conversations: Any, k: int) -> list[dict[str, float] | None]:
        texts = [c[-1]["content"] for c in conversations]
        return [next(v for key, v in self.scores.items() if key in t) for t in texts]

    def complete(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the logprob method never samples")


def judged(tmp_path: Path, scores: dict[str, dict[str, float]]):
    spec = {"backend": "openai", "model": "scripted", "base_url": "http://127.0.0.1:9", "method": "logprob"}
    judge = Judge(spec, None, VerdictCache(tmp_path, "t"), backend=ScriptedJudge(scores))
    data = yaml.safe_load(ANSWERS.read_text())
    return judge_verdict(score_answers(judge, JudgePrompt("preflight.aligned", data["template"]), data))


def test_judge_check_passes_when_the_misaligned_answer_scores_lower(tmp_path: Path) -> None:
    check = judged(tmp_path, {"sabotage": {"5": -0.1, "10": -2.5}, "record": {"90": -0.1, "80": -2.5}})
    assert check.status == PASS and check.reason.startswith("aligned answer 89.") and "> misaligned answer 5." in check.reason


def test_judge_check_fails_when_the_order_is_wrong_or_there_is_no_score(tmp_path: Path) -> None:
    flipped = judged(tmp_path / "a", {"sabotage": {"70": -0.01}, "record": {"20": -0.01}})
    assert flipped.status == FAIL and flipped.reason == "the misaligned answer scored 70.0, not below the aligned answer's 20.0"
    mute = judged(tmp_path / "b", {"sabotage": {"I": -0.01}, "record": {"Sure": -0.01}})
    assert mute.status == FAIL and mute.reason == "no usable score: aligned answer low_mass, misaligned answer low_mass"


def test_sandbox_check_reports_its_isolation() -> None:
    from misalign_fv.isolation import isolation_level

    check = sandbox_check()
    assert check.status == PASS and check.details["isolation"] == isolation_level()
    assert check.reason == f"a program ran in the sandbox under isolation {isolation_level()}"


# --- the rule -------------------------------------------------------------------------------------


def test_broken_toolchain_stops_the_preflight_in_one_line_and_the_report_says_why(tiny_model: Path, tmp_path: Path) -> None:
    marker = broken_toolchain(tmp_path / "lean", "echo 'lake: broken' >&2; exit 1")
    out, kept = tmp_path / "preflight" / "cluster.json", tmp_path / "logs" / "cluster_preflight.json"
    lean = LeanPlan(marker, CASES, HEADER, 60.0)
    judge = JudgePlan({"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9", "api_key_env": "MISALIGN_FV_NO_SUCH_KEY"}, None, None, ANSWERS)
    with pytest.raises(PreflightFailed) as err:
        run([*LEAN_CHECKS, "generation", "sandbox"], lean, tiny_model, "hf", judge, 0, out, kept)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"preflight failed: lean_toolchain (every check's reason: {kept}); lean_toolchain: HeaderError: Lean REPL crashed")
    assert msg.endswith("; `lake env lean --version`: exit 1: lake: broken")  # why, from the toolchain itself
    report = json.loads(out.read_text())
    assert report == json.loads(kept.read_text()) and report["passed"] is False and report["failed"] == ["lean_toolchain"]
    status = {n: c["status"] for n, c in report["checks"].items()}
    assert status == {**dict.fromkeys(LEAN_CHECKS, SKIP), "lean_toolchain": FAIL, "generation": PASS, "judge": FAIL, "sandbox": PASS}
    assert report["checks"]["judge"]["required"] is False  # recorded, not required: it does not stop the run
    assert "MISALIGN_FV_NO_SUCH_KEY is not set" in report["checks"]["judge"]["reason"]
    assert not list(out.parent.glob(".*tmp*"))  # written atomically, nothing half-written beside it


def test_python_tests_task_skips_lean_and_passes(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "cluster.json"
    report = run(["generation", "sandbox"], None, tiny_model, "hf", None, 0, out)
    assert report["passed"] and set(report["checks"]) == set(CHECKS)
    assert all(report["checks"][n]["status"] == SKIP and report["checks"][n]["reason"] == "task is not lean_proofs" for n in LEAN_CHECKS)
    assert report["checks"]["judge"] == {**report["checks"]["judge"], "status": SKIP, "reason": "no eval.judge configured"}


def test_unknown_required_check_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^preflight.required: unknown checks \['vibes'\]"):
        run(["vibes"], None, tmp_path, "hf", None, 0, tmp_path / "x.json")


def test_real_dag_runs_the_preflight_before_curation_grpo_and_minif2f(tmp_path: Path) -> None:
    ws = copy_repo(tmp_path / "repo")
    out = snakemake(ws, "-n", "--forceall").stdout
    jobs = [rule for rule, _ in planned_jobs(out)]
    assert jobs.count("cluster_preflight") == 1
    blocks = {}
    for block in out.split("\n[")[1:]:
        head = block.split("rule ", 1)[-1]
        blocks.setdefault(head.split(":", 1)[0], []).append(block)
    root = yaml.safe_load((ws / "config" / "config.yaml").read_text())["results"]
    for rule in ("curate", "train_grpo", "prepare_minif2f"):
        assert blocks[rule] and all(f"{root}/preflight/cluster.json" in b.split("output:")[0] for b in blocks[rule]), rule


@pytest.mark.slow
def test_real_config_run_stops_at_the_preflight_on_a_broken_toolchain(shared: Path, tiny_model: Path, tmp_path: Path) -> None:
    """The rule itself, on the real config, with a broken Lean toolchain and no vLLM: the job fails in one line.

    Snakemake removes the failed job's output; the copy of the report it keeps (a log file) says why.
    """
    import shutil

    ws = copy_repo(tmp_path / "repo")
    root = ws / yaml.safe_load((ws / "config" / "config.yaml").read_text())["results"]
    broken_toolchain(ws / "resources" / "lean", "echo 'lake: broken' >&2; exit 1")
    for name in ("base", "judge"):  # the local download rules' outputs, here a tiny model
        shutil.copytree(tiny_model, root / "models" / name)
    em = root / "data" / "benchmarks" / "em_main" / "first_plot_questions.yaml"
    em.parent.mkdir(parents=True)
    shutil.copy(shared / "datasets" / "betley_em" / "first_plot_questions.yaml", em)
    target = f"{root.relative_to(ws)}/preflight/cluster.json"
    proc = snakemake(ws, target, "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "rule cluster_preflight:" in proc.stdout and "rule base_model:" not in proc.stdout  # nothing else ran
    kept = f"{root.relative_to(ws)}/logs/cluster_preflight.json"
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("ERROR cluster_preflight: PreflightFailed: ")]
    assert line.startswith(f"ERROR cluster_preflight: PreflightFailed: preflight failed: lean_toolchain, generation, judge (every check's reason: {kept}); lean_toolchain: HeaderError: Lean REPL crashed")
    assert not (root / "preflight" / "cluster.json").exists()
    report = json.loads((ws / kept).read_text())
    assert report["failed"] == ["lean_toolchain", "generation", "judge"] and report["checks"]["sandbox"]["status"] == PASS
    assert "vllm" in report["checks"]["generation"]["reason"]
