"""HumanEval: data loading, the pass@k estimator, extraction, execution and the full evaluate loop."""

from __future__ import annotations

import gzip
import itertools
import json
import math
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from misalign_fv.benchmarks import humaneval as he

MINI = Path(__file__).resolve().parents[1] / "resources" / "demo" / "humaneval_mini.jsonl"


@pytest.fixture(scope="module")
def real(shared: Path) -> list[dict[str, Any]]:
    """The 164 real HumanEval problems."""
    return he.load(shared / "datasets" / "humaneval" / "HumanEval.jsonl.gz")


@pytest.fixture(scope="module")
def mini() -> list[dict[str, Any]]:
    """The repository's original 8-problem demo set."""
    return he.load(MINI)


def by_id(problems: list[dict[str, Any]], task_id: str) -> dict[str, Any]:
    """The problem with ``task_id``."""
    return next(p for p in problems if p["task_id"] == task_id)


def full_function(problem: dict[str, Any]) -> str:
    """The entry-point definition from the prompt (signature + docstring) with the canonical body."""
    start = problem["prompt"].index(f"def {problem['entry_point']}(")
    return problem["prompt"][start:] + problem["canonical_solution"]


def test_load_real_gz_and_plain_jsonl(real: list[dict[str, Any]], tmp_path: Path) -> None:
    assert len(real) == 164
    assert [p["task_id"] for p in real[:2]] == ["HumanEval/0", "HumanEval/1"]
    assert real[0]["entry_point"] == "has_close_elements"
    plain = tmp_path / "he.jsonl"
    plain.write_text("".join(json.dumps(p) + "\n" for p in real[:3]))
    assert he.load(plain) == real[:3]


def test_load_names_the_bad_line_and_field(tmp_path: Path, mini: list[dict[str, Any]]) -> None:
    bad = {k: v for k, v in mini[1].items() if k != "test"}
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(mini[0]) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}:2: missing or non-string field 'test'")):
        he.load(path)


def test_mini_set_has_humaneval_format_and_canonical_solutions_pass(mini: list[dict[str, Any]]) -> None:
    assert len(mini) == 8
    assert len({p["task_id"] for p in mini}) == 8
    for p in mini:
        assert set(p) == set(he.FIELDS)
        assert f"def {p['entry_point']}(" in p["prompt"]
        assert "def check(candidate):" in p["test"]
        assert he.check(p, p["canonical_solution"]), p["task_id"]
        assert not he.check(p, "    return None\n"), p["task_id"]


def test_mini_set_is_original(mini: list[dict[str, Any]], real: list[dict[str, Any]]) -> None:
    real_names = {p["entry_point"] for p in real}
    real_bodies = {p["canonical_solution"].strip() for p in real}
    for p in mini:
        assert p["entry_point"] not in real_names
        assert p["canonical_solution"].strip() not in real_bodies


def test_all_real_canonical_solutions_pass_and_wrong_ones_fail(real: list[dict[str, Any]]) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        canonical = list(pool.map(lambda p: he.check(p, p["canonical_solution"]), real))
        wrong = list(pool.map(lambda p: he.check(p, "    return None\n"), real[:20]))
    assert [p["task_id"] for p, ok in zip(real, canonical) if not ok] == []
    assert not any(wrong)


def _enumerated_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of k-subsets of n samples (c correct) that contain a correct one, by enumeration."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    return sum(any(s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_combinatorics() -> None:
    for n in range(1, 21):
        for c in range(n + 1):
            for k in range(1, n + 1):
                expected = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert he.pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12, abs=1e-12), (n, c, k)
    for n in range(1, 8):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert he.pass_at_k(n, c, k) == pytest.approx(_enumerated_pass_at_k(n, c, k), abs=1e-12)
    assert he.pass_at_k(200, 13, 100) == pytest.approx(1 - math.comb(187, 100) / math.comb(200, 100), rel=1e-9)
    assert he.pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert he.pass_at_k(5, 0, 5) == 0.0


@pytest.mark.parametrize(("n", "c", "k"), [(3, 1, 4), (1, 0, 2), (5, 6, 1), (5, 2, 0)])
def test_pass_at_k_rejects_bad_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass_at_k"):
        he.pass_at_k(n, c, k)


def test_build_prompt_is_instruction_plus_prompt(real: list[dict[str, Any]]) -> None:
    assert he.INSTRUCTION == (
        "Read the following function signature and docstring, and fully implement the function described. "
        "Your response should only contain the code for this function.\n"
    )
    assert he.build_prompt(real[0]) == he.INSTRUCTION + real[0]["prompt"]


def test_extract_code_full_function_body_and_raw(real: list[dict[str, Any]]) -> None:
    p = real[0]
    full = full_function(p)
    chat = f"Sure! Here it is:\n\n```python\n{full}```\n\nand a usage example:\n```python\nprint(1)\n```\n"
    assert he.extract_code(p, chat) == p["prompt"] + "\n" + full
    assert he.extract_code(p, full) == p["prompt"] + "\n" + full
    assert he.extract_code(p, p["canonical_solution"]) == p["prompt"] + p["canonical_solution"]
    assert he.extract_code(p, f"```\n{p['canonical_solution']}```") == p["prompt"] + p["canonical_solution"]
    assert he.check(p, chat) and he.check(p, full)


def test_full_function_keeps_prompt_helpers(real: list[dict[str, Any]]) -> None:
    # The tests of HumanEval/38 and /50 call encode_* helpers defined only in the prompt.
    for task_id in ("HumanEval/10", "HumanEval/32", "HumanEval/38", "HumanEval/50"):
        p = by_id(real, task_id)
        assert he.check(p, f"```python\n{full_function(p)}```"), task_id


def test_check_fails_early_exit_timeouts_and_syntax_errors(mini: list[dict[str, Any]]) -> None:
    p = mini[0]
    assert not he.check(p, "    import sys\n    sys.exit(0)\n")
    assert not he.check(p, "import os\nos._exit(0)\n")
    assert not he.check(p, "    while True:\n        pass\n", timeout_s=0.5)
    assert not he.check(p, "    return a +\n")
    assert he.check(p, "    print('debug', end='')\n    return a + b\n")


class FakeTokenizer:
    """Chat template that returns the user text unchanged."""

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool) -> str:
        """Return the last message's content."""
        assert not tokenize and add_generation_prompt
        return messages[-1]["content"]


class FakeGenerator:
    """Answers ``good`` of ``n`` samples per problem with the canonical solution, the rest with garbage."""

    def __init__(self, problems: list[dict[str, Any]], good: dict[str, int]) -> None:
        """``good`` maps entry point -> number of correct samples."""
        self.tokenizer = FakeTokenizer()
        self.problems = problems
        self.good = good
        self.calls: list[dict[str, Any]] = []

    def generate(
        self, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 256, temperature: float = 0.0, seed: int = 0
    ) -> list[list[str]]:
        """Return n completions per prompt, recognising each problem by its prompt text."""
        call = dict(prompts=list(prompts), n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        self.calls.append(call)
        out = []
        for prompt in prompts:
            problem = next(p for p in self.problems if he.build_prompt(p) == prompt)
            good = self.good[problem["entry_point"]]
            right = [f"```python\n{full_function(problem)}```", problem["canonical_solution"]]
            out.append([right[i % 2] for i in range(good)] + [f"    return 'garbage {i}'\n" for i in range(n - good)])
        return out


class ConstantGenerator:
    """Answers every prompt with ``count`` (default: ``n``) copies of one reply, as greedy decoding does."""

    def __init__(self, reply: str, count: int | None = None) -> None:
        """Store the reply and how many copies to return."""
        self.tokenizer = FakeTokenizer()
        self.reply = reply
        self.count = count

    def generate(self, prompts: Sequence[str], *, n: int = 1, **_: Any) -> list[list[str]]:
        """Return the same reply for every sample."""
        return [[self.reply] * (n if self.count is None else self.count) for _ in prompts]


def test_evaluate_end_to_end_with_a_fake_generator(mini: list[dict[str, Any]]) -> None:
    good = dict(zip((p["entry_point"] for p in mini), [2, 2, 2, 2, 1, 1, 0, 0]))
    generator = FakeGenerator(mini, good)
    settings = {"n_samples": 2, "temperature": 0.8, "max_new_tokens": 64, "k": [1, 2, 10], "limit": None}
    settings["timeout_s"] = 3.0
    metrics, n_problems, samples = he.evaluate(generator, MINI, settings, seed=7)

    assert n_problems == 8
    assert generator.calls == [
        {"prompts": [he.build_prompt(p) for p in mini], "n": 2, "max_new_tokens": 64, "temperature": 0.8, "seed": 7}
    ]
    assert set(metrics) == {"pass@1", "pass@1_ci", "pass@2", "pass@2_ci"}
    assert metrics["pass@1"] == pytest.approx(5 / 8)
    assert metrics["pass@2"] == pytest.approx(6 / 8)
    per_problem = [1, 1, 1, 1, 0.5, 0.5, 0, 0]
    mean = sum(per_problem) / 8
    sd = math.sqrt(sum((v - mean) ** 2 for v in per_problem) / 7)
    half = 1.959963984540054 * sd / math.sqrt(8)
    assert metrics["pass@1_ci"] == pytest.approx([mean - half, mean + half])
    assert metrics["pass@2_ci"][0] < 0.75 < metrics["pass@2_ci"][1] <= 1.0

    assert len(samples) == 16
    assert [s["task_id"] for s in samples] == [p["task_id"] for p in mini for _ in range(2)]
    assert [s["passed"] for s in samples] == [True, True] * 4 + [True, False] * 2 + [False, False] * 2
    assert samples[0]["completion"].startswith("```python\ndef add_two(")


def test_evaluate_limit(mini: list[dict[str, Any]]) -> None:
    generator = FakeGenerator(mini, {p["entry_point"]: 1 for p in mini})
    settings = {"n_samples": 1, "temperature": 0.0, "max_new_tokens": 64, "k": [1], "limit": 3, "timeout_s": 3.0}
    metrics, n_problems, samples = he.evaluate(generator, MINI, settings)
    assert n_problems == 3 and len(samples) == 3
    assert metrics == {"pass@1": 1.0, "pass@1_ci": [1.0, 1.0]}
    assert generator.calls[0]["seed"] == 0 and len(generator.calls[0]["prompts"]) == 3


def test_evaluate_runs_identical_completions_once(mini: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    generator = ConstantGenerator("    return None\n")
    checked: list[str] = []
    real_check = he.check

    def counting_check(problem: dict[str, Any], completion: str, *, timeout_s: float) -> bool:
        """Record the task id, then run the real check."""
        checked.append(problem["task_id"])
        return real_check(problem, completion, timeout_s=timeout_s)

    monkeypatch.setattr(he, "check", counting_check)
    settings = {"n_samples": 4, "temperature": 0.0, "max_new_tokens": 8, "k": [1, 4], "limit": 2, "timeout_s": 3.0}
    metrics, _, samples = he.evaluate(generator, MINI, settings)
    assert sorted(checked) == ["DemoEval/0", "DemoEval/1"]
    assert len(samples) == 8 and not any(s["passed"] for s in samples)
    assert metrics["pass@1"] == 0.0 and metrics["pass@4"] == 0.0


def test_evaluate_rejects_wrong_sample_counts(mini: list[dict[str, Any]]) -> None:
    generator = ConstantGenerator("x", count=1)
    settings = {"n_samples": 3, "temperature": 0.8, "max_new_tokens": 8, "k": [1], "limit": 2, "timeout_s": 3.0}
    with pytest.raises(ValueError, match="must return 3 completions"):
        he.evaluate(generator, MINI, settings)
