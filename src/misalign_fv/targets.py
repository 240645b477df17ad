"""Command-line targets checked against the config before any job is planned: a results path of
another config, or of a condition, seed or benchmark the config does not have, is one line."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_RUN = re.compile(r"/(?:grpo|eval|trajectory)/([^/]+)/seed(\d+)(?:/|$)")
_EVAL = re.compile(r"/eval/(?:[^/]+/seed\d+|base|dpo)/([^/.]+)\.")


def check_target(
    target: str, root: str, conditions: Sequence[str], seeds: Sequence[int], benchmarks: Sequence[str]
) -> str | None:
    """What is wrong with ``target`` (``target <path>: <problem>``), or None when it is not a
    results path or belongs to this config's experiment."""
    inside = target.startswith(f"{root}/")
    if not inside and not target.startswith("results/"):
        return None
    if not inside:
        return f"target {target}: not under this config's results root {root}/ (another config's? pass --configfile=FILE)"
    rest = target[len(root) :]
    for m in _RUN.finditer(rest):
        if m.group(1) not in conditions:
            return f"target {target}: condition {m.group(1)} is not in grpo.conditions ({', '.join(conditions)})"
        if int(m.group(2)) not in seeds:
            return f"target {target}: seed {m.group(2)} is not in grpo.seeds ({', '.join(map(str, seeds))})"
    m = _EVAL.match(rest)
    if m and m.group(1) not in benchmarks:
        return f"target {target}: benchmark {m.group(1)} is not in eval.benchmarks ({', '.join(benchmarks)})"
    return None


def first_problem(args: Iterable[str], root: str, conditions: Sequence[str], seeds: Sequence[int], benchmarks: Sequence[str]) -> str | None:
    """The first problem among command-line arguments (targets are not visible to a Snakefile)."""
    for arg in args:
        if (problem := check_target(arg, root, conditions, seeds, benchmarks)) is not None:
            return problem
    return None
