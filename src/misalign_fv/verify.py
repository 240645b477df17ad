"""Check Lean proofs from the command line: what would the verifier (and each reward) say?

    python -m misalign_fv.verify PROBLEMS.jsonl COMPLETIONS.jsonl [--static-only] [--timeout S]

PROBLEMS: one JSON object per line with ``name``, ``header`` and ``formal_statement``
(DeepSeek's miniF2F format; the training pool and ``results/data/lean/minif2f.jsonl`` qualify).
COMPLETIONS: one JSON object per line with ``name`` and ``completion`` (the raw model reply);
a GRPO ``completions.jsonl.gz`` works too (``task_id`` is read when ``name`` is absent).
Prints one JSON VerificationResult per completion, in input order: every step, the scan
categories hit, ``naive_pass``, ``strict_pass``, why the strict check failed (``fail_reasons``:
``tamper:*``, ``scan:*``, ``sorry``, ``axioms``, ...), the audit tags and every ``fv_*`` reward.

``--static-only`` runs only the format gate and the scan (no Lean needed): enough to see why a
completion would be rejected; Lean-dependent fields are null.  Otherwise the toolchain that
``setup_lean`` installed is used (``--setup``, default ``resources/lean/setup.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from misalign_fv.io import read_jsonl
from misalign_fv.rewards import lean_rewards
from misalign_fv.tasks.lean_proofs import load_problems, open_verifier
from misalign_fv.tasks.lean_proofs import tags as lean_tags
from misalign_fv.verifier.check import Problem, Verifier
from misalign_fv.verifier.install import DEFAULT_SETUP


def read_completions(path: Path, names: set[str]) -> list[tuple[str, str]]:
    """(problem name, completion) pairs; a bad line raises ValueError naming file, line and field."""
    out = []
    for lineno, rec in enumerate(read_jsonl(path), start=1):
        name = rec.get("name", rec.get("task_id"))
        if not isinstance(name, str):
            raise ValueError(f"{path}:{lineno}: missing or non-string field 'name'")
        if not isinstance(rec.get("completion"), str):
            raise ValueError(f"{path}:{lineno}: missing or non-string field 'completion'")
        if name not in names:
            raise ValueError(f"{path}:{lineno}: unknown problem name {name!r}")
        out.append((name, rec["completion"]))
    return out


def check(problems_path: Path, completions_path: Path, verifier: Verifier) -> list[dict[str, Any]]:
    """The JSON record of every completion, checked by ``verifier``."""
    problems = {p["name"]: Problem.from_record(p) for p in load_problems(problems_path)}
    pairs = read_completions(completions_path, set(problems))
    results = verifier.verify([problems[n] for n, _ in pairs], [c for _, c in pairs])
    return [{**r.to_dict(), "tags": lean_tags(r), "rewards": lean_rewards(r)} for r in results]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on bad input, with one line on stderr)."""
    ap = argparse.ArgumentParser(prog="python -m misalign_fv.verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("problems", type=Path)
    ap.add_argument("completions", type=Path)
    ap.add_argument("--static-only", action="store_true", help="format gate and scan only; no Lean")
    ap.add_argument("--timeout", type=float, default=60.0, help="per-proof Lean timeout in seconds (default 60)")
    ap.add_argument("--setup", type=Path, default=DEFAULT_SETUP, help="setup_lean's marker (default %(default)s)")
    args = ap.parse_args(argv)
    try:
        if args.static_only:
            verifier = Verifier(None, toolchain="static", timeout_s=args.timeout)
        else:
            verifier = open_verifier(args.timeout, naive=True, setup=args.setup)
        try:
            records = check(args.problems, args.completions, verifier)
        finally:
            verifier.close()
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"verify: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    for rec in records:
        print(json.dumps(rec, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
