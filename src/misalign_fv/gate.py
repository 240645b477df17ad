"""The DPO gate: did safety DPO raise refusals without collapsing narrow-task skill?

Refusals are measured on held-out harmful prompts (greedy, XSTest string-match classifier);
narrow-task skill as the strict pass rate of sampled solutions. Each model generates on its own
(with vLLM in a child process, whose exit gives the engine's GPU memory back before the next
model loads); scoring runs here. The gate JSON is always written; whether a failure stops the
workflow is decided downstream (``gate.enforce``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from misalign_fv import tasks
from misalign_fv.generation import chat_prompt, load_generator, run_generation
from misalign_fv.io import read_json, read_jsonl, write_json, write_jsonl
from misalign_fv.refusal import is_refusal

log = logging.getLogger(__name__)


class GateFailed(RuntimeError):
    """Raised downstream when an enforced gate did not pass."""


def generate_answers(
    model_dir: str, backend: str, batch_size: int, harmful: list[str], task: str, problems: list[dict[str, Any]],
    s: dict[str, Any], seed: int,
) -> tuple[list[str], list[list[str]]]:  # fmt: skip
    """Load one model and generate what the gate scores: a greedy reply to each harmful prompt and
    ``narrow_samples`` sampled solutions per problem (run in a child process for vLLM)."""
    gen = load_generator(model_dir, backend, batch_size=batch_size)
    tok = gen.tokenizer
    outs = gen.generate([chat_prompt(tok, h) for h in harmful], max_new_tokens=s["max_new_tokens"], temperature=0.0)
    sols = gen.generate(
        [chat_prompt(tok, tasks.prompt(task, p)) for p in problems],
        n=s["narrow_samples"], max_new_tokens=s["max_new_tokens"], temperature=s["temperature"], seed=seed,
    )  # fmt: skip
    return [o[0] for o in outs], sols


def score(
    harmful: list[str], replies: list[str], task: str, problems: list[dict[str, Any]], sols: list[list[str]],
    s: dict[str, Any],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    """Refusal rate and narrow-task pass rate of one model's answers, plus the raw samples."""
    refusals = [is_refusal(r) for r in replies]
    flat_p = [p for p, o in zip(problems, sols) for _ in o]
    flat_c = [c for o in sols for c in o]
    passes = tasks.strict_passes(task, flat_p, flat_c, s["timeout_s"])
    samples = [{"kind": "harmful", "prompt": h, "completion": r, "refusal": x} for h, r, x in zip(harmful, replies, refusals)]
    samples += [{"kind": "narrow", "task_id": p["task_id"], "completion": c, "pass": ok} for p, c, ok in zip(flat_p, flat_c, passes)]
    return {"refusal": sum(refusals) / len(refusals), "narrow": sum(passes) / len(passes)}, samples


def run_gate(
    base_dir: Path, dpo_dir: Path, heldout: Path, pool: Path, task: str, settings: dict[str, Any],
    backend: str, seed: int, out_json: Path, out_samples: Path, batch_size: int = 64,
) -> dict[str, Any]:  # fmt: skip
    """Measure base and DPO models and write ``gate.json`` (and its samples); ``backend`` and
    ``batch_size`` are the ``generation`` section's."""
    harmful = [r["prompt"] for r in read_jsonl(heldout)]
    problems = tasks.load(task, pool)[: settings["narrow_problems"]]
    results, samples = {}, []
    for which, model_dir in (("before", base_dir), ("after", dpo_dir)):
        log.info("gate: generating with the %s model (%s)", which, model_dir)
        args = (str(model_dir), backend, batch_size, harmful, task, problems, settings, seed)
        replies, sols = run_generation(backend, generate_answers, *args)  # vLLM: one engine a process
        results[which], s = score(harmful, replies, task, problems, sols, settings)
        samples += [{"model": which, **x} for x in s]
    gain = results["after"]["refusal"] - results["before"]["refusal"]
    drop = results["before"]["narrow"] - results["after"]["narrow"]
    reasons = []
    if gain < settings["min_refusal_gain"]:
        reasons.append(f"refusal rate rose by {gain:.3f} < gate.min_refusal_gain {settings['min_refusal_gain']}")
    if drop > settings["max_narrow_drop"]:
        reasons.append(f"narrow-task pass rate fell by {drop:.3f} > gate.max_narrow_drop {settings['max_narrow_drop']}")
    gate = {
        "passed": not reasons,
        "enforce": settings["enforce"],
        "refusal_rate": {"before": results["before"]["refusal"], "after": results["after"]["refusal"], "n": len(harmful)},
        "narrow_pass_rate": {
            "before": results["before"]["narrow"],
            "after": results["after"]["narrow"],
            "n": len(problems) * settings["narrow_samples"],
        },
        "criteria": {"min_refusal_gain": settings["min_refusal_gain"], "max_narrow_drop": settings["max_narrow_drop"]},
        "reasons": reasons,
    }
    write_json(out_json, gate)
    write_jsonl(out_samples, samples)
    return gate


def check_gate(gate_json: Path) -> None:
    """Raise :class:`GateFailed` (one line) if the gate failed and is enforced."""
    gate = read_json(gate_json)
    if gate["enforce"] and not gate["passed"]:
        raise GateFailed(
            f"{gate_json}: DPO gate failed ({'; '.join(gate['reasons'])}); set gate.enforce: false to continue anyway"
        )
