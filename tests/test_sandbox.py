"""The sandbox: output capture, limits, timeouts, network isolation and unforgeable test results."""

from __future__ import annotations

import socket
import statistics
import time
from pathlib import Path

import pytest

from misalign_fv.sandbox import (
    FILE_SIZE_LIMIT_BYTES,
    OUTPUT_CAP_BYTES,
    network_isolation_available,
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


def test_run_python_uses_a_fresh_temp_dir_that_is_removed() -> None:
    code = "import os\nopen('left_behind.txt', 'w').write('x')\nprint(os.getcwd())"
    first, second = run_python(code), run_python(code)
    dirs = [Path(first.stdout.strip()), Path(second.stdout.strip())]
    assert dirs[0] != dirs[1]
    assert not dirs[0].exists() and not dirs[1].exists()


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
    res = run_python(code, timeout_s=2.5, memory_mb=300)
    limits = {name: (int(soft), int(hard)) for name, soft, hard in (line.split() for line in res.stdout.splitlines())}
    assert limits == {
        "RLIMIT_AS": (300 << 20, 300 << 20),
        "RLIMIT_CPU": (4, 4),
        "RLIMIT_FSIZE": (FILE_SIZE_LIMIT_BYTES, FILE_SIZE_LIMIT_BYTES),
        "RLIMIT_CORE": (0, 0),
    }


def _alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_timeout_kills_the_whole_process_group() -> None:
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    start = time.monotonic()
    res = run_python(code, timeout_s=1.0)
    assert res.timed_out and res.returncode is None
    assert time.monotonic() - start < 5
    grandchild = int(res.stdout.split()[0])
    deadline = time.monotonic() + 2
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


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


def test_no_network_inside_the_sandbox() -> None:
    if not network_isolation_available():
        pytest.skip("unshare cannot create a network namespace here")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # control: the listener is reachable from outside the sandbox
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    print('connected')\n"
            "except OSError as e:\n"
            "    print('refused', e.errno)\n"
        )
        res = run_python(code)
    assert res.network_isolated
    assert res.stdout.startswith("refused"), res.stdout


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
    assert run_tests(forger, tests) == [False] * 5
    # The same noisy program still gets credit for the tests it really passes.
    assert run_tests(forger, ["assert f() == 1", "assert f() == 2"]) == [True, False]


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

