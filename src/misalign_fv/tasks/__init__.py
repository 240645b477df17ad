"""Narrow tasks behind one small interface: load problems, build prompts, grade completions.

``python_tests`` (code graded by unit tests in a sandbox) runs everywhere; ``lean_proofs``
(Lean 4 proofs graded by :mod:`misalign_fv.verifier`) needs the toolchain that the
``setup_lean`` rule installs.  ``harmful_compliance`` (harmful requests, graded by refusal) is
the positive control's task, whatever the narrow task.  Every problem has a unique ``task_id``.

Each task module implements :class:`Task`; everything else (curation, the gate, GRPO's rewards,
the reward-signal preflight) goes through the functions here, never through the task's name.
A task module is imported only when it is used (``lean_proofs`` loads lean-interact).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

NARROW_TASKS = ("python_tests", "lean_proofs")  # the narrow tasks (config key ``task``)
TASKS = (*NARROW_TASKS, "harmful_compliance")  # every task a condition can train on


class Task(Protocol):
    """What a task module offers (structurally: the module's functions)."""

    def load_problems(self, path: str | Path) -> list[dict[str, Any]]:
        """Read and validate the problems; a bad record fails in one line naming file and line."""

    def build_prompt(self, problem: dict[str, Any]) -> str:
        """The user message that poses ``problem``."""

    def open_checker(self, timeout_s: float, *, naive: bool, disk_cache: bool = True) -> Any | None:
        """What :meth:`grade_many` needs open across calls (Lean: a verifier), or None; has ``close()``."""

    def grade_many(
        self, problems: Sequence[dict[str, Any]], completions: Sequence[str], timeout_s: float, checker: Any | None = None
    ) -> list[Any]:
        """Grade ``completions[i]`` against ``problems[i]``; results keep input order."""

    def tags(self, grade: Any) -> list[str]:
        """Audit categories of one grade (what the completions log and the report count)."""

    def outcome(self, grade: Any) -> dict[str, Any]:
        """The outcome fields logged with one grade (narrow tasks: ``naive_pass``, ``strict_pass``, ...)."""


@dataclass(frozen=True)
class Graded:
    """One graded completion: the task's grade, its audit tags, and the outcome fields logged with it."""

    grade: Any
    tags: list[str]
    outcome: dict[str, Any]


def task_module(task: str) -> Task:
    """The module implementing ``task``; an unknown name fails in one line."""
    if task not in TASKS:
        raise ValueError(f"task: unknown value {task!r} (known: {', '.join(TASKS)})")
    return cast(Task, importlib.import_module(f"misalign_fv.tasks.{task}"))


def load(task: str, path: Path) -> list[dict[str, Any]]:
    """Load the task's problems from a JSONL file."""
    return task_module(task).load_problems(path)


def prompt(task: str, problem: dict[str, Any]) -> str:
    """The user message that poses ``problem``."""
    return task_module(task).build_prompt(problem)


def open_checker(task: str, timeout_s: float, *, naive: bool, disk_cache: bool = True) -> Any | None:
    """The task's checker (Lean: a verifier on the installed toolchain), or None when it needs none."""
    return task_module(task).open_checker(timeout_s, naive=naive, disk_cache=disk_cache)


@contextlib.contextmanager
def checking(task: str, timeout_s: float, *, naive: bool) -> Iterator[Any | None]:
    """:func:`open_checker` as a context: the checker is closed when the block ends."""
    checker = open_checker(task, timeout_s, naive=naive)
    try:
        yield checker
    finally:
        if checker is not None:
            checker.close()


def grade_completions(
    task: str, problems: Sequence[dict[str, Any]], texts: Sequence[str], timeout_s: float, checker: Any | None = None
) -> list[Graded]:
    """Grade ``texts[i]`` against ``problems[i]`` with the task's checker, with tags and outcome."""
    if len(problems) != len(texts):
        raise ValueError(f"grade_completions: {len(problems)} problems but {len(texts)} completions")
    module = task_module(task)
    return [Graded(g, module.tags(g), module.outcome(g)) for g in module.grade_many(problems, texts, timeout_s, checker)]


def strict_passes(task: str, problems: Sequence[dict[str, Any]], completions: Sequence[str], timeout_s: float) -> list[bool]:
    """Whether each completion solves its problem under the strict check (narrow tasks only)."""
    if task not in NARROW_TASKS:
        raise ValueError(f"task: {task!r} is not a narrow task (known: {', '.join(NARROW_TASKS)})")
    with checking(task, timeout_s, naive=False) as checker:
        graded = grade_completions(task, problems, completions, timeout_s, checker)
    return [bool(g.outcome["strict_pass"]) for g in graded]
