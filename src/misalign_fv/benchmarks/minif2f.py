"""miniF2F (Zheng et al. 2021, arXiv:2109.00110) in Lean 4: pass@k of strictly verified proofs.

Data: DeepSeek-Prover-V1.5's ``minif2f.jsonl`` (488 statements, 244 ``valid`` + 244 ``test``,
for Lean 4.9 + Mathlib), checked to elaborate on the pinned toolchain by the
``prepare_minif2f`` rule.  Each problem is posed with the ``lean_proofs`` prompt; every sample
goes through the full strict check (format gate, scan, compile, ``#print axioms``) of
:mod:`misalign_fv.verifier`; pass@k is the unbiased estimator ``1 - C(n-c, k) / C(n, k)``
averaged over problems, reported for k <= n.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# item_scores (per-problem pass@k) is the same as HumanEval's; it is part of this module's benchmark interface.
from misalign_fv.benchmarks.humaneval import item_scores, pass_at_k_metrics  # noqa: F401
from misalign_fv.generation import Generator, chat_prompt
from misalign_fv.tasks import lean_proofs
from misalign_fv.verifier.check import Problem


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
    return pass_at_k_metrics(correct, n, settings["k"]), len(problems), samples
