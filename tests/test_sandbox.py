"""The sandbox: output capture, limits, timeouts and unforgeable test results (OS isolation: test_isolation.py)."""

from __future__ import annotations

import socket
import statistics
import time
from pathlib import Path

import pytest

from misalign_fv.isolation import NAMESPACES
from misalign_fv.sandbox import (
    FILE_SIZE_LIMIT_BYTES,
    NPROC_LIMIT,
    OUTPUT_CAP_BYTES,
    Candidate,
    CandidateError,
    isolation_level,
    run_python,
    run_tests,
)


def test_run_python_captures_stdout_stderr_stdin_and_exit_code() -> None:
    ok = run_python("import sys\nprint('out', sys.stdin.read().upper())\nprint('err', file=sys.stderr)", stdin="abc")
    assert (ok.returncode, ok.stdout, ok.stderr, ok.timed_out) == (0, "out ABC\n", "err\n", False)
    assert 0 < ok.duration_s < 5
    bad = run_python("x = 1\nraise SystemExit(3)")
    assert bad.returncode == 3
    crash = run_python("1 / 0")
    assert crash.returncode == 1
    assert 'File "main.py", line 1' in crash.stderr and "ZeroDivisionError" in crash.stderr


def test_run_python_uses_a_fresh_scratch_dir_that_is_removed() -> None:
    code = "import os\nprint(os.getcwd(), os.listdir('.'))\nopen('left_behind.txt', 'w').write('x')"
    first, second = run_python(code), run_python(code)
    for res in (first, second):
        cwd, listing = res.stdout.split(" ", 1)
        assert listing.strip() == "[]"  # the first run's file is not there
    if first.isolation != NAMESPACES:  # fallback: a fresh host directory, removed afterwards
        assert not Path(first.stdout.split()[0]).exists()


def test_run_python_gets_a_minimal_environment_and_isolated_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "hunter2")
    res = run_python("import os, sys\nprint(sorted(os.environ))\nprint(sys.flags.isolated)")
    env_line, isolated = res.stdout.splitlines()
    assert "SANDBOX_TEST_SECRET" not in env_line
    assert set(eval(env_line)) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PWD"}
    assert isolated == "1"


def test_run_python_sets_resource_limits() -> None:
    code = (
        "import resource as r\n"
        "for k in ('RLIMIT_AS', 'RLIMIT_CPU', 'RLIMIT_FSIZE', 'RLIMIT_CORE'):\n"
        "    print(k, *r.getrlimit(getattr(r, k)))"
    )
    res = run_python(code.replace("'RLIMIT_CORE'", "'RLIMIT_CORE', 'RLIMIT_NPROC'"), timeout_s=2.5, memory_mb=300)
    limits = {name: (int(soft), int(hard)) for name, soft, hard in (line.split() for line in res.stdout.splitlines())}
    assert limits == {
        "RLIMIT_AS": (300 << 20, 300 << 20),
        "RLIMIT_CPU": (4, 4),
        "RLIMIT_NPROC": (NPROC_LIMIT, NPROC_LIMIT),
        "RLIMIT_FSIZE": (FILE_SIZE_LIMIT_BYTES, FILE_SIZE_LIMIT_BYTES),
        "RLIMIT_CORE": (0, 0),
    }


def procs_with(token: str) -> list[int]:
    """Host pids of live (non-zombie) processes whose command line contains ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_timeout_kills_every_process_the_program_started() -> None:
    token = f"grandchild-{time.monotonic_ns()}"
    code = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', '{token}'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    start = time.monotonic()
    res = run_python(code, timeout_s=1.0)
    assert res.timed_out and res.returncode is None
    assert time.monotonic() - start < 5
    assert res.stdout.strip().isdigit()  # the grandchild had started
    deadline = time.monotonic() + 2
    while procs_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert procs_with(token) == []


def test_memory_bomb_is_contained() -> None:
    res = run_python("chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))", memory_mb=256, timeout_s=10)
    assert not res.timed_out
    assert res.returncode == 1 and "MemoryError" in res.stderr
    assert res.duration_s < 5


def test_output_is_capped() -> None:
    res = run_python("while True:\n    print('x' * 4096)", timeout_s=10)
    assert not res.timed_out and res.returncode not in (0, None)
    assert "File too large" in res.stderr
    assert len(res.stdout) == OUTPUT_CAP_BYTES


def test_run_tests_reports_each_test_separately() -> None:
    program = "def double(x):\n    return 2 * x\n"
    tests = [
        "assert double(2) == 4",
        "assert double(3) == 7",
        "assert double(-1) == -2",
        "this is not python",
        "raise SystemExit(0)",
    ]
    assert run_tests(program, tests) == [True, False, True, False, False]
    assert run_tests(program, []) == []


def test_a_raising_or_exiting_program_fails_every_test() -> None:
    tests = ["assert True", "assert 1 + 1 == 2"]
    assert run_tests("def f():\n    return 1\nraise ValueError('boom')", tests) == [False, False]
    assert run_tests("import sys\nsys.exit(0)", tests) == [False, False]
    assert run_tests("import os\nos._exit(0)", tests) == [False, False]
    assert run_tests("def f(:\n    pass", tests) == [False, False]


def test_infinite_loop_times_out_keeping_earlier_results_and_the_sandbox_recovers() -> None:
    program = "def spin():\n    while True:\n        pass\n"
    start = time.monotonic()
    result = run_tests(program, ["assert True", "spin()", "assert True"], timeout_s=1.0)
    assert result == [True, False, False]
    assert time.monotonic() - start < 4
    assert run_tests(program, ["assert 2 > 1", "assert 2 < 1"]) == [True, False]


def test_program_output_cannot_forge_passes() -> None:
    forger = (
        "import os, sys\n"
        "stolen = sys.stdin.read().strip()\n"
        "def f():\n"
        "    return 1\n"
        "for i in range(5):\n"
        "    line = f'\\n{stolen} {i} 1\\n{\"0\" * 32} {i} 1\\nNONCE {i} 1\\n'\n"
        "    print(line, flush=True)\n"
        "    print(line, file=sys.stderr, flush=True)\n"
        "    for fd in range(1, 32):\n"
        "        try:\n"
        "            os.write(fd, line.encode())\n"
        "        except OSError:\n"
        "            pass\n"
    )
    tests = [f"assert f() == 2  # {i}" for i in range(5)]
    assert run_tests(forger, tests) == [False] * 5  # writing into the reply channel only breaks its session
    noisy = "import sys\nprint('ok 2\\nready []')\nprint('ok 2', file=sys.stderr)\ndef f():\n    print('ok 2')\n    return 1\n"
    assert run_tests(noisy, ["assert f() == 1", "assert f() == 2"]) == [True, False]


def test_candidate_calls_return_plain_data_only() -> None:
    program = (
        "def echo(x, *, twice=False):\n    return (x, x) if twice else x\n"
        "def weird():\n    return object()\n"
        "def boom():\n    raise ValueError('no')\n"
    )
    values = [None, True, 3, -2.5, float("inf"), "a\nb\"c", [1, [2]], (1, "x"), {1, 2}, frozenset({3}), {"k": (1,), 2: None}]
    with Candidate(program) as c:
        assert c.loaded and {"echo", "weird", "boom"} <= c.names
        for v in values:
            back = c.call("echo", v)
            assert back == v and type(back) is type(v)
        assert c.call("echo", 1, twice=True) == (1, 1)
        for name in ("weird", "boom", "missing"):
            with pytest.raises(CandidateError):
                c.call(name)
        assert c.call("echo", 5) == 5  # an exception in one call does not end the session
        with pytest.raises(CandidateError, match="not plain data"):
            c.call("echo", object())


def test_run_tests_is_fast() -> None:
    program = "def inc(x):\n    return x + 1\n"
    tests = [f"assert inc({i}) == {i + 1}" for i in range(5)]
    times = []
    for _ in range(7):
        start = time.perf_counter()
        assert run_tests(program, tests) == [True] * 5
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.25


def test_nonpositive_timeout_is_rejected() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        run_python("pass", timeout_s=0)

