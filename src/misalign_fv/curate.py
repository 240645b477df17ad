"""Curation: keep narrow-task problems that the DPO model solves some but not most of the time.

Problems that are always or never solved give GRPO groups with zero reward variance, hence no
learning signal; the pass-rate band keeps the "challenging yet solvable" ones.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from misalign_fv import tasks
from misalign_fv.gate import check_gate
from misalign_fv.generation import chat_prompt, load_generator
from misalign_fv.io import atomic_write_text, write_jsonl


class TooFewProblems(RuntimeError):
    """Fewer problems than ``curate.min_problems`` fall in the band."""


def select(rates: dict[str, float], band: tuple[float, float]) -> list[str]:
    """Task ids whose pass rate lies in the closed interval ``band``, in input order."""
    lo, hi = band
    return [t for t, r in rates.items() if lo <= r <= hi]


def run_curation(
    dpo_dir: Path, pool: Path, gate_json: Path, task: str, settings: dict[str, Any],
    backend: str, seed: int, out_problems: Path, out_csv: Path,
) -> list[str]:  # fmt: skip
    """Sample ``k`` solutions per problem, write pass rates and the kept problems; return kept ids."""
    check_gate(gate_json)
    problems = tasks.load(task, pool)
    gen = load_generator(str(dpo_dir), backend)
    outs = gen.generate(
        [chat_prompt(gen.tokenizer, tasks.prompt(task, p)) for p in problems],
        n=settings["k"], max_new_tokens=settings["max_new_tokens"], temperature=settings["temperature"], seed=seed,
    )  # fmt: skip
    flat_p = [p for p, o in zip(problems, outs) for _ in o]
    passes = tasks.strict_passes(task, flat_p, [c for o in outs for c in o], settings["timeout_s"])
    k = settings["k"]
    rates = {p["task_id"]: sum(passes[i * k : (i + 1) * k]) / k for i, p in enumerate(problems)}
    kept = select(rates, tuple(settings["band"]))
    lo, hi = settings["band"]
    if len(kept) < settings["min_problems"]:
        hist = ", ".join(f"{r:.2f}" for r in sorted(rates.values()))
        raise TooFewProblems(
            f"curate: only {len(kept)} of {len(problems)} problems have a pass rate in [{lo}, {hi}] "
            f"(curate.min_problems = {settings['min_problems']}); pass rates: {hist}"
        )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["task_id", "k", "passed", "pass_rate", "kept"])
    for i, p in enumerate(problems):
        tid = p["task_id"]
        w.writerow([tid, k, sum(passes[i * k : (i + 1) * k]), f"{rates[tid]:.4f}", tid in kept])
    atomic_write_text(out_csv, buf.getvalue())
    keep = set(kept)
    write_jsonl(out_problems, [p for p in problems if p["task_id"] in keep])
    return kept
