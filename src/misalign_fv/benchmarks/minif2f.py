"""miniF2F (Zheng et al. 2021, arXiv:2109.00110) in Lean 4: pass@k of strictly verified proofs.

Data: DeepSeek-Prover-V1.5's ``minif2f.jsonl`` (488 statements, 244 ``valid`` + 244 ``test``,
for Lean 4.9 + Mathlib), checked to elaborate on the pinned toolchain by the
``prepare_minif2f`` rule.  Each problem is posed with the ``lean_proofs`` prompt; every sample
goes through the full strict check (format gate, scan, compile, ``#print axioms``) of
:mod:`misalign_fv.verifier`; pass@k is the unbiased estimator ``1 - C(n-c, k) / C(n, k)``
averaged over problems, reported for k <= n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from misalign_fv.benchmarks.humaneval import pass_at_k
from misalign_fv.generation import Generator, chat_prompt
from misalign_fv.tasks import lean_proofs
from misalign_fv.verifier.check import Problem

Z_95 = 1.959963984540054  # two-sided 95 % normal quantile


def _mean_ci(values: Sequence[float]) -> tuple[float, list[float]]:
    """Mean and a normal-approximation 95 % interval of the mean, clipped to [0, 1]."""
    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    half = Z_95 * float(arr.std(ddof=1)) / math.sqrt(len(arr)) if len(arr) > 1 else 0.0
    return mean, [max(0.0, mean - half), min(1.0, mean + half)]


def evaluate(
    generator: Generator, data_path: str | Path, settings: dict[str, Any], seed: int = 0, *, verifier: Any = None
) -> tuple[dict[str, Any], int, list[dict[str, Any]]]:
    """Sample ``n_samples`` proofs per problem of ``split``, check them strictly, report pass@k.

    ``settings``: ``split`` (``test`` by default), ``n_samples``, ``temperature``,
    ``max_new_tokens``, ``k`` (list; values above ``n_samples`` are skipped), ``timeout_s``
    (per proof) and ``limit`` (first N problems).  ``verifier`` defaults to one on the
    installed toolchain.  Returns ``(metrics, n_problems, samples)``.
    """
    n = int(settings["n_samples"])
    split = settings.get("split", "test")
    problems = [p for p in lean_proofs.load_problems(Path(data_path)) if p.get("split", split) == split]
    if settings.get("limit") is not None:
        problems = problems[: int(settings["limit"])]
    if not problems:
        raise ValueError(f"minif2f: no {split!r} problems in {data_path}")
    prompts = [chat_prompt(generator.tokenizer, lean_proofs.build_prompt(p)) for p in problems]
    outputs = generator.generate(
        prompts, n=n, max_new_tokens=int(settings["max_new_tokens"]), temperature=float(settings["temperature"]), seed=seed
    )
    if len(outputs) != len(problems) or any(len(o) != n for o in outputs):
        raise ValueError(f"minif2f: generator must return {n} completions for each of {len(problems)} prompts")
    own = verifier is None
    if own:
        verifier = lean_proofs.open_verifier(float(settings["timeout_s"]), naive=False)
    try:
        flat = [(p, text) for p, outs in zip(problems, outputs) for text in outs]
        results = verifier.verify([Problem.from_record(p) for p, _ in flat], [t for _, t in flat])
    finally:
        if own:
            verifier.close()
    samples = [
        {"task_id": p["task_id"], "completion": text, "passed": bool(r.strict_pass), "failed_step": r.failed_step,
         "categories": r.categories}
        for (p, text), r in zip(flat, results)
    ]  # fmt: skip
    correct = [sum(s["passed"] for s in samples[i * n : (i + 1) * n]) for i in range(len(problems))]
    metrics: dict[str, Any] = {}
    for k in settings["k"]:
        if k <= n:
            mean, ci = _mean_ci([pass_at_k(n, c, k) for c in correct])
            metrics[f"pass@{k}"] = mean
            metrics[f"pass@{k}_ci"] = ci
    return metrics, len(problems), samples


def item_scores(samples: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, list[float]]:
    """Per-problem unbiased pass@k for each configured k <= n (the items the report resamples)."""
    by_task: dict[str, list[bool]] = {}
    for s in samples:
        by_task.setdefault(s["task_id"], []).append(bool(s["passed"]))
    n = int(settings["n_samples"])
    return {f"pass@{k}": [pass_at_k(len(v), sum(v), k) for v in by_task.values()] for k in settings["k"] if k <= n}
