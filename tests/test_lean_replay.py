"""Replay of recorded Lean REPL transcripts at the transport boundary, and its own checks.

``ReplayServer`` is a real lean-interact ``LeanServer`` whose process is not ``lake env repl``
but this file run as a script: it reads the REPL's blank-line-separated JSON requests on stdin
and answers each one with the response *recorded* for that request in
``../shared/fixtures/lean_repl`` (matched on the command text, trailing whitespace ignored, and
the env id).  A request with no recorded answer makes the process exit with an error on
stderr, so nothing is ever made up.  An entry may instead say ``hang`` (never answer: what a
timed-out REPL does) or ``die`` (exit mid-request: a crash).  Everything between the pipe and
the verifier - framing, the hard timeout and the kill, parsing into ``CommandResponse`` /
``LeanError`` models - is lean-interact's real code.

Every request the process receives is appended to a log file, so tests can assert what was
(never) sent to a REPL.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from lean_interact import LeanServer
from lean_interact.interface import Command, CommandResponse, LeanError, ProofStepResponse

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "lean_repl"
ANY_ENV = "any"


def transcript(path: Path) -> list[tuple[dict[str, Any], str]]:
    """(request, raw response text) pairs of one recorded ``X.in`` / ``X.expected.out`` pair."""
    split = re.compile(r"\n\s*\n")
    requests = [json.loads(b, strict=False) for b in split.split(path.read_text().strip()) if b.strip()]
    out = path.with_name(path.name[: -len(".in")] + ".expected.out")
    answers = [b for b in split.split(out.read_text().strip()) if b.strip()]
    assert len(requests) == len(answers), path
    return list(zip(requests, answers))


def recorded(rel: str, index: int) -> tuple[dict[str, Any], str]:
    """Request ``index`` of fixture ``rel`` (e.g. ``repl_fork_v4.9.0-rc2/incomplete.in``) and its answer."""
    return transcript(FIXTURES / rel)[index]


def kimina(name: str) -> tuple[str, dict[str, Any] | None]:
    """A kimina match pair: the input ``.lean`` file and the recorded REPL response (None: timed out).

    The stored envelope adds ``time`` and, for Goedel outputs, omits ``env``; ``time`` is dropped
    and a dummy ``env`` added, as PROVENANCE.md describes.
    """
    base = FIXTURES / "kimina_match_v4.15.0"
    source = (base / "input" / f"{name}.lean").read_text()
    result = json.loads((base / "output" / f"{name}.json").read_text())["results"][0]
    if result["response"] is None:
        assert result["error"] == "Lean process timed out"
        return source, None
    response = {k: v for k, v in result["response"].items() if k != "time"}
    return source, {"env": 1, **response}


def entry(cmd: str, env: int | str | None, raw: str | None = None, action: str | None = None) -> dict[str, Any]:
    """One recording entry: answer ``raw`` (verbatim REPL text) or perform ``action``.

    Actions: ``hang`` (never answer), ``die`` (exit without answering), ``die_once`` (exit the
    first time this command arrives, answer ``raw`` afterwards).
    """
    assert raw is not None or action in ("hang", "die")
    return {"cmd": cmd.rstrip(), "env": env, "raw": raw, "action": action}


class ReplayServer(LeanServer):
    """A ``LeanServer`` whose process replays ``recording`` (a JSON list of :func:`entry`)."""

    def __init__(self, recording: Path, log: Path) -> None:
        """Start the replay process (no Lean toolchain is needed or looked for)."""
        self.recording, self.log = recording, log
        self.config = SimpleNamespace(  # what LeanServer reads from its LeanREPLConfig
            enable_incremental_optimization=False, enable_parallel_elaboration=False,
            memory_hard_limit_mb=None, lean_version="replay",
        )  # fmt: skip
        self._proc = None
        self._lock = threading.Lock()
        self.start()

    def start(self) -> None:
        """Spawn this file as the replay process (own session, as LeanServer does)."""
        self._proc = subprocess.Popen(
            [sys.executable, __file__, str(self.recording), str(self.log)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            encoding="utf-8", text=True, bufsize=1, start_new_session=True,
        )  # fmt: skip


def axioms_answer(theorem: str, axioms: list[str], env: int) -> str:
    """The REPL's answer to ``#print axioms <theorem>``, in the documented message format.

    The recorded transcripts contain no ``#print axioms`` request, so this one answer is written
    out from documentation, not recorded: Lean prints one info message
    ``'<name>' depends on axioms: [a, b]`` or ``'<name>' does not depend on any axioms``
    (Lean's ``Lean.Elab.Print``; checked by ``#guard_msgs`` in lean-by-example's
    ``Print.lean``/``ApplyQuestion.lean`` at v4.9.0-rc2, and the Lean reference manual's
    "Validating a Lean Proof"), as a REPL ``CommandResponse`` with the usual fields.
    """
    text = f"'{theorem}' depends on axioms: [{', '.join(axioms)}]" if axioms else f"'{theorem}' does not depend on any axioms"
    message = {"severity": "info", "pos": {"line": 1, "column": 0}, "endPos": {"line": 1, "column": 13}, "data": text}
    return json.dumps({"messages": [message], "env": env})


def replay_factory(tmp: Path, entries: list[dict[str, Any]]):
    """A server factory for ``ReplPool`` plus the path of the request log."""
    recording, log = tmp / "recording.json", tmp / "requests.jsonl"
    recording.write_text(json.dumps(entries))
    return (lambda: ReplayServer(recording, log)), log


def sent(log: Path) -> list[dict[str, Any]]:
    """Every request the replay processes received."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _serve(recording: Path, log: Path) -> None:
    """The replay process: answer blank-line-separated JSON requests from stdin."""
    entries = json.loads(recording.read_text())
    buf = ""
    for line in sys.stdin:
        if line.strip():
            buf += line
            continue
        if not buf.strip():
            continue
        request, buf = json.loads(buf), ""
        with open(log, "a") as fh:
            fh.write(json.dumps(request) + "\n")
        cmd, env = request.get("cmd", "").rstrip(), request.get("env")
        match = next((e for e in entries if e["cmd"] == cmd and e["env"] in (env, ANY_ENV)), None)
        if match is None:
            sys.stderr.write(f"replay: no recorded answer for {json.dumps(request)[:300]}\n")
            sys.exit(3)
        if match["action"] == "hang":
            time.sleep(3600)
        if match["action"] == "die":
            os._exit(1)
        if match["action"] == "die_once":
            flag = log.with_name(f"died-{hashlib.sha256(cmd.encode()).hexdigest()[:16]}")
            if not flag.exists():
                flag.touch()
                os._exit(1)
        sys.stdout.write(match["raw"].strip() + "\n\n")
        sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# Checks of the replay itself: every recorded answer goes through lean-interact unchanged.


def all_pairs() -> list[tuple[str, dict[str, Any], str]]:
    """Every (fixture, request, answer) of both recorded REPL folders."""
    out = []
    for folder in ("repl_fork_v4.9.0-rc2", "repl_upstream_v4.33.0-rc2"):
        for path in sorted((FIXTURES / folder).rglob("*.in")):
            if path.with_name(path.name[:-3] + ".expected.out").exists():
                out += [(str(path.relative_to(FIXTURES)), q, a) for q, a in transcript(path)]
    return out


def test_every_recorded_answer_parses_into_lean_interact_models(shared: Path) -> None:
    kinds = {"cmd": 0, "proof": 0, "error": 0}
    for where, request, answer in all_pairs():
        data = json.loads(answer, strict=False)
        if set(data) == {"message"}:
            LeanError.model_validate(data)
            kinds["error"] += 1
        elif "proofState" in request or "proofStatus" in data:
            ProofStepResponse.model_validate(data)
            kinds["proof"] += 1
        else:
            CommandResponse.model_validate(data)
            kinds["cmd"] += 1
    # PROVENANCE.md: 461 responses = 285 CommandResponse, 157 ProofStepResponse, 19 LeanError
    assert kinds == {"cmd": 285, "proof": 157, "error": 19}


def test_replay_server_answers_through_lean_interact_run(shared: Path, tmp_path: Path) -> None:
    q1, a1 = recorded("repl_fork_v4.9.0-rc2/Mathlib/test/H20231020.in", 0)
    q2, a2 = recorded("repl_fork_v4.9.0-rc2/Mathlib/test/H20231020.in", 1)
    assert q1["cmd"].startswith("import Mathlib") and "env" not in q1 and q2["env"] == 0
    factory, log = replay_factory(tmp_path, [entry(q1["cmd"], None, a1), entry(q2["cmd"], 0, a2)])
    server = factory()
    try:
        header = server.run(Command(cmd=q1["cmd"]), timeout=30)
        assert isinstance(header, CommandResponse) and header.env == 0
        proof = server.run(Command(cmd=q2["cmd"], env=0), timeout=30)
        assert isinstance(proof, CommandResponse) and proof.env == 1 and not proof.messages
        with pytest.raises(ConnectionAbortedError):  # unrecorded request: the process exits
            server.run(Command(cmd="theorem t : True := trivial", env=0), timeout=30)
    finally:
        server.kill()
    assert [r.get("cmd") for r in sent(log)] == [q1["cmd"], q2["cmd"], "theorem t : True := trivial"]


if __name__ == "__main__":  # the replay process
    _serve(Path(sys.argv[1]), Path(sys.argv[2]))
