"""Narrow tasks behind one small interface: load problems, build prompts, check completions.

``python_tests`` (code graded by unit tests in a sandbox) runs everywhere; ``lean_proofs``
(Lean 4 proofs graded by :mod:`misalign_fv.verifier`) needs the toolchain that the
``setup_lean`` rule installs.  ``harmful_compliance`` (harmful requests, graded by refusal) is
the positive control's task, whatever the narrow task.  Every problem has a unique ``task_id``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TASKS = ("python_tests", "lean_proofs")  # the narrow tasks (config key ``task``)


def _module(task: str) -> Any:
    if task == "python_tests":
        from misalign_fv.tasks import python_tests

        return python_tests
    if task == "lean_proofs":
        from misalign_fv.tasks import lean_proofs

        return lean_proofs
    if task == "harmful_compliance":
        from misalign_fv.tasks import harmful_compliance

        return harmful_compliance
    raise ValueError(f"task: unknown value {task!r} (known: {', '.join(TASKS)})")


def load(task: str, path: Path) -> list[dict[str, Any]]:
    """Load the task's problems from a JSONL file."""
    return _module(task).load_problems(path)


def prompt(task: str, problem: dict[str, Any]) -> str:
    """The user message that poses ``problem``."""
    return _module(task).build_prompt(problem)


def strict_passes(task: str, problems: list[dict[str, Any]], completions: list[str], timeout_s: float) -> list[bool]:
    """Whether each completion solves its problem under the strict check."""
    if task == "python_tests":
        from misalign_fv.tasks import python_tests

        return [g.strict_pass for g in python_tests.grade_many(problems, completions, timeout_s=timeout_s)]
    return _module(task).strict_passes(problems, completions, timeout_s)
