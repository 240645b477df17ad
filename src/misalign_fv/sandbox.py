"""Run model-written Python in a throw-away, resource-limited subprocess.

Each call starts ``sys.executable -I`` (isolated mode: no user site, no ``PYTHON*``
variables, no script directory on ``sys.path``) in a fresh temporary working directory
that is removed afterwards, with a minimal environment, its own session (the whole
process group is killed on the wall-clock timeout), and ``RLIMIT_AS`` / ``RLIMIT_CPU`` /
``RLIMIT_FSIZE`` / ``RLIMIT_CORE`` limits.  Where ``unshare`` can create a network
namespace (checked once per process) the child has no network, not even loopback.
Output goes to unlinked temporary files, capped by ``RLIMIT_FSIZE`` and again when read.

The limits are set by a short bootstrap that runs inside the child before any untrusted
code, not by ``preexec_fn``: ``preexec_fn`` is documented as unsafe with threads (the
graders use a thread pool) and forces a full ``fork`` of the parent, which costs tens of
milliseconds per call from a trainer holding gigabytes, where ``vfork`` costs well under one.

THIS IS RESOURCE CONTAINMENT, NOT A SECURITY BOUNDARY.  It stops accidents and runaway
code (infinite loops, memory bombs, huge outputs, stray network calls, files left
behind) but not a determined adversary: the child runs as the same user, sees the
same filesystem, can raise its own limits when that user is root, and can escape the
process group with ``setsid``.  Run the whole job inside a container or VM (or a
dedicated unprivileged user) when the code may be adversarial.
"""

from __future__ import annotations

import functools
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

OUTPUT_CAP_BYTES = 1 << 20  # bytes of stdout / stderr kept per stream
FILE_SIZE_LIMIT_BYTES = 16 << 20  # RLIMIT_FSIZE: largest file the child may write

# ``unshare`` flags that put the child into a fresh network namespace, tried in order: as root,
# and as an unprivileged user where user namespaces are enabled.
_UNSHARE_FLAGS: tuple[tuple[str, ...], ...] = (("--net",), ("--map-root-user", "--net"))

# Runs first in every child: sets hard and soft limits from a literal list of (name, value).
_BOOTSTRAP = """\
import resource as _r
for _k, _v in {limits!r}:
    _r.setrlimit(getattr(_r, _k), (_v, _v))
del _r, _k, _v
"""

# run_python: execute main.py in the real __main__ namespace (so tracebacks name main.py).
_RUN_MAIN = """\
with open("main.py", encoding="utf-8") as _f:
    _code = compile(_f.read(), "main.py", "exec")
del _f
__file__ = "main.py"
exec(globals().pop("_code"), globals())
"""

# run_tests: stdin holds the nonce line, then a JSON object {program, tests}.  The
# program's own stdout/stderr go to /dev/null; results go to a private copy of fd 1.
_TEST_HARNESS = """\
def _harness():
    import os, sys, json
    data = sys.stdin.buffer.read()
    nonce, payload = data.split(b"\\n", 1)
    job = json.loads(payload)
    del data, payload
    null = os.open(os.devnull, os.O_RDWR)
    out = os.dup(1)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    ns = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        exec(compile(job["program"], "<program>", "exec"), ns)
    except BaseException:
        os._exit(0)
    for i, test in enumerate(job["tests"]):
        try:
            exec(compile(test, "<test %d>" % i, "exec"), ns)
            ok = 1
        except BaseException:
            ok = 0
        os.write(out, b"\\n" + nonce + b" %d %d\\n" % (i, ok))
    os._exit(0)
_harness()
"""


@dataclass
class SandboxResult:
    """Outcome of one sandboxed run (``returncode`` is None when the run was killed on timeout)."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    network_isolated: bool


@functools.cache
def _net_wrapper() -> tuple[str, ...]:
    """The first wrapper that can start Python without network, or () when none works (cached)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for flags in _UNSHARE_FLAGS:
        wrapper = (unshare, *flags)
        try:
            probe = subprocess.run(
                [*wrapper, sys.executable, "-I", "-c", "pass"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return wrapper
    return ()


def network_isolation_available() -> bool:
    """Whether sandboxed runs get their own network namespace on this machine."""
    return bool(_net_wrapper())


def _bootstrap(timeout_s: float, memory_mb: int) -> str:
    limits = [
        ("RLIMIT_AS", memory_mb << 20),
        ("RLIMIT_CPU", math.ceil(timeout_s) + 1),
        ("RLIMIT_FSIZE", FILE_SIZE_LIMIT_BYTES),
        ("RLIMIT_CORE", 0),
    ]
    return _BOOTSTRAP.format(limits=limits)


def _read_capped(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read(OUTPUT_CAP_BYTES).decode("utf-8", errors="replace")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _execute(script: str, stdin: bytes, files: dict[str, str], timeout_s: float) -> SandboxResult:
    """Run ``python -I -c script`` in a fresh temp dir holding ``files``; collect capped output."""
    if timeout_s <= 0:
        raise ValueError(f"sandbox timeout_s must be positive, got {timeout_s}")
    wrapper = _net_wrapper()
    with tempfile.TemporaryDirectory(prefix="sandbox-", ignore_cleanup_errors=True) as work:
        for name, text in files.items():
            with open(os.path.join(work, name), "w", encoding="utf-8") as f:
                f.write(text)
        env = {"PATH": os.defpath, "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        with (
            tempfile.TemporaryFile(dir=work) as fin,
            tempfile.TemporaryFile(dir=work) as fout,
            tempfile.TemporaryFile(dir=work) as ferr,
        ):
            fin.write(stdin)
            fin.seek(0)
            start = time.monotonic()
            proc = subprocess.Popen(
                [*wrapper, sys.executable, "-I", "-c", script],
                cwd=work,
                env=env,
                stdin=fin,
                stdout=fout,
                stderr=ferr,
                start_new_session=True,
            )
            try:
                returncode: int | None = proc.wait(timeout=timeout_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                returncode, timed_out = None, True
            _kill_group(proc.pid)  # also reaps stray children left in the group
            proc.wait()
            duration = time.monotonic() - start
            return SandboxResult(
                returncode=returncode,
                stdout=_read_capped(fout),
                stderr=_read_capped(ferr),
                timed_out=timed_out,
                duration_s=duration,
                network_isolated=bool(wrapper),
            )


def run_python(code: str, *, timeout_s: float = 5.0, memory_mb: int = 1024, stdin: str = "") -> SandboxResult:
    """Run ``code`` as ``__main__`` (file ``main.py``) in a throw-away sandboxed interpreter."""
    script = _bootstrap(timeout_s, memory_mb) + _RUN_MAIN
    return _execute(script, stdin.encode("utf-8"), {"main.py": code}, timeout_s)


def run_tests(
    program: str, tests: Sequence[str], *, timeout_s: float = 5.0, memory_mb: int = 1024
) -> list[bool]:
    """Run ``program`` then each test statement in one sandboxed interpreter; one bool per test.

    Each test (e.g. ``assert f(1) == 2``) runs separately and passes when it raises nothing.
    Results stream back on a private descriptor as lines tagged with a fresh random nonce
    (sent on stdin, read before the program runs), so the program's own output cannot
    forge them.  If the program raises, every test fails; on timeout, tests already
    reported keep their result and the rest fail.  The program runs with ``__name__``
    set to ``"solution"``, so its ``if __name__ == "__main__":`` block is skipped.
    """
    if not tests:
        return []
    nonce = secrets.token_hex(16)
    payload = json.dumps({"program": program, "tests": list(tests)})
    script = _bootstrap(timeout_s, memory_mb) + _TEST_HARNESS
    result = _execute(script, f"{nonce}\n{payload}".encode("utf-8"), {}, timeout_s)
    passed = [False] * len(tests)
    for line in result.stdout.splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[0] == nonce and parts[1].isdigit() and parts[2] in ("0", "1"):
            index = int(parts[1])
            if index < len(tests):
                passed[index] = parts[2] == "1"
    return passed
