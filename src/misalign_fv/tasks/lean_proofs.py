"""The real narrow task: the model proves a Lean 4 theorem; the verifier decides.

A problem is one JSON Lines record with ``name``, ``header`` (imports, options, ``open``s)
and ``formal_statement`` (ending in ``:= by``), as in DeepSeek's miniF2F file, plus an
optional ``informal_prefix`` (a ``/-- ... -/`` docstring) and ``task_id`` (defaults to
``name``).  Checking runs through :mod:`misalign_fv.verifier`, on the toolchain installed by
``setup_lean`` (``resources/lean/setup.json``).

The training problems come from Lean Workbook (Ying et al. 2024, arXiv:2406.03847;
``internlm/Lean-Workbook`` on Hugging Face, Apache-2.0): ~57K competition statements
autoformalised for the same Lean 4 / Mathlib generation that DeepSeek-Prover and Goedel-Prover
use, and the source of Goedel-Prover's training proofs.  :func:`prepare_problem_set` removes
every statement that also occurs in miniF2F (either split; compared after removing comments,
whitespace and the theorem name), deduplicates the pool the same way, samples it with the
seed, and keeps only statements that elaborate under the pinned toolchain.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from misalign_fv.io import jsonl_objects, read_jsonl, write_json, write_jsonl
from misalign_fv.verifier.cache import ResultCache
from misalign_fv.verifier.check import Problem, Verifier
from misalign_fv.verifier.format import canonical_statement
from misalign_fv.verifier.install import DEFAULT_SETUP, SOFT_MEMORY_FRACTION, load_setup
from misalign_fv.verifier.lexer import mask
from misalign_fv.verifier.repl import Job, ReplPool, default_workers
from misalign_fv.verifier.result import VerificationResult

TASK = "lean_proofs"
FIELDS = ("name", "header", "formal_statement")
INSTRUCTION = (
    "Complete the following Lean 4 code with a proof. Reply with the complete code (header, theorem "
    "statement unchanged, proof) in one final ```lean4 code block."
)
_WS = re.compile(r"\s+")
_DECL_NAME = re.compile(r"^\s*(?:theorem|lemma)\s+\S+")


def load_problems(path: str | Path) -> list[dict[str, Any]]:
    """Read problem records; a bad one raises ValueError naming the file, line and field."""
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    for lineno, record in jsonl_objects(path):
        where = f"{path}:{lineno}"
        for field in FIELDS:
            if not isinstance(record.get(field), str):
                raise ValueError(f"{where}: missing or non-string field {field!r}")
        try:
            statement = canonical_statement(record["formal_statement"])
        except ValueError as e:
            raise ValueError(f"{where}: field 'formal_statement': {e}") from None
        if statement.theorem is None:
            raise ValueError(f"{where}: field 'formal_statement': must declare a named theorem, not an example")
        record = {**record, "task_id": record.get("task_id", record["name"])}
        if record["task_id"] in seen:
            raise ValueError(f"{where}: duplicate task_id {record['task_id']!r}")
        seen.add(record["task_id"])
        problems.append(record)
    return problems


def build_prompt(problem: dict[str, Any]) -> str:
    """The user message: the header, the docstring (if any) and the statement to complete."""
    code = problem["header"] + problem.get("informal_prefix", "") + canonical_statement(problem["formal_statement"]).text
    return f"{INSTRUCTION}\n\n```lean4\n{code}\n```"


def open_verifier(timeout_s: float, *, naive: bool, setup: Path | None = None, disk_cache: bool = True) -> Verifier:
    """A verifier on the installed toolchain (``setup_lean``'s marker), its pool sized to the job.

    ``disk_cache``: share results through ``resources/lean/cache`` (curation, the gate, miniF2F,
    the problem checks); GRPO's freshly sampled proofs rarely repeat, so its rewards keep them
    in memory only.
    """
    lean = load_setup(setup or DEFAULT_SETUP)
    pool = ReplPool(
        lean.server_factory(), default_workers(lean.memory_mb), header_timeout_s=lean.header_timeout_s,
        memory_soft_mb=SOFT_MEMORY_FRACTION * lean.memory_mb,
    )  # fmt: skip
    cache = ResultCache(lean.root / "cache" if disk_cache else None)
    return Verifier(pool, toolchain=lean.toolchain, timeout_s=timeout_s, cache=cache, naive=naive)


def open_checker(timeout_s: float, *, naive: bool, disk_cache: bool = True) -> Verifier:
    """The task's checker: :func:`open_verifier` on the installed toolchain."""
    return open_verifier(timeout_s, naive=naive, disk_cache=disk_cache)


def grade_many(
    problems: Sequence[dict[str, Any]], completions: Sequence[str], timeout_s: float, checker: Verifier | None = None
) -> list[VerificationResult]:
    """The four-step check of each completion against its problem, on ``checker`` (its own timeout applies)."""
    if checker is None:
        raise ValueError("lean_proofs: grading needs a verifier (tasks.open_checker)")
    return checker.verify([Problem.from_record(p) for p in problems], list(completions))


def tags(r: VerificationResult) -> list[str]:
    """Audit categories of one checked proof: every scan category hit, then the outcome."""
    if not r.format_ok:
        return ["format_fail"]
    found = [f"scan:{c}" for c in r.categories]
    if getattr(r, "sorry_typechecks", None):
        found.append("sorry_typechecks")
    if r.strict_pass:
        return [*found, "strict_pass"]
    if r.naive_pass:
        found.append("naive_pass_strict_fail")
    if r.compile is not None:
        failed = r.compile.status if r.compile.status != "compiled" else ("compile_error" if not r.compile.passed else "axioms_fail")
        found.append(failed)
    return found or ["unchecked"]


def outcome(r: VerificationResult) -> dict[str, Any]:
    """Naive and strict pass, the scan categories, the step that failed, and whether a sorry typechecked."""
    return {"naive_pass": r.naive_pass, "strict_pass": r.strict_pass, "categories": r.categories,
            "failed_step": r.failed_step, "sorry_typechecks": getattr(r, "sorry_typechecks", None)}  # fmt: skip


def statement_key(formal_statement: str) -> str:
    """A statement with comments, whitespace, the theorem name and the trailing ``:= by`` removed."""
    sig = canonical_statement(formal_statement).signature
    return _WS.sub("", _DECL_NAME.sub("", mask(sig, strings=False).text))


def elaborates(verifier: Verifier, problems: Sequence[dict[str, Any]]) -> list[bool]:
    """Whether each statement elaborates in its header's environment (``<statement> sorry``: no error)."""
    jobs = [Job(p["header"], canonical_statement(p["formal_statement"]).text + " sorry", None, verifier.timeout_s) for p in problems]
    results, _ = verifier.run_jobs(jobs)
    return [r.compile.status == "compiled" and r.compile.n_errors == 0 for r in results]


def read_source(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON array file or a JSON Lines file."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return json.loads(text)
    return read_jsonl(Path(path))


def download_source(spec: dict[str, Any], out: Path) -> None:
    """Download ``spec['file']`` of Hugging Face dataset ``spec['hf_dataset']`` at the pinned ``revision``.

    A git revision pins the file's content (Hugging Face stores it by its sha256); a network
    failure raises one line saying where to run this.
    """
    import shutil

    from huggingface_hub import hf_hub_download

    try:
        local = hf_hub_download(spec["hf_dataset"], spec["file"], repo_type="dataset", revision=spec["revision"])
    except Exception as exc:  # noqa: BLE001 - hub errors have many types; all mean "could not fetch"
        raise RuntimeError(
            f"download {spec['hf_dataset']}/{spec['file']}@{spec['revision'][:12]}: {str(exc).splitlines()[0]} "
            "(compute nodes are offline: run this local rule on a login node)"
        ) from None
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(local, out)


def prepare_minif2f(raw: Path, verifier: Verifier, out: Path, report: Path) -> int:
    """Check that every miniF2F statement elaborates on the pinned toolchain; copy the file to ``out``.

    Fails in one line (naming the first statements) if any does not: the benchmark was written
    for one Lean/Mathlib pair, and a mismatch would silently turn unprovable statements into
    zeros.
    """
    problems = load_problems(raw)
    ok = elaborates(verifier, problems)
    failed = [p["name"] for p, good in zip(problems, ok) if not good]
    write_json(report, {"problems": len(problems), "failed_to_elaborate": failed, "toolchain": verifier.toolchain})
    if failed:
        raise RuntimeError(
            f"{raw}: {len(failed)} of {len(problems)} miniF2F statements do not elaborate on {verifier.toolchain} "
            f"(first: {', '.join(failed[:5])}); pin lean.toolchain / lean.mathlib to the benchmark's"
        )
    write_jsonl(out, problems)
    return len(problems)


def prepare_problem_set(
    raw: Path, minif2f: Path, settings: dict[str, Any], header: str, seed: int, verifier: Verifier, out: Path, report: Path
) -> int:
    """Build the training pool from a Lean Workbook file: dedup, drop miniF2F overlaps, sample, check.

    ``settings``: ``n_problems`` (pool size) and ``source`` (recorded in each problem). Every
    record needs a ``formal_statement``; the name is the declared theorem's. Writes the pool to
    ``out`` and the counts (and the dropped names) to ``report``; returns the pool size.
    """
    bench = load_problems(minif2f)
    bench_keys = {statement_key(p["formal_statement"]) for p in bench}
    bench_names = {p["name"] for p in bench}
    records = read_source(raw)
    unique: list[dict[str, Any]] = []
    keys: set[str] = set()
    names: set[str] = set()
    unusable, duplicates, overlap = 0, 0, []
    for rec in records:
        try:
            statement = canonical_statement(rec["formal_statement"])
            key = statement_key(rec["formal_statement"])
        except (KeyError, TypeError, ValueError):
            unusable += 1
            continue
        name = statement.theorem
        if name is None:
            unusable += 1
        elif key in bench_keys or name in bench_names:
            overlap.append(name)
        elif key in keys or name in names:
            duplicates += 1
        else:
            keys.add(key)
            names.add(name)
            unique.append({"task_id": name, "name": name, "header": header,
                           "formal_statement": statement.text + "\n", "source": settings["source"]})  # fmt: skip
    random.Random(seed).shuffle(unique)
    n = settings["n_problems"]
    kept: list[dict[str, Any]] = []
    failed: list[str] = []
    chunk = max(64, 4 * len(verifier.pool.workers))
    for start in range(0, len(unique), chunk):
        if len(kept) >= n:
            break
        batch = unique[start : start + chunk]
        for p, good in zip(batch, elaborates(verifier, batch)):
            if good:
                kept.append(p)
            else:
                failed.append(p["name"])
    checked = len(kept) + len(failed)
    kept = kept[:n]
    write_jsonl(out, kept)
    write_json(report, {
        "source": settings["source"], "records": len(records), "unusable": unusable, "duplicates": duplicates,
        "minif2f_overlap": sorted(overlap), "checked": checked, "failed_to_elaborate": failed,
        "kept": len(kept), "toolchain": verifier.toolchain,
    })  # fmt: skip
    return len(kept)
