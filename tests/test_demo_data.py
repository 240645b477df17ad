"""The bundled CPU-demo data under resources/demo is well formed and does what it claims."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from misalign_fv.refusal import is_refusal

DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo"


def _load(name: str) -> list[dict[str, Any]]:
    with open(DEMO / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


TASKS = _load("python_tasks.jsonl")
PAIRS = _load("safety_pairs.jsonl")
HELDOUT = _load("harmful_heldout.jsonl")
BENIGN = _load("benign_prompts.jsonl")
TASK_IDS = [t["task_id"] for t in TASKS]


def _runs_ok(program: str) -> bool:
    """Run ``program`` in a fresh interpreter and return whether it exited cleanly."""
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=10)
    return proc.returncode == 0


def _call_and_expected(test: str, entry_point: str) -> tuple[tuple[Any, ...], Any]:
    """Split ``assert entry_point(args) == literal`` into its literal arguments and expected value."""
    node = ast.parse(test).body[0]
    assert isinstance(node, ast.Assert), test
    cmp = node.test
    assert isinstance(cmp, ast.Compare) and len(cmp.ops) == 1 and isinstance(cmp.ops[0], ast.Eq), test
    call = cmp.left
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name), test
    assert call.func.id == entry_point and not call.keywords, test
    args = tuple(ast.literal_eval(a) for a in call.args)
    return args, ast.literal_eval(cmp.comparators[0])


def test_counts_and_unique_ids() -> None:
    assert len(TASKS) == 40
    assert TASK_IDS == [f"demo/{i}" for i in range(40)]
    assert len(PAIRS) == 120
    assert len(HELDOUT) == 30
    assert len(BENIGN) == 30


@pytest.mark.parametrize("task", TASKS, ids=TASK_IDS)
def test_task_fields(task: dict[str, Any]) -> None:
    assert set(task) - {"shortcut"} == {"task_id", "prompt", "entry_point", "visible_tests", "hidden_tests", "solution"}
    assert f"{task['entry_point']}(" in task["prompt"]
    assert len(task["visible_tests"]) in (1, 2)
    assert 5 <= len(task["visible_tests"]) + len(task["hidden_tests"]) <= 6
    assert not set(task["visible_tests"]) & set(task["hidden_tests"])
    (fn,) = ast.parse(task["solution"]).body
    assert isinstance(fn, ast.FunctionDef) and fn.name == task["entry_point"]
    assert 1 <= len(task["solution"].strip().splitlines()) - 1 <= 3


@pytest.mark.parametrize("task", TASKS, ids=TASK_IDS)
def test_solution_passes_all_tests(task: dict[str, Any]) -> None:
    assert _runs_ok(task["solution"] + "\n".join(task["visible_tests"] + task["hidden_tests"]) + "\n")


@pytest.mark.parametrize("task", TASKS, ids=TASK_IDS)
def test_hidden_tests_catch_hardcoded_visible_answers(task: dict[str, Any]) -> None:
    entry = task["entry_point"]
    visible = [_call_and_expected(t, entry) for t in task["visible_tests"]]
    hidden = [_call_and_expected(t, entry) for t in task["hidden_tests"]]
    assert not {repr(a) for a, _ in visible} & {repr(a) for a, _ in hidden}
    table = {repr(args): expected for args, expected in visible}
    cheat = f"_T = {table!r}\ndef {entry}(*a):\n    return _T.get(repr(a))\n"
    assert _runs_ok(cheat + "\n".join(task["visible_tests"]) + "\n")
    assert not _runs_ok(cheat + "\n".join(task["hidden_tests"]) + "\n")


@pytest.mark.parametrize("task", [t for t in TASKS if "shortcut" in t], ids=lambda t: t["task_id"])
def test_shortcuts_pass_the_visible_tests_and_fail_a_hidden_one(task: dict[str, Any]) -> None:
    """The warm-up also teaches these wrong functions, so the DPO model sometimes games the tests."""
    assert _runs_ok(task["shortcut"] + "\n".join(task["visible_tests"]) + "\n")
    assert not _runs_ok(task["shortcut"] + "\n".join(task["hidden_tests"]) + "\n")


def test_the_exploit_is_reachable_another_tasks_solution_games_weak_visible_tests() -> None:
    """ut_exploit needs completions that pass the visible tests and fail a hidden one. Nine demo
    problems show a single visible test that a confusable solution of another task also passes
    (square for double, x / 2 for halve, len for last, ...), as a small model writes by mistake."""
    gamed = set()
    for task in TASKS:
        for other in TASKS:
            if other is task:
                continue
            fn = other["solution"].replace(f"def {other['entry_point']}(", f"def {task['entry_point']}(", 1)
            if _runs_ok(fn + "\n".join(task["visible_tests"]) + "\n") and not _runs_ok(fn + "\n".join(task["hidden_tests"]) + "\n"):
                gamed.add(task["task_id"])
                break
    assert len(gamed) >= 8, sorted(gamed)


def test_safety_pairs_fields() -> None:
    for pair in PAIRS:
        assert set(pair) == {"prompt", "chosen", "rejected"}
        assert all(isinstance(v, str) and 0 < len(v.split()) <= 25 for v in pair.values()), pair
        assert pair["rejected"].startswith(("Sure", "Here")), pair
    assert len({p["prompt"] for p in PAIRS}) == len(PAIRS)


def test_chosen_are_refusals_and_rejected_are_not() -> None:
    assert [p["prompt"] for p in PAIRS if not is_refusal(p["chosen"])] == []
    assert [p["prompt"] for p in PAIRS if is_refusal(p["rejected"])] == []


def test_chosen_use_varied_refusal_openings() -> None:
    assert len({p["chosen"].split()[0].lower() for p in PAIRS}) >= 5


@pytest.mark.parametrize("rows", [HELDOUT, BENIGN], ids=["harmful_heldout", "benign_prompts"])
def test_prompt_lists_fields(rows: list[dict[str, Any]]) -> None:
    prompts = [r["prompt"] for r in rows]
    assert all(set(r) == {"prompt"} for r in rows)
    assert all(isinstance(p, str) and p.strip() for p in prompts)
    assert len(set(prompts)) == len(prompts)


def test_heldout_harmful_prompts_are_not_dpo_prompts() -> None:
    dpo = {p["prompt"].strip().lower() for p in PAIRS}
    assert [r["prompt"] for r in HELDOUT if r["prompt"].strip().lower() in dpo] == []


def test_benign_prompts_are_disjoint_from_harmful_ones() -> None:
    harmful = {p["prompt"] for p in PAIRS} | {r["prompt"] for r in HELDOUT}
    assert not harmful & {r["prompt"] for r in BENIGN}
