"""OS isolation: hostile programs, run as Python candidates and as a wrapped Lean REPL command.

Each program tries to leave the sandbox: read a secret file and the caller's environment,
write outside its scratch directory, reach the network, signal its parent (and every process
it can), leave a ``setsid`` child running, fork-bomb.  Nothing may succeed, the caller must stay
alive and no process may be left afterwards.  Skipped where user namespaces are unavailable
(there the fallback is documented as weaker; these programs would hit the caller).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from test_sandbox import procs_with

from misalign_fv.isolation import NAMESPACES, interpreter, isolation_level
from misalign_fv.sandbox import NPROC_LIMIT, run_python, run_tests
from misalign_fv.verifier.repl import IsolatedLeanServer, repl_command

pytestmark = pytest.mark.skipif(isolation_level() != NAMESPACES, reason="user namespaces unavailable here")

# Tries everything; prints one JSON report.  {secret}, {outside}, {port}, {caller}, {token} are filled in.
HOSTILE = """
import json, os, signal, socket, subprocess, sys, time
report = {{}}
def attempt(name, fn):
    try:
        report[name] = fn()
    except BaseException as exc:
        report[name] = "blocked: " + type(exc).__name__
attempt("read_secret", lambda: open({secret!r}).read())
attempt("read_caller_env", lambda: open("/proc/{caller}/environ", "rb").read().decode(errors="replace"))
attempt("see_caller", lambda: os.path.exists("/proc/{caller}"))
attempt("pids", lambda: sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
attempt("write_outside", lambda: open({outside!r}, "w").write("escaped"))
attempt("write_parent_dir", lambda: open("../escaped.txt", "w").write("escaped"))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=1) and "connected")
attempt("setsid_child", lambda: subprocess.Popen(["sleep", "30", {token!r}], start_new_session=True).pid)
attempt("kill_parent", lambda: os.kill(os.getppid(), signal.SIGKILL) or "sent")
attempt("kill_all", lambda: os.kill(-1, signal.SIGKILL) or "sent")
print(json.dumps(report), flush=True)
"""


def hostile(tmp_path: Path, port: int, token: str) -> tuple[str, Path, Path]:
    """The hostile program, the secret it tries to read and the path it tries to write."""
    secret = tmp_path / "hidden_tests.jsonl"
    secret.write_text("assert f(2) == 5\n")
    outside = tmp_path / "escaped.txt"
    code = HOSTILE.format(secret=str(secret), caller=os.getpid(), outside=str(outside), port=port, token=token)
    return code, secret, outside


def check_report(report: dict, outside: Path, token: str) -> None:
    """Nothing the hostile program tried got through; nothing is left running."""
    assert report["read_secret"].startswith("blocked"), report["read_secret"]
    assert report["read_caller_env"].startswith("blocked")
    assert report["see_caller"] is False
    assert report["write_outside"].startswith("blocked") and not outside.exists()
    assert report["connect"].startswith("blocked")
    assert os.getpid() > 0  # the caller is alive: it is running this
    deadline = time.monotonic() + 2
    while procs_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert procs_with(token) == []


@pytest.fixture()
def listener():
    """A TCP listener on the host's loopback that the sandbox must not reach."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_a_hostile_candidate_is_contained(tmp_path: Path, listener: int) -> None:
    token = f"survivor-{time.monotonic_ns()}"
    code, _, outside = hostile(tmp_path, listener, token)
    res = run_python(code, timeout_s=10)
    assert res.isolation == NAMESPACES
    report = json.loads(res.stdout.splitlines()[0])
    assert report["pids"] == [1]  # it sees only itself
    assert {"kill_parent", "kill_all"} <= set(report)  # tried; the caller (this test) is unharmed
    check_report(report, outside, token)


@pytest.mark.parametrize("seed", range(4))
def test_fuzzed_hostile_candidates_never_pass_and_leave_nothing(tmp_path: Path, listener: int, seed: int) -> None:
    """The same attacks, shuffled and run inside the function under test, against unsatisfiable tests."""
    import random

    token = f"fuzz-{seed}-{time.monotonic_ns()}"
    code, _, outside = hostile(tmp_path, listener, token)
    lines = code.strip().splitlines()
    header, attempts, footer = lines[:6], lines[6:-1], lines[-1]
    random.Random(seed).shuffle(attempts)
    body = "\n".join("    " + line for line in [*header, *attempts, footer.replace("print(", "open('/tmp/r', 'w').write(")])
    program = f"def f(x):\n{body}\n    return {random.Random(seed).choice(['x', 'None', '[x]', 'float(x)'])}\n"
    assert run_tests(program, ["assert f(2) == 5", "assert f(3) == f(3) + 1"]) == [False, False]
    check_report({"read_secret": "blocked", "read_caller_env": "blocked", "see_caller": False,
                  "write_outside": "blocked", "connect": "blocked"}, outside, token)  # fmt: skip


def test_a_fork_bomb_hits_the_process_limit_within_a_second() -> None:
    bomb = (
        "import os, time\n"
        "start = time.monotonic()\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        if os.getpid() == 1:\n"
        "            print(time.monotonic() - start, len([p for p in os.listdir('/proc') if p.isdigit()]), flush=True)\n"
        "            time.sleep(60)\n"
    )
    start = time.monotonic()
    res = run_python(bomb, timeout_s=3)
    assert res.timed_out and time.monotonic() - start < 8
    first_refusal_s, processes = res.stdout.split()[:2]
    assert float(first_refusal_s) < 1.0
    assert int(processes) <= NPROC_LIMIT
    assert run_python("print('after')").stdout == "after\n"  # the machine is still usable


def test_the_lean_repl_wrapper_contains_a_hostile_command(tmp_path: Path, listener: int) -> None:
    token = f"repl-{time.monotonic_ns()}"
    code, _, outside = hostile(tmp_path, listener, token)
    project = tmp_path / "project"
    project.mkdir()
    (project / "hostile.py").write_text(code)
    argv = repl_command([interpreter(), "-I", str(project / "hostile.py")], readable=[], cwd=str(project), memory_mb=512)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd="/")
    report = json.loads(done.stdout.splitlines()[0])
    check_report(report, outside, token)
    assert report["write_parent_dir"].startswith("blocked")  # the project is read-only
    assert not (project / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()


def test_isolated_lean_server_runs_the_repl_in_the_sandbox(tmp_path: Path) -> None:
    """``lake env <repl>`` started by the server: here a stand-in lake that reports where it runs."""
    lake = tmp_path / "elan" / "bin" / "lake"
    lake.parent.mkdir(parents=True)
    lake.write_text(f"#!/bin/sh\nexec {interpreter()} -I -c 'import os; print(os.getpid(), os.getcwd(), flush=True)'\n")
    lake.chmod(0o755)
    project, repl = tmp_path / "mathlib4", tmp_path / "repl"
    project.mkdir()
    repl.mkdir()
    server = object.__new__(IsolatedLeanServer)  # LeanServer.__init__ insists on a real Lean setup
    server.config = type("Config", (), {"lake_path": str(lake), "_cache_repl_dir": str(repl), "working_dir": str(project), "memory_hard_limit_mb": 512})()
    server.readable = [lake.parent.parent]
    server.isolation = isolation_level()
    server._proc = None
    try:
        server.start()
        assert server._proc.stdout.readline().split() == ["1", str(project)]  # pid 1 of its own namespace
    finally:
        server._proc.kill()
        server._proc.wait()
    with pytest.raises(FileNotFoundError, match="lake not found"):
        server.config.lake_path = str(tmp_path / "missing")
        server.start()
