"""Python-side cost of the Lean verifier per proof, on the recorded fixture corpus (no Lean runs).

    .venv/bin/python benchmarks/verifier_overhead.py [--repeats 7] [--json out.json]

Corpus: every DeepSeek miniF2F statement (488) paired with one of the 8 accepted Goedel-Prover
proof bodies from the kimina fixtures, plus those 10 kimina inputs themselves: 498 replies of
realistic size.  Stages, each timed over the whole corpus and divided by its size:

* ``format+scan``: format gate, statement re-attachment and the body scan;
* ``naive prep``: the naive check's code and hazard scan;
* ``parse``: lean-interact ``model_validate`` of a recorded REPL answer + our reduction
  (every recorded ``CommandResponse`` of both REPL folders and kimina, cycled);
* ``cache lookup (disk)``: a fresh cache object reads the shard files once, then looks up every
  entry (two per reply: the strict and the naive check), amortised per lookup;
* ``verify, all cached``: ``Verifier.verify`` end to end when every Lean check is a cache hit
  (format, scan, naive prep, key hashing, lookup, result assembly) - the overhead that remains
  when Lean time is taken out.

Prints the median per-proof time of each stage (microseconds) and its ratio to the 5 ms goal,
and the share of one Lean check (Kimina report: 3.65 s per proof with a cached header).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lean_interact.interface import CommandResponse

from misalign_fv.tasks.lean_proofs import load_problems
from misalign_fv.verifier.cache import ResultCache, cache_key
from misalign_fv.verifier.check import Problem, Verifier, naive_code
from misalign_fv.verifier.format import attach
from misalign_fv.verifier.repl import Job, JobResult
from misalign_fv.verifier.result import Axioms, Compiled, compiled_from_response
from misalign_fv.verifier.scan import hazards, scan

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures" / "lean_repl"
GOAL_S = 5e-3
LEAN_S_PER_PROOF = 3.65  # Kimina Lean Server tech report, Table 2 (cached header)


class NoLean:
    """A pool that must never be asked: every check in the timed run is a cache hit."""

    workers: list = []

    def run(self, jobs: list[Job]) -> list[JobResult]:
        """Fail loudly: the benchmark would be timing Lean."""
        raise AssertionError(f"{len(jobs)} checks missed the cache")


def corpus() -> tuple[list[Problem], list[str]]:
    """(problem, reply) pairs: miniF2F statements with Goedel proof bodies, and the kimina inputs."""
    inputs = sorted((FIXTURES / "kimina_match_v4.15.0" / "input").glob("*.lean"))
    problems, replies, bodies = [], [], []
    for path in inputs:
        src = path.read_text()
        start = re.search(r"^(?:/-|theorem )", src, re.M).start()
        decl = src.index("theorem ", start)
        by_end = re.compile(r":=\s*by").search(src, decl).end()
        problems.append(Problem.from_record({"name": path.stem, "header": src[:start], "formal_statement": src[decl:by_end]}))
        replies.append(f"```lean4\n{src.rstrip()}\n```")
        if path.stem.startswith("goedel"):
            bodies.append(src[by_end:].rstrip())
    for i, rec in enumerate(load_problems(SHARED / "datasets" / "minif2f" / "minif2f_deepseek_prover_v1.5.jsonl")):
        problems.append(Problem.from_record(rec))
        reply = rec["header"] + rec["informal_prefix"] + rec["formal_statement"].rstrip() + bodies[i % len(bodies)]
        replies.append(f"Proof:\n```lean4\n{reply}\n```")
    return problems, replies


def recorded_responses() -> list[dict]:
    """Every recorded CommandResponse JSON (both REPL folders and kimina)."""
    out = []
    for path in FIXTURES.rglob("*.expected.out"):
        for block in re.split(r"\n\s*\n", path.read_text().strip()):
            data = json.loads(block, strict=False)
            if "env" in data and "proofStatus" not in data:
                out.append(data)
    for path in (FIXTURES / "kimina_match_v4.15.0" / "output").glob("*.json"):
        resp = json.loads(path.read_text())["results"][0]["response"]
        if resp is not None:
            out.append({"env": 1, **{k: v for k, v in resp.items() if k != "time"}})
    return out


def per_item(fn: Callable[[], int], repeats: int) -> list[float]:
    """Seconds per item of ``fn`` (which returns its item count), one value per repeat."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        times.append((time.perf_counter() - t0) / n)
    return times


def main() -> None:
    """Run the measurements and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    problems, replies = corpus()
    responses = recorded_responses()
    n = len(replies)

    def gate_and_scan() -> int:
        for p, r in zip(problems, replies):
            att = attach(p.statement, r)
            assert att.ok and not scan(att.body), p.name
        return n

    def naive_prep() -> int:
        for p, r in zip(problems, replies):
            code, _ = naive_code(p.header, r)
            assert code is not None and not hazards(scan(code, column_zero=False))
        return n

    def parse() -> int:
        for i in range(n):
            compiled_from_response(CommandResponse.model_validate(responses[i % len(responses)]))
        return n

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cache"
        warm = ResultCache(root)
        verifier = Verifier(NoLean(), toolchain="bench", timeout_s=60, cache=warm)  # type: ignore[arg-type]
        keys = []
        for p, r in zip(problems, replies):
            for code, theorem in ((attach(p.statement, r).code, p.statement.theorem), (naive_code(p.header, r)[0], None)):
                key = cache_key("bench", p.header, code, theorem)
                keys.append(key)
                warm.put(key, {"compile": Compiled("compiled").to_dict(), "axioms": Axioms("ok").to_dict() if theorem else None, "timeout_s": 60})

        def disk_lookup() -> int:
            cold = ResultCache(root)
            for k in keys:
                assert cold.get(k) is not None
            return len(keys)

        def verify_cached() -> int:
            results = Verifier(NoLean(), toolchain="bench", timeout_s=60, cache=ResultCache(root)).verify(problems, replies)  # type: ignore[arg-type]
            assert all(r.strict_pass and r.naive_pass for r in results)
            return n

        verifier.verify(problems[:2], replies[:2])  # warm-up (imports, regex compilation)
        stages = {
            "format+scan": per_item(gate_and_scan, args.repeats),
            "naive prep": per_item(naive_prep, args.repeats),
            "parse (lean-interact + reduce)": per_item(parse, args.repeats),
            "cache lookup (disk)": per_item(disk_lookup, args.repeats),
            "verify, all cached (total)": per_item(verify_cached, args.repeats),
        }
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), platform.processor())
    result = {
        "machine": f"{platform.node()}: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "corpus": {"replies": n, "recorded_responses": len(responses)},
        "per_proof_s": stages,
        "median_per_proof_s": {k: statistics.median(v) for k, v in stages.items()},
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(result["machine"])
    print(f"{n} replies, {len(responses)} recorded REPL answers, {args.repeats} repeats")
    print(f"{'stage':<34}{'median us/proof':>16}{'/ 5 ms goal':>13}{'/ Lean 3.65 s':>15}")
    for k, v in result["median_per_proof_s"].items():
        print(f"{k:<34}{v * 1e6:>16.1f}{v / GOAL_S:>13.3f}{v / LEAN_S_PER_PROOF:>15.2e}")


if __name__ == "__main__":
    sys.exit(main())
