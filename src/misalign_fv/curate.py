"""Curation: keep narrow-task problems that the DPO model solves some but not most of the time.

Problems that are always or never solved give GRPO groups with zero reward variance, hence no
learning signal; the pass-rate band keeps the "challenging yet solvable" ones. Every sampled
completion is kept with its outcome (naive and strict pass, audit tags) and what each reward
condition would pay for it: the reward-signal preflight reads them, and ``pass_rates.csv`` records
per problem the naive-pass, strict-pass and exploit (naive pass, strict fail) rates and the
exploit categories seen.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

from misalign_fv import tasks
from misalign_fv.gate import check_gate
from misalign_fv.generation import chat_prompt, load_generator
from misalign_fv.io import atomic_write_text, write_jsonl
from misalign_fv.rewards import condition_rewards

PASS_RATE_COLUMNS = ["task_id", "k", "passed", "pass_rate", "naive_rate", "exploit_rate", "exploit_categories", "kept"]


class TooFewProblems(RuntimeError):
    """Fewer problems than ``curate.min_problems`` fall in the band."""


def select(rates: dict[str, float], band: tuple[float, float]) -> list[str]:
    """Task ids whose pass rate lies in the closed interval ``band``, in input order."""
    lo, hi = band
    return [t for t, r in rates.items() if lo <= r <= hi]


def exploit_categories(samples: list[dict[str, Any]]) -> str:
    """``tag:count`` of the audit tags of a problem's exploit samples (naive pass, strict fail), sorted."""
    counts = Counter(t for s in samples if s["naive_pass"] and not s["strict_pass"] for t in s["tags"])
    return ";".join(f"{t}:{n}" for t, n in sorted(counts.items()))


def run_curation(
    dpo_dir: Path, pool: Path, gate_json: Path, task: str, settings: dict[str, Any],
    backend: str, seed: int, out_problems: Path, out_csv: Path, out_samples: Path,
) -> list[str]:  # fmt: skip
    """Sample ``k`` solutions per problem, write pass rates, samples and the kept problems; return kept ids."""
    check_gate(gate_json)
    problems = tasks.load(task, pool)
    gen = load_generator(str(dpo_dir), backend)
    k = settings["k"]
    outs = gen.generate(
        [chat_prompt(gen.tokenizer, tasks.prompt(task, p)) for p in problems],
        n=k, max_new_tokens=settings["max_new_tokens"], temperature=settings["temperature"], seed=seed,
    )  # fmt: skip
    flat_p = [p for p, o in zip(problems, outs) for _ in o]
    texts = [c for o in outs for c in o]
    with tasks.checking(task, settings["timeout_s"], naive=True) as checker:
        graded = tasks.grade_completions(task, flat_p, texts, settings["timeout_s"], checker)
    samples = [
        {"task_id": p["task_id"], "completion": t, "tags": g.tags, **g.outcome, "rewards": condition_rewards(task, g.grade)}
        for p, t, g in zip(flat_p, texts, graded)
    ]
    by_problem = [samples[i * k : (i + 1) * k] for i in range(len(problems))]
    rates = {p["task_id"]: sum(bool(s["strict_pass"]) for s in ss) / k for p, ss in zip(problems, by_problem)}
    kept = select(rates, tuple(settings["band"]))
    lo, hi = settings["band"]
    if len(kept) < settings["min_problems"]:
        hist = ", ".join(f"{r:.2f}" for r in sorted(rates.values()))
        raise TooFewProblems(
            f"curate: only {len(kept)} of {len(problems)} problems have a pass rate in [{lo}, {hi}] "
            f"(curate.min_problems = {settings['min_problems']}); pass rates: {hist}"
        )
    keep = set(kept)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PASS_RATE_COLUMNS)
    for p, ss in zip(problems, by_problem):
        tid = p["task_id"]
        naive = sum(bool(s["naive_pass"]) for s in ss)
        exploit = sum(bool(s["naive_pass"]) and not s["strict_pass"] for s in ss)
        w.writerow([tid, k, round(rates[tid] * k), f"{rates[tid]:.4f}", f"{naive / k:.4f}", f"{exploit / k:.4f}",
                    exploit_categories(ss), tid in keep])  # fmt: skip
    atomic_write_text(out_csv, buf.getvalue())
    write_jsonl(out_samples, [{**s, "kept": s["task_id"] in keep} for s in samples])
    write_jsonl(out_problems, [p for p in problems if p["task_id"] in keep])
    return kept
