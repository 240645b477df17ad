"""Cluster preflight (rule ``cluster_preflight``): cheap checks of the real toolchain that run before
curation, GRPO and miniF2F, so that a broken setup stops the run in minutes, not after GPU days.

Every check is named and ends ``pass``, ``fail`` or ``skip`` with a one-line reason:

* ``lean_toolchain``: ``setup_lean``'s marker opens, a REPL starts in the sandbox and imports the
  configured header (Mathlib);
* ``lean_accept`` / ``lean_reject``: the cases of ``resources/preflight/lean_cases.yaml`` go
  through the verifier on that REPL: accepted proofs pass the strict and the naive check; exploits
  (sorry, an added axiom, native_decide, a changed statement, a renamed theorem, a wrong proof)
  fail the strict check with exactly the expected ``fail_reasons`` and fool the naive check where
  the case says so;
* ``lean_axioms``: ``#print axioms`` answers of the live REPL parse, name the expected axioms and
  pass or fail the standard-axiom check as expected;
* ``lean_timeout``: a command that runs past its timeout is cut off, and the pool then verifies a
  good proof on a fresh REPL;
* ``generation``: one short greedy generation from the base model with the configured backend,
  and exactly one BOS token, at the start, in the prompt's token ids;
* ``judge``: the judge gives a clearly aligned answer a higher 0-100 alignment score than a
  clearly misaligned one (``resources/preflight/judge_answers.yaml``);
* ``sandbox``: a program runs in the sandbox; its isolation level is recorded.

The Lean checks apply to task ``lean_proofs`` (skipped otherwise), the judge check to a configured
``eval.judge``. ``preflight.required`` names the checks that must pass. The report (every check's
status, reason and details) is written atomically first; then a failed required check raises
:class:`PreflightFailed`, one line naming the failed checks, where the report is, and the reasons.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from misalign_fv.io import code_version, write_json
from misalign_fv.verifier.check import Problem, Verifier
from misalign_fv.verifier.format import canonical_statement
from misalign_fv.verifier.repl import Job, ReplPool
from misalign_fv.verifier.result import TIMEOUT, VerificationResult

if TYPE_CHECKING:  # the judges load torch and transformers; only the judge check needs them
    from misalign_fv.judges import Judge, JudgePrompt

log = logging.getLogger(__name__)

PASS, FAIL, SKIP = "pass", "fail", "skip"
LEAN_CHECKS = ("lean_toolchain", "lean_accept", "lean_reject", "lean_axioms", "lean_timeout")
CHECKS = (*LEAN_CHECKS, "generation", "judge", "sandbox")
MAX_REASON_CHARS = 400
GENERATION_PROMPT = "Name one prime number and say why it is prime."
GENERATION_TOKENS = 16


class PreflightFailed(RuntimeError):
    """A required preflight check failed; the message is one line."""


def one_line(text: object, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` with every whitespace run collapsed to one space, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@dataclass
class Check:
    """One check's outcome: ``status`` (pass, fail, skip), a one-line ``reason`` and what it saw."""

    name: str
    status: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def record(self, required: bool) -> dict[str, Any]:
        """The check as JSON-ready fields, with whether it is required."""
        return {
            "status": self.status, "reason": self.reason, "required": required, "seconds": self.seconds,
            "details": self.details,
        }  # fmt: skip


def run_check(name: str, fn: Callable[[], Check]) -> Check:
    """``fn()``, timed; an exception becomes a failure whose reason is the exception in one line."""
    start = time.monotonic()
    try:
        check = fn()
    except Exception as exc:  # a check that cannot run is a failed check, never a crashed preflight
        log.exception("preflight check %s raised", name)
        check = Check(name, FAIL, one_line(f"{type(exc).__name__}: {exc}"))
    check.seconds = round(time.monotonic() - start, 3)
    log.info("preflight %s: %s (%s)", name, check.status, check.reason)
    return check


# --- Lean ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeanCase:
    """A model reply to a statement; no ``fail_reasons``: must pass, else must fail with exactly these."""

    name: str
    statement: str
    reply: str
    fail_reasons: tuple[str, ...] = ()
    naive_pass: bool | None = None


@dataclass(frozen=True)
class AxiomCase:
    """A command sent as it is, then ``#print axioms theorem``: must name ``contains``; ``passed`` expected."""

    name: str
    code: str
    theorem: str
    contains: tuple[str, ...]
    passed: bool


@dataclass(frozen=True)
class LeanCases:
    """The Lean cases file (``resources/preflight/lean_cases.yaml``)."""

    accept: tuple[LeanCase, ...]
    reject: tuple[LeanCase, ...]
    axioms: tuple[AxiomCase, ...]
    timeout_code: str
    timeout_s: float


def _field(entry: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(entry, dict) or key not in entry or not isinstance(entry[key], kind):
        raise ValueError(f"{where}: missing or malformed {key!r}")
    return entry[key]


def load_lean_cases(path: Path) -> LeanCases:
    """Read the Lean cases file; a missing or malformed entry fails in one line naming file and entry."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    cases: dict[str, list[LeanCase]] = {}
    for section in ("accept", "reject"):
        cases[section] = []
        for i, e in enumerate(_field(data, section, list, str(path))):
            where = f"{path}: {section}[{i}]"
            reasons = tuple(_field(e, "fail_reasons", list, where)) if section == "reject" else ()
            cases[section].append(
                LeanCase(
                    _field(e, "name", str, where), _field(e, "statement", str, where), _field(e, "reply", str, where),
                    reasons, e.get("naive_pass"),
                )  # fmt: skip
            )
    axioms = []
    for i, e in enumerate(_field(data, "axioms", list, str(path))):
        where = f"{path}: axioms[{i}]"
        axioms.append(
            AxiomCase(
                _field(e, "name", str, where), _field(e, "code", str, where), _field(e, "theorem", str, where),
                tuple(_field(e, "contains", list, where)), _field(e, "passed", bool, where),
            )  # fmt: skip
        )
    timeout = _field(data, "timeout", dict, str(path))
    if not cases["accept"]:
        raise ValueError(f"{path}: accept: at least one case is needed (the timeout check re-verifies the first)")
    return LeanCases(
        tuple(cases["accept"]), tuple(cases["reject"]), tuple(axioms),
        _field(timeout, "code", str, f"{path}: timeout"), float(_field(timeout, "timeout_s", (int, float), f"{path}: timeout")),
    )  # fmt: skip


def case_problem(case: LeanCase, header: str) -> Problem:
    """The problem a case answers: its canonical statement in ``header``'s environment."""
    st = canonical_statement(case.statement)
    return Problem(st.theorem or case.name, header, st)


def case_completion(case: LeanCase) -> str:
    """The case's reply as a model's final ```` ```lean4 ```` block."""
    return f"```lean4\n{case.reply.rstrip()}\n```"


def case_mismatch(case: LeanCase, res: VerificationResult) -> str | None:
    """None when ``res`` is what ``case`` expects, else what Lean and the verifier said instead (one line)."""
    if not case.fail_reasons:
        if res.strict_pass and res.naive_pass:
            return None
        wanted = "strict and naive pass"
    else:
        if res.strict_pass is False and res.fail_reasons == list(case.fail_reasons) and case.naive_pass in (None, res.naive_pass):
            return None
        wanted = f"fail_reasons {list(case.fail_reasons)}" + ("" if case.naive_pass is None else f", naive {case.naive_pass}")
    errors = [*(res.compile.errors if res.compile else ()), *(res.naive.errors if res.naive else ())]
    got = f"strict {res.strict_pass}, naive {res.naive_pass}, fail_reasons {res.fail_reasons}"
    return one_line(f"{case.name}: expected {wanted}, got {got}" + (f" ({errors[0]})" if errors else ""), 300)


def _verdicts(name: str, cases: Sequence[LeanCase], results: Sequence[VerificationResult]) -> Check:
    problems = [p for c, r in zip(cases, results, strict=True) if (p := case_mismatch(c, r))]
    details = {
        c.name: {"strict_pass": r.strict_pass, "naive_pass": r.naive_pass, "fail_reasons": r.fail_reasons}
        for c, r in zip(cases, results, strict=True)
    }
    if problems:
        return Check(name, FAIL, one_line(f"{len(problems)} of {len(cases)} cases wrong: " + "; ".join(problems)), details)
    what = "pass the strict and the naive check" if name == "lean_accept" else "are rejected with the expected reasons"
    return Check(name, PASS, f"all {len(cases)} cases {what}", details)


def _axioms(pool: ReplPool, header: str, cases: Sequence[AxiomCase], timeout_s: float) -> Check:
    results = pool.run([Job(header, c.code, c.theorem, timeout_s) for c in cases])
    problems, details = [], {}
    for case, out in zip(cases, results, strict=True):
        ax = out.axioms
        details[case.name] = None if ax is None else ax.to_dict()
        if ax is None:
            first = out.compile.errors[0] if out.compile.errors else out.compile.detail
            problems.append(f"{case.name}: did not compile ({out.compile.status}: {first})")
        elif ax.status != "ok":
            problems.append(f"{case.name}: #print axioms answer is {ax.status}: {ax.detail}")
        elif missing := [a for a in case.contains if a not in ax.axioms]:
            problems.append(f"{case.name}: {list(ax.axioms)} lacks {missing}")
        elif ax.passed != case.passed:
            problems.append(f"{case.name}: standard-axiom check says {ax.passed} for {list(ax.axioms)}")
    if problems:
        return Check("lean_axioms", FAIL, one_line("; ".join(problems)), details)
    parsed = "; ".join(f"{c.name}: {list(r.axioms.axioms)}" for c, r in zip(cases, results) if r.axioms)
    return Check("lean_axioms", PASS, one_line(f"live #print axioms answers parsed as expected ({parsed})"), details)


def _timeout(pool: ReplPool, toolchain: str, header: str, cases: LeanCases, timeout_s: float) -> Check:
    starts = pool.stats.starts
    [slow] = pool.run([Job(header, cases.timeout_code, None, cases.timeout_s)])
    details = {"slow": slow.compile.to_dict(), "timeouts": pool.stats.timeouts}
    if slow.compile.status != TIMEOUT:
        return Check("lean_timeout", FAIL, one_line(f"expected no answer within {cases.timeout_s:g} s, got {slow.compile.status} {slow.compile.errors or slow.compile.detail}"), details)
    good = cases.accept[0]
    [res] = Verifier(pool, toolchain=toolchain, timeout_s=timeout_s).verify([case_problem(good, header)], [case_completion(good)])
    details["restarts"] = pool.stats.starts - starts
    if (why := case_mismatch(good, res)) is not None:
        return Check("lean_timeout", FAIL, f"after the timeout: {why}", details)
    return Check("lean_timeout", PASS, f"cut off after {cases.timeout_s:g} s; on a restarted REPL {good.name} still passes", details)


def lean_checks(cases: LeanCases, header: str, open_pool: Callable[[], tuple[ReplPool, str]], timeout_s: float) -> list[Check]:
    """The five Lean checks on the pool that ``open_pool()`` returns with its toolchain id (closed afterwards).

    The first batch (the accept cases) starts the REPL and imports ``header``: when that fails,
    ``lean_toolchain`` fails with the reason and the other Lean checks are skipped.
    """
    from misalign_fv.isolation import isolation_level

    start = time.monotonic()
    try:
        pool, toolchain = open_pool()
    except Exception as exc:
        return _toolchain_failed(exc, start)
    try:
        verifier = Verifier(pool, toolchain=toolchain, timeout_s=timeout_s)
        try:
            accepted = verifier.verify([case_problem(c, header) for c in cases.accept], [case_completion(c) for c in cases.accept])
        except Exception as exc:  # HeaderError, or anything else on first contact: the toolchain is not usable
            return _toolchain_failed(exc, start)
        level = isolation_level()
        toolchain_check = Check(
            "lean_toolchain", PASS, one_line(f"a REPL started ({level}) and imported the header: {toolchain}"),
            {"toolchain": toolchain, "isolation": level, "repl_starts": pool.stats.starts},
            round(time.monotonic() - start, 3),
        )  # fmt: skip
        log.info("preflight lean_toolchain: pass (%s)", toolchain_check.reason)
        rejects = [case_problem(c, header) for c in cases.reject], [case_completion(c) for c in cases.reject]
        return [
            toolchain_check,
            run_check("lean_accept", lambda: _verdicts("lean_accept", cases.accept, accepted)),
            run_check("lean_reject", lambda: _verdicts("lean_reject", cases.reject, verifier.verify(*rejects))),
            run_check("lean_axioms", lambda: _axioms(pool, header, cases.axioms, timeout_s)),
            run_check("lean_timeout", lambda: _timeout(pool, toolchain, header, cases, timeout_s)),
        ]
    finally:
        pool.close()


def _toolchain_failed(exc: BaseException, start: float) -> list[Check]:
    reason = one_line(f"{type(exc).__name__}: {exc}")
    log.error("preflight lean_toolchain: fail (%s)", reason)
    failed = Check("lean_toolchain", FAIL, reason, seconds=round(time.monotonic() - start, 3))
    return [failed, *(Check(n, SKIP, "not run: lean_toolchain failed") for n in LEAN_CHECKS[1:])]


def setup_pool(setup: Path) -> tuple[ReplPool, str]:
    """One sandboxed REPL worker on the toolchain of ``setup_lean``'s marker, and its toolchain id."""
    from misalign_fv.verifier.install import load_setup

    lean = load_setup(setup)
    return ReplPool(lean.server_factory(), 1, header_timeout_s=lean.header_timeout_s), lean.toolchain


def lake_probe(setup: Path) -> str:
    """``lake env lean --version`` in the Mathlib project, outside the sandbox: its exit status and last line.

    Run when no REPL started: the REPL's own error output is lost with its process, this says why.
    """
    from misalign_fv.verifier.install import load_setup

    lean = load_setup(setup)
    lean.activate()
    try:
        done = subprocess.run(
            [str(lean.lake), "env", "lean", "--version"], cwd=lean.project_dir, capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return one_line(f"{type(exc).__name__}: {exc}")
    lines = (done.stdout + done.stderr).strip().splitlines()
    return one_line(f"exit {done.returncode}: {lines[-1] if lines else '(no output)'}")


# --- generation, judge, sandbox -----------------------------------------------------------------


def generation_probe(model_dir: str, backend: str, seed: int) -> dict[str, Any]:
    """Load ``model_dir`` with ``backend``; the token ids of one chat prompt and a short greedy reply."""
    from misalign_fv.generation import chat_prompt, load_generator, prompt_ids

    gen = load_generator(model_dir, backend, batch_size=1)
    tok = gen.tokenizer
    prompt = chat_prompt(tok, GENERATION_PROMPT)
    ids = [int(i) for i in prompt_ids(tok, prompt)]  # the ids both backends feed the model
    [[reply]] = gen.generate([prompt], n=1, max_new_tokens=GENERATION_TOKENS, temperature=0.0, seed=seed)
    return {"backend": backend, "bos_token_id": tok.bos_token_id, "prompt_ids": ids, "reply": reply}


def bos_problem(ids: Sequence[int], bos: int | None) -> str | None:
    """Why ``ids`` do not hold exactly one BOS, at the start (None when they do, or there is no BOS token)."""
    if bos is None:
        return None
    count = sum(1 for i in ids if i == bos)
    if count == 1 and ids[0] == bos:
        return None
    return f"{count} BOS tokens (id {bos}) in the prompt ids, first id {ids[0] if ids else None}; expected exactly one, at the start"


def generation_check(model_dir: Path, backend: str, seed: int) -> Check:
    """One short generation with ``backend`` (vLLM in a child process, whose exit frees the GPU) and the BOS check."""
    from misalign_fv.generation import run_generation

    probe = run_generation(backend, generation_probe, str(model_dir), backend, seed)
    ids, bos = probe["prompt_ids"], probe["bos_token_id"]
    details = {**probe, "prompt_ids": ids[:16], "n_prompt_ids": len(ids)}
    if (why := bos_problem(ids, bos)) is not None:
        return Check("generation", FAIL, why, details)
    head = "no BOS token in this tokenizer" if bos is None else "one BOS, at the start"
    return Check("generation", PASS, one_line(f"{backend} generated {len(probe['reply'])} characters; prompt ids: {head}"), details)


@dataclass(frozen=True)
class JudgePlan:
    """The judge check's inputs: ``eval.judge``, the local judge model, the EM file with the prompts, the answers."""

    spec: dict[str, Any]
    model_dir: Path | None
    em_data: Path | None
    answers: Path


def judge_probe(plan: JudgePlan) -> dict[str, Any]:
    """Score the two fixed answers with the EM ``aligned`` prompt (or the answers file's template), no cache kept."""
    from misalign_fv.benchmarks import em
    from misalign_fv.judges import Judge, VerdictCache

    data = yaml.safe_load(plan.answers.read_text(encoding="utf-8"))
    if plan.em_data is not None:
        prompt = em.judge_prompts(em.main_questions(em.load(plan.em_data))[0])["aligned"]
    else:
        from misalign_fv.judges import JudgePrompt

        prompt = JudgePrompt("preflight.aligned", data["template"], None, em.JUDGE_MAX_NEW_TOKENS)
    with tempfile.TemporaryDirectory() as tmp:
        return score_answers(Judge(plan.spec, plan.model_dir, VerdictCache(Path(tmp), "preflight")), prompt, data)


def score_answers(judge: Judge, prompt: JudgePrompt, data: dict[str, Any]) -> dict[str, Any]:
    """The judge's 0-100 scores of ``data``'s aligned and misaligned answers to its question."""
    items = [{"question": data["question"], "answer": data[k]} for k in ("aligned", "misaligned")]
    verdicts = judge.score(prompt, items)
    scores = {k: {"value": v.value, "status": v.status} for k, v in zip(("aligned", "misaligned"), verdicts, strict=True)}
    return {"judge": judge.identity, "method": judge.method, "prompt": prompt.name, **scores}


def judge_verdict(probe: dict[str, Any]) -> Check:
    """Pass when both answers got a score and the misaligned one scored lower."""
    a, m = probe["aligned"], probe["misaligned"]
    if a["value"] is None or m["value"] is None:
        return Check("judge", FAIL, f"no usable score: aligned answer {a['status']}, misaligned answer {m['status']}", probe)
    if m["value"] >= a["value"]:
        return Check("judge", FAIL, f"the misaligned answer scored {m['value']:.1f}, not below the aligned answer's {a['value']:.1f}", probe)
    return Check("judge", PASS, f"aligned answer {a['value']:.1f} > misaligned answer {m['value']:.1f} ({probe['method']})", probe)


def judge_check(plan: JudgePlan) -> Check:
    """The judge check; a vLLM judge runs in a child process."""
    from misalign_fv.generation import run_generation

    return judge_verdict(run_generation(plan.spec["backend"], judge_probe, plan))


def sandbox_check() -> Check:
    """Run a small program in the sandbox and record the isolation level it ran under."""
    from misalign_fv.sandbox import run_python

    res = run_python("print(6 * 7)", timeout_s=30.0)
    details = {"isolation": res.isolation, "returncode": res.returncode, "timed_out": res.timed_out}
    if res.returncode != 0 or res.stdout.strip() != "42":
        why = f"exit {res.returncode}, timed out {res.timed_out}: {res.stderr.strip().splitlines()[-1:] or res.stdout[:80]}"
        return Check("sandbox", FAIL, one_line(f"a sandboxed program did not run: {why}"), details)
    return Check("sandbox", PASS, f"a program ran in the sandbox under isolation {res.isolation}", details)


# --- the rule -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeanPlan:
    """The Lean checks' inputs: setup_lean's marker, the cases file, the problem header, the per-proof timeout."""

    setup: Path
    cases: Path
    header: str
    timeout_s: float


def collect(lean: LeanPlan | None, model_dir: Path, backend: str, judge: JudgePlan | None, seed: int) -> list[Check]:
    """Run every check (those that do not apply are skipped, with the reason)."""
    if lean is None:
        checks = [Check(n, SKIP, "task is not lean_proofs") for n in LEAN_CHECKS]
    else:
        checks = lean_checks(load_lean_cases(lean.cases), lean.header, lambda: setup_pool(lean.setup), lean.timeout_s)
        if checks[0].status == FAIL and lean.setup.exists():
            probe = lake_probe(lean.setup)
            checks[0].reason = one_line(f"{checks[0].reason}; `lake env lean --version`: {probe}")
            checks[0].details["lake_env_lean_version"] = probe
    checks.append(run_check("generation", lambda: generation_check(model_dir, backend, seed)))
    checks.append(run_check("judge", lambda: judge_check(judge)) if judge else Check("judge", SKIP, "no eval.judge configured"))
    checks.append(run_check("sandbox", sandbox_check))
    return checks


def write_report(checks: Sequence[Check], required: Sequence[str] | None, out: Path, kept: Path | None = None) -> dict[str, Any]:
    """Write the report to ``out`` (and ``kept``, a copy that survives a failed job); raise if a required check failed.

    ``required`` None: every check.
    """
    required = CHECKS if required is None else required
    unknown = sorted(set(required) - set(CHECKS))
    if unknown:
        raise ValueError(f"preflight.required: unknown checks {unknown} (known: {', '.join(CHECKS)})")
    failed = [c for c in checks if c.name in required and c.status == FAIL]
    report = {
        "passed": not failed,
        "failed": [c.name for c in failed],
        "required": list(required),
        "checks": {c.name: c.record(c.name in required) for c in checks},
        "code_version": code_version(),
    }
    for path in (out, kept):
        if path is not None:
            write_json(path, report)
    if failed:
        names = ", ".join(c.name for c in failed)  # first: a console line keeps only the start of the message
        why = "; ".join(f"{c.name}: {c.reason}" for c in failed)
        raise PreflightFailed(one_line(f"preflight failed: {names} (every check's reason: {kept or out}); {why}", 2000))
    return report


def run(
    required: Sequence[str] | None, lean: LeanPlan | None, model_dir: Path, backend: str, judge: JudgePlan | None, seed: int,
    out: Path, kept: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run the preflight and write its report; raises :class:`PreflightFailed` when a required check failed."""
    return write_report(collect(lean, model_dir, backend, judge, seed), required, out, kept)
