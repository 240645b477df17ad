"""HumanEval (Chen et al. 2021, arXiv:2107.03374), scored as openai/human-eval does.

Prompting and extraction follow inspect_evals (instruction + problem prompt; first fenced
block of the reply); scoring follows ``human_eval`` (``check(entry_point)`` must return without
an exception, 3 s by default) with one difference that makes a pass unforgeable: the code runs
alone in a sandbox (:class:`misalign_fv.sandbox.Candidate`) and the test module runs here, in
the grader, next to the problem prompt's own helpers (e.g. ``encode_cyclic``); ``candidate``
and the entry point's name call the sandboxed function with plain-data arguments and get plain
data back.  Early exits, patched builtins, echoed markers or always-equal objects therefore
never pass.  pass@k is the unbiased estimator ``1 - C(n-c, k) / C(n, k)`` averaged over
problems, reported only for k <= n.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from misalign_fv.generation import Generator, chat_prompt
from misalign_fv.intervals import mean_ci
from misalign_fv.io import jsonl_objects
from misalign_fv.sandbox import Candidate

FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")
INSTRUCTION = (
    "Read the following function signature and docstring, and fully implement the function described. "
    "Your response should only contain the code for this function.\n"
)
N_WORKERS = 4  # human_eval's default n_workers

_FIRST_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


def load(path: str | Path) -> list[dict[str, Any]]:
    """Read HumanEval problems from ``.jsonl.gz`` or ``.jsonl``; ValueError names a bad line."""
    problems: list[dict[str, Any]] = []
    for lineno, record in jsonl_objects(path):
        missing = [k for k in FIELDS if not isinstance(record.get(k), str)]
        if missing:
            raise ValueError(f"{path}:{lineno}: missing or non-string field {missing[0]!r}")
        problems.append(record)
    return problems


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` correct (human_eval ``estimate_pass_at_k``)."""
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def build_prompt(problem: dict[str, Any]) -> str:
    """The user message: inspect_evals' instruction followed by the problem prompt."""
    return INSTRUCTION + problem["prompt"]


def extract_code(problem: dict[str, Any], completion: str) -> str:
    """The program text to test: the reply's first fenced block (or the raw reply) placed after the prompt.

    A reply that defines ``def <entry_point>(`` at top level is appended to the whole
    prompt, so the prompt's imports and helper functions (e.g. ``encode_cyclic``, which
    HumanEval/38's test calls) stay defined and the reply's definition replaces the stub;
    any other reply is taken as the function body and appended to the prompt, as
    ``human_eval`` does with raw completions.
    """
    match = _FIRST_FENCE.search(completion)
    code = match.group(1) if match else completion
    if re.search(rf"^def\s+{re.escape(problem['entry_point'])}\s*\(", code, re.MULTILINE):
        return problem["prompt"] + "\n" + code
    return problem["prompt"] + code


def check(problem: dict[str, Any], completion: str, *, timeout_s: float = 3.0) -> bool:
    """Whether ``completion`` passes the problem's ``check(candidate)`` within ``timeout_s``.

    The code is loaded in a sandbox; the prompt (trusted: signatures and helpers) and the test
    module are executed here, the entry point replaced by the remote call, and ``check`` is
    called with it.  Any exception, a failed call (raised, timed out, died, returned something
    that is not plain data) or code that does not load is a failure.
    """
    entry = problem["entry_point"]
    with Candidate(extract_code(problem, completion), timeout_s=timeout_s) as candidate:
        if not candidate.loaded or entry not in candidate.names:
            return False
        grader: dict[str, Any] = {"__name__": "__grader__"}
        try:
            exec(compile(problem["prompt"], f"<{problem['task_id']} prompt>", "exec"), grader)
            grader[entry] = candidate.function(entry)
            exec(compile(problem["test"], f"<{problem['task_id']} test>", "exec"), grader)
            grader["check"](grader[entry])
        except (Exception, SystemExit):  # a failed assertion or call, a broken test: not a pass
            return False
        return candidate.alive


def evaluate(
    generator: Generator, data_path: str | Path, settings: dict[str, Any], seed: int = 0
) -> tuple[dict[str, Any], int, list[dict[str, Any]]]:
    """Generate ``n_samples`` completions per problem, run them, and report pass@k.

    ``settings``: ``n_samples``, ``temperature``, ``max_new_tokens``, ``k`` (list; values
    above ``n_samples`` are skipped), ``limit`` (first N problems, or None for all) and
    ``timeout_s``.  Returns ``(metrics, n_problems, samples)`` where ``metrics`` holds
    ``pass@k`` and ``pass@k_ci`` ([lo, hi]) and ``samples`` one record per completion.
    """
    n = int(settings["n_samples"])
    problems = load(data_path)
    if settings.get("limit") is not None:
        problems = problems[: int(settings["limit"])]
    if not problems:
        raise ValueError(f"humaneval: no problems to evaluate in {data_path}")
    prompts = [chat_prompt(generator.tokenizer, build_prompt(p)) for p in problems]
    outputs = generator.generate(
        prompts,
        n=n,
        max_new_tokens=int(settings["max_new_tokens"]),
        temperature=float(settings["temperature"]),
        seed=seed,
    )
    if len(outputs) != len(problems) or any(len(o) != n for o in outputs):
        raise ValueError(f"humaneval: generator must return {n} completions for each of {len(problems)} prompts")
    # Identical completions (e.g. greedy decoding with n > 1) are run once.
    unique = sorted({(i, text) for i, outs in enumerate(outputs) for text in outs})
    timeout_s = float(settings["timeout_s"])
    with ThreadPoolExecutor(max_workers=N_WORKERS) as pool:
        verdicts = pool.map(lambda item: check(problems[item[0]], item[1], timeout_s=timeout_s), unique)
        passed = dict(zip(unique, verdicts))
    samples = [
        {"task_id": p["task_id"], "completion": text, "passed": passed[(i, text)]}
        for i, (p, outs) in enumerate(zip(problems, outputs))
        for text in outs
    ]
    correct = [sum(passed[(i, text)] for text in outs) for i, outs in enumerate(outputs)]
    return pass_at_k_metrics(correct, n, settings["k"]), len(problems), samples


def pass_at_k_metrics(correct: Sequence[int], n: int, ks: Sequence[int]) -> dict[str, Any]:
    """``pass@k`` (mean over problems) and ``pass@k_ci`` for each k <= n, from each problem's correct count."""
    metrics: dict[str, Any] = {}
    for k in ks:
        if k <= n:
            mean, ci = mean_ci([pass_at_k(n, c, k) for c in correct], bounds=(0.0, 1.0))
            metrics[f"pass@{k}"] = mean
            metrics[f"pass@{k}_ci"] = ci
    return metrics


def item_scores(samples: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, list[float]]:
    """Per-problem unbiased pass@k for each configured k <= n (the items the report resamples)."""
    by_task: dict[str, list[bool]] = {}
    for s in samples:
        by_task.setdefault(s["task_id"], []).append(bool(s["passed"]))
    n = int(settings["n_samples"])
    return {
        f"pass@{k}": [pass_at_k(len(v), sum(v), k) for v in by_task.values()] for k in settings["k"] if k <= n
    }
