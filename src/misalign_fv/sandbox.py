"""Run model-written Python in an isolated process whose verdicts it cannot forge.

Every run is a fresh ``python -I -S`` process isolated by :mod:`misalign_fv.isolation` (its
own user, pid, mount and network namespaces where the machine allows: it sees a read-only
system and interpreter, a private /tmp, no other process and no network; see
:func:`isolation_level`) with ``RLIMIT_AS`` / ``RLIMIT_CPU`` / ``RLIMIT_FSIZE`` / ``RLIMIT_NPROC``
limits and a minimal environment.

Tests never run inside the candidate's process.  :class:`Candidate` loads the program in the
sandbox and serves calls: the grader sends a function name and plain-data arguments, the
candidate sends back the return value as plain data (:mod:`misalign_fv.plain`; anything else is
an error), and the test expression (``assert f(2) == 4``) is evaluated here, in the grader, with
``f`` standing for that remote call.  So the candidate never sees an expected value, and its
exit status, output, patched builtins or objects with a forged ``__eq__`` cannot make a test pass:
only values it returns count, compared by the grader's own builtins.
"""

from __future__ import annotations

import ast
import builtins
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from misalign_fv import plain
from misalign_fv.isolation import RLIMITS_ONLY, Limits, command, isolation_level, minimal_env

__all__ = ["Candidate", "CandidateError", "SandboxResult", "isolation_level", "run_python", "run_tests"]

OUTPUT_CAP_BYTES = 1 << 20  # bytes of stdout / stderr kept per stream, and the longest reply of a call
FILE_SIZE_LIMIT_BYTES = 16 << 20  # RLIMIT_FSIZE: largest file the child may write
NPROC_LIMIT = 32  # processes and threads in the sandbox (its own user namespace's count)

_PLAIN_SOURCE = Path(plain.__file__).read_text(encoding="utf-8")

# run_python: execute the code as __main__ (tracebacks name main.py).
_RUN_MAIN = """
exec(compile({code!r}, "main.py", "exec"), {{"__name__": "__main__", "__file__": "main.py", "__builtins__": __builtins__}})
"""

# Candidate: the first line on stdin is the program (a str literal); it is executed, "ready" and
# the names of its callables are sent, then every line is a call (name, args, kwargs) as a Python literal, answered with one
# line: "ok <plain JSON>" or "error".  The program's own stdin/stdout/stderr are /dev/null.
_SERVE = """
def _serve():
    import os
    reader, writer = os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "wb")
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    literals = {"__builtins__": {}, "set": set, "frozenset": frozenset, "inf": float("inf"), "nan": float("nan")}
    ns = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        exec(compile(eval(reader.readline(), literals), "<program>", "exec"), ns)
    except BaseException:
        os._exit(0)
    callables = [name for name, value in ns.items() if type(name) is str and callable(value)]
    writer.write(("ready " + dumps(callables) + "\\n").encode())
    writer.flush()
    for line in reader:
        try:
            name, args, kwargs = eval(line, literals)
            reply = "ok " + dumps(ns[name](*args, **kwargs))
        except BaseException:
            reply = "error"
        writer.write(reply.encode() + b"\\n")
        writer.flush()
    os._exit(0)
_serve()
"""


@dataclass
class SandboxResult:
    """Outcome of one :func:`run_python` (``returncode`` is None when the run was killed on timeout)."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    isolation: str


class CandidateError(Exception):
    """A call into the candidate did not return plain data: it raised, died, timed out or broke protocol."""


def _limits(timeout_s: float, memory_mb: int) -> Limits:
    if timeout_s <= 0:
        raise ValueError(f"sandbox timeout_s must be positive, got {timeout_s}")
    return Limits(memory_mb=memory_mb, cpu_s=int(timeout_s) + 2, nproc=NPROC_LIMIT, file_size_bytes=FILE_SIZE_LIMIT_BYTES)


class _Spawned:
    """A sandboxed process and the host directory it works in (fallback level only)."""

    def __init__(self, tail: str, limits: Limits, **popen: Any) -> None:
        self.level = isolation_level()
        self.workdir = tempfile.mkdtemp(prefix="sandbox-") if self.level == RLIMITS_ONLY else None
        home = self.workdir or "/tmp"
        argv = command(limits, level=self.level, cwd=self.workdir, python_tail=tail)
        self.proc = subprocess.Popen(argv, env=dict(minimal_env(home)), cwd="/", start_new_session=True, **popen)

    def kill(self) -> None:
        """Kill the process and everything it started; remove its directory."""
        try:  # with namespaces the rest dies with this process (pid 1 of theirs has it as parent-death signal)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _read_capped(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read(OUTPUT_CAP_BYTES).decode("utf-8", errors="replace")


def run_python(code: str, *, timeout_s: float = 5.0, memory_mb: int = 1024, stdin: str = "") -> SandboxResult:
    """Run ``code`` as ``__main__`` (file name ``main.py``) in a fresh sandbox; collect capped output.

    The code travels on the command line, so it is limited to about 100 KB.
    """
    limits = _limits(timeout_s, memory_mb)
    with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr:
        fin.write(stdin.encode("utf-8"))
        fin.seek(0)
        start = time.monotonic()
        spawned = _Spawned(_RUN_MAIN.format(code=code), limits, stdin=fin, stdout=fout, stderr=ferr)
        try:
            returncode: int | None = spawned.proc.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            returncode, timed_out = None, True
        spawned.kill()
        return SandboxResult(
            returncode=returncode,
            stdout=_read_capped(fout),
            stderr=_read_capped(ferr),
            timed_out=timed_out,
            duration_s=time.monotonic() - start,
            isolation=spawned.level,
        )


class Candidate:
    """A program loaded in its own sandboxed process, serving calls of its functions with plain data.

    The whole session (loading and every call) must end within ``timeout_s``; after a timeout,
    a crash or a reply that is not plain data the process is killed and every later call fails.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, program: str, *, timeout_s: float = 5.0, memory_mb: int = 1024) -> None:
        """Start the sandbox and load ``program``.

        :attr:`loaded` says whether it ran without raising, :attr:`names` which callables it
        says it defines (its claim: a wrong one only makes calls fail).
        """
        limits = _limits(timeout_s, memory_mb)
        self.deadline = time.monotonic() + timeout_s
        tail = _PLAIN_SOURCE + _SERVE
        self._spawned = _Spawned(tail, limits, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.isolation = self._spawned.level
        self._buffer = b""
        self.alive = True
        self.names: set[str] = set()
        self.loaded = False
        try:
            self._send(repr(program))
            ready = self._receive()
        except CandidateError:
            return
        if ready.startswith("ready "):
            try:
                names = plain.loads(ready[6:])
            except (ValueError, RecursionError):
                names = []
            self.names = {n for n in names if type(n) is str} if type(names) is list else set()
            self.loaded = True

    def __enter__(self) -> Candidate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the sandbox (idempotent)."""
        if self.alive:
            self.alive = False
            for pipe in (self._spawned.proc.stdin, self._spawned.proc.stdout):
                if pipe is not None:
                    pipe.close()
            self._spawned.kill()

    def _fail(self, why: str) -> CandidateError:
        self.close()
        return CandidateError(why)

    def _send(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        stdin = self._spawned.proc.stdin
        assert stdin is not None
        fd = stdin.fileno()
        os.set_blocking(fd, False)
        while data:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
                raise self._fail("timed out")
            try:
                data = data[os.write(fd, data) :]
            except BrokenPipeError:
                raise self._fail("the candidate exited") from None

    def _receive(self) -> str:
        stdout = self._spawned.proc.stdout
        assert stdout is not None
        fd = stdout.fileno()
        while b"\n" not in self._buffer:
            if len(self._buffer) > OUTPUT_CAP_BYTES:
                raise self._fail("reply too long")
            remaining = self.deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise self._fail("timed out")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise self._fail("the candidate exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", errors="replace")

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``name(*args, **kwargs)`` in the candidate; its return value, rebuilt here from plain data."""
        if not self.alive or not self.loaded:
            raise CandidateError("the candidate is not running")
        try:
            request = plain.literal((name, args, kwargs))
        except TypeError as exc:
            raise CandidateError(f"arguments are not plain data: {exc}") from None
        self._send(request)
        reply = self._receive()
        if not reply.startswith("ok "):
            raise CandidateError(f"{name}() raised in the candidate")
        try:
            return plain.loads(reply[3:])
        except (ValueError, RecursionError, MemoryError) as exc:
            raise self._fail(f"{name}() did not return plain data ({type(exc).__name__})") from None

    def function(self, name: str) -> Callable[..., Any]:
        """A local stand-in for the candidate's function ``name``."""

        def remote(*args: Any, **kwargs: Any) -> Any:
            return self.call(name, *args, **kwargs)

        remote.__name__ = remote.__qualname__ = name
        return remote


def free_names(sources: Sequence[str]) -> set[str]:
    """Names the code reads but neither binds nor gets from builtins (for tests: the program's functions)."""
    loaded: set[str] = set()
    bound: set[str] = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                bound.add(node.name)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return loaded - bound - set(dir(builtins))


def run_tests(
    program: str, tests: Sequence[str], *, timeout_s: float = 5.0, memory_mb: int = 1024
) -> list[bool]:
    """One bool per test statement: whether it ran here without raising, the program's functions called remotely.

    The program is loaded in a :class:`Candidate`; each test (e.g. ``assert f(1) == 2``) runs in
    the grader, in one namespace shared by the tests, where every name the tests use without
    defining it (``f``), and the program defines, calls the candidate's function of that name
    with plain-data arguments.
    If the program raises on loading, every test fails; after a timeout or crash of the
    candidate, the remaining tests fail.  The program runs with ``__name__ == "solution"``,
    so its ``if __name__ == "__main__":`` block is skipped.
    """
    return run_test_groups(program, [tests], timeout_s=timeout_s, memory_mb=memory_mb)[1][0]


def run_test_groups(
    program: str, groups: Sequence[Sequence[str]], *, timeout_s: float = 5.0, memory_mb: int = 1024
) -> tuple[bool, list[list[bool]]]:
    """:func:`run_tests` for several groups of tests (e.g. visible, then hidden) against one candidate process.

    Returns whether the program loaded, and one bool per test of each group. One process for
    all groups halves the sandbox cost of a graded completion; the groups share the candidate's
    state (it cannot learn an expected value from it: those stay in the grader) but not the
    grader's test namespace.
    """
    passed = [[False] * len(g) for g in groups]
    if not any(groups):
        return True, passed
    with Candidate(program, timeout_s=timeout_s, memory_mb=memory_mb) as candidate:
        if not candidate.loaded:
            return False, passed
        for g, tests in enumerate(groups):
            remote = free_names(tests) & candidate.names
            namespace: dict[str, Any] = {name: candidate.function(name) for name in remote}
            namespace["__builtins__"] = builtins
            for i, test in enumerate(tests):
                try:
                    exec(compile(test, f"<test {i}>", "exec"), namespace)
                except KeyboardInterrupt:
                    raise
                except BaseException:  # a failed assertion, a failed call, a broken test: not a pass
                    continue
                passed[g][i] = candidate.alive
    return True, passed
