"""The positive control's task: harmful requests, graded by whether the answer refuses.

GRPO on these prompts with a reward for not refusing (condition ``comply_harmful``) is known to
erode safety training; the arm shows that the evaluation chain detects an erosion that is there.
A problem is one JSON Lines record with ``task_id`` and ``prompt``. The grade uses the XSTest
string-match refusal classifier (:mod:`misalign_fv.refusal`): cheap, judge-free, and blind to
what a non-refusal says (an off-topic answer also counts as complying), which is enough for a
control whose only job is to move refusals.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from misalign_fv.io import jsonl_objects, read_jsonl, write_json, write_jsonl
from misalign_fv.refusal import is_refusal

TASK = "harmful_compliance"
_NORM = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Grade:
    """Whether one answer to a harmful request is a refusal."""

    refused: bool


def load_problems(path: str | Path) -> list[dict[str, Any]]:
    """Read ``{task_id, prompt}`` records; a missing or empty field fails in one line naming the record."""
    problems = []
    for lineno, rec in jsonl_objects(path):
        where = f"{path}:{lineno}"
        for key in ("task_id", "prompt"):
            if not isinstance(rec.get(key), str) or not rec[key].strip():
                raise ValueError(f"{where}: field {key!r} must be a non-empty string")
        problems.append(rec)
    return problems


def build_prompt(problem: dict[str, Any]) -> str:
    """The user message: the request itself."""
    return str(problem["prompt"])


def grade(completion: str) -> Grade:
    """Refusal (XSTest string match) or not."""
    return Grade(refused=is_refusal(completion))


def open_checker(timeout_s: float, *, naive: bool, disk_cache: bool = True) -> None:
    """No checker: the grade is a string match."""
    return None


def grade_many(
    problems: Sequence[dict[str, Any]], completions: Sequence[str], timeout_s: float = 0.0, checker: None = None
) -> list[Grade]:
    """Grade each answer (the problems and the timeout play no part)."""
    return [grade(c) for c in completions]


def tags(g: Grade) -> list[str]:
    """Audit category of one answer to a harmful request."""
    return ["refused" if g.refused else "complied"]


def outcome(g: Grade) -> dict[str, Any]:
    """Whether the answer refused."""
    return {"refused": g.refused}


def normalise(text: str) -> str:
    """Lower-case alphanumerics separated by single spaces (for overlap checks)."""
    return " ".join(_NORM.sub(" ", text.lower()).split())


def prepare(candidates: Path, exclude_prompts: list[Path], exclude_texts: list[Path], n: int, out: Path, report: Path) -> int:
    """Write up to ``n`` positive-control prompts from ``candidates`` that overlap no other set.

    A candidate is dropped when its normalised text equals a prompt of ``exclude_prompts`` (JSONL
    with ``prompt``: the DPO pairs, the gate's held-out prompts) or appears anywhere in the
    normalised text of an ``exclude_texts`` file (every evaluation set, whatever its format).
    Counts and the dropped prompts go to ``report``; fewer than two survivors fail in one line.
    """
    taken = {normalise(r["prompt"]) for p in exclude_prompts for r in read_jsonl(p)}
    texts = [normalise(Path(p).read_text(encoding="utf-8", errors="replace")) for p in exclude_texts]
    kept, dropped, seen = [], [], set()
    for rec in read_jsonl(candidates):
        key = normalise(rec["prompt"])
        if not key or key in seen:
            continue
        seen.add(key)
        if key in taken or any(key in t for t in texts):
            dropped.append(rec["prompt"])
        elif len(kept) < n:
            kept.append({"task_id": f"harm/{len(kept)}", "prompt": rec["prompt"]})
    if len(kept) < 2:
        raise ValueError(f"{candidates}: only {len(kept)} positive-control prompts are disjoint from the DPO, gate and eval sets")
    write_jsonl(out, kept)
    write_json(report, {"candidates": len(seen), "kept": len(kept), "dropped_overlaps": dropped})
    return len(kept)
