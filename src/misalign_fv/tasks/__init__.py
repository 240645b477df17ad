"""Narrow tasks behind one small interface: load problems, build prompts, check completions.

``python_tests`` (code graded by unit tests in a sandbox) runs everywhere; ``lean_proofs``
needs the Lean verifier, which arrives with its own issue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TASKS = ("python_tests", "lean_proofs")


def _require_python(task: str) -> None:
    if task != "python_tests":
        raise RuntimeError(
            f"task {task}: the Lean verifier is not part of this version (see the Lean verifier issue); "
            "set task: python_tests"
        )


def load(task: str, path: Path) -> list[dict[str, Any]]:
    """Load the task's problems from a JSONL file."""
    from misalign_fv.tasks import python_tests

    _require_python(task)
    return python_tests.load_problems(path)


def prompt(task: str, problem: dict[str, Any]) -> str:
    """The user message that poses ``problem``."""
    from misalign_fv.tasks import python_tests

    _require_python(task)
    return python_tests.build_prompt(problem)


def strict_passes(task: str, problems: list[dict[str, Any]], completions: list[str], timeout_s: float) -> list[bool]:
    """Whether each completion solves its problem under the strict check."""
    from misalign_fv.tasks import python_tests

    _require_python(task)
    return [g.strict_pass for g in python_tests.grade_many(problems, completions, timeout_s=timeout_s)]
