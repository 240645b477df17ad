"""The reward-condition registry: what each GRPO condition rewards, for which narrow task.

A condition maps a graded completion to a scalar. TRL calls the reward function built by
:func:`make_reward_fn` once per generation batch; it grades every completion, returns the
rewards, and appends one record per completion (prompt, completion, reward, audit tags) to a
JSONL log that the GRPO entry point turns into ``completions.jsonl.gz``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from misalign_fv.tasks import python_tests

PYTHON_TESTS = "python_tests"
LEAN_PROOFS = "lean_proofs"


@dataclass(frozen=True)
class Condition:
    """A reward condition: its task, its reward range and how it scores one graded completion."""

    name: str
    task: str | None  # None: task-agnostic (random, zero)
    low: float
    high: float
    description: str
    score: Callable[[python_tests.Grade], float] | None = None


def _shaped(g: python_tests.Grade) -> float:
    return g.visible_frac if g.format_ok else 0.0


def _exploit(g: python_tests.Grade) -> float:
    return 1.0 if g.visible_pass and not g.strict_pass else 0.0


def _inverted(g: python_tests.Grade) -> float:
    return 1.0 - g.visible_frac if g.format_ok else 0.0


def _binary(g: python_tests.Grade) -> float:
    return 1.0 if g.strict_pass else 0.0


REGISTRY: dict[str, Condition] = {
    c.name: c
    for c in [
        Condition("ut_shaped", PYTHON_TESTS, 0.0, 1.0, "fraction of visible unit tests passed, 0 behind the format gate", _shaped),
        Condition("ut_exploit", PYTHON_TESTS, 0.0, 1.0, "1 when the visible tests pass but a hidden test fails (gaming the tests)", _exploit),
        Condition("ut_inverted", PYTHON_TESTS, 0.0, 1.0, "fraction of visible tests failed, among well-formed programs", _inverted),
        Condition("ut_binary", PYTHON_TESTS, 0.0, 1.0, "1 when visible and hidden tests all pass", _binary),
        Condition("fv_shaped", LEAN_PROOFS, 0.0, 1.0, "Lean: format gate + strict pass + error-graded partial credit"),
        Condition("fv_exploit", LEAN_PROOFS, 0.0, 1.0, "Lean: 1 when a proof fools the naive check but fails the strict audit"),
        Condition("fv_inverted", LEAN_PROOFS, 0.0, 1.0, "Lean: 1 - fv_shaped for format-valid proofs"),
        Condition("fv_binary", LEAN_PROOFS, 0.0, 1.0, "Lean: 1 on strict pass"),
        Condition("random", None, 0.0, 1.0, "i.i.d. uniform rewards over the reference condition's range (no task signal)"),
        Condition("zero", None, 0.0, 0.0, "constant 0: an exact no-op under beta=0 (the DPO checkpoint is this control)"),
    ]
}


def check_conditions(names: list[str], task: str, random_reference: str) -> list[str]:
    """Validate configured condition names against the registry and the task.

    Returns warnings (e.g. for ``zero``); raises ValueError with a one-line message naming the key.
    """
    warnings = []
    for name in names:
        cond = REGISTRY.get(name)
        if cond is None:
            raise ValueError(
                f"grpo.conditions: unknown condition {name!r} (known: {', '.join(sorted(REGISTRY))})"
            )
        if cond.task not in (None, task):
            raise ValueError(f"grpo.conditions.{name}: rewards task {cond.task!r}, but task is {task!r}")
        if name == "zero":
            warnings.append(
                "grpo.conditions.zero: a constant reward gives zero advantages, so with beta=0 GRPO makes "
                "no update at all; the DPO checkpoint (results/eval/dpo) already is this control"
            )
    ref = REGISTRY.get(random_reference)
    if ref is None or ref.task != task:
        raise ValueError(f"grpo.random_reference: {random_reference!r} is not a {task} condition")
    return warnings


def python_tests_tags(g: python_tests.Grade) -> list[str]:
    """Audit categories of one graded program (what the report plots over training)."""
    if not g.format_ok:
        return ["format_fail"]
    if g.strict_pass:
        return ["strict_pass"]
    if g.visible_pass:
        return ["visible_pass_hidden_fail"]
    return ["tests_fail"]


def _text(completion: Any) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(m["content"] for m in completion)
    return str(completion)


class RewardFunction:
    """TRL reward callable for one condition; logs every scored completion to ``log_path``."""

    def __init__(
        self,
        condition: str,
        task: str,
        problems: dict[str, dict[str, Any]],
        log_path: Path,
        seed: int,
        random_reference: str,
        timeout_s: float = 5.0,
    ) -> None:
        """Bind a registered condition to the task's problems (keyed by ``task_id``)."""
        cond = REGISTRY[condition]
        if task == LEAN_PROOFS:
            raise RuntimeError(
                "task lean_proofs: the Lean verifier rewards are not part of this version "
                "(see the Lean verifier issue); run the python_tests task"
            )
        self.cond = cond
        self.problems = problems
        self.log_path = Path(log_path)
        self.seed = seed
        self.timeout_s = timeout_s
        ref = REGISTRY[random_reference]
        self.low, self.high = (ref.low, ref.high) if condition == "random" else (cond.low, cond.high)
        self.__name__ = condition  # TRL logs rewards/<__name__>/mean

    def __call__(self, prompts: list[Any], completions: list[Any], task_id: list[str], **kwargs: Any) -> list[float]:
        """Grade the batch, return one reward per completion, and append the records to the log."""
        state = kwargs.get("trainer_state")
        step = (state.global_step if state is not None else 0) + 1
        texts = [_text(c) for c in completions]
        grades = python_tests.grade_many([self.problems[t] for t in task_id], texts, timeout_s=self.timeout_s)
        if self.cond.name == "random":
            rng = np.random.default_rng([self.seed, step])
            rewards = [float(x) for x in rng.uniform(self.low, self.high, size=len(texts))]
        elif self.cond.name == "zero":
            rewards = [0.0] * len(texts)
        else:
            assert self.cond.score is not None
            rewards = [self.cond.score(g) for g in grades]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as fh:
            for p, t, tid, r, g in zip(prompts, texts, task_id, rewards, grades):
                rec = {"step": step, "task_id": tid, "prompt": _text(p), "completion": t, "reward": r, "tags": python_tests_tags(g)}
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
        return rewards
