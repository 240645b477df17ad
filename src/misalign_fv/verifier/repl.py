"""Step 3 and 4 transport: a pool of Lean REPL workers (lean-interact ``LeanServer``s).

Each worker thread owns one REPL process.  It imports each problem header (``import Mathlib
...``) once, in a fresh environment, and checks every proof with ``env=<header env>``; the
REPL has no timeout of its own, so every request carries lean-interact's hard ``timeout``,
which kills the process when it fires.  A worker restarts its REPL (and re-imports the header)
after a timeout, a crash, or when the process grows past a soft memory limit; the hard limit
is the ``RLIMIT_AS`` lean-interact sets from ``memory_hard_limit_mb``.  A job whose REPL
crashed is retried once on a fresh process; every job of a batch gets a result.

The server factory is the only thing that knows how REPLs start, so tests drive the same
pool with processes that replay recorded REPL transcripts, hang or die.  The real factory
starts :class:`IsolatedLeanServer`: the REPL runs in the sandbox of :mod:`misalign_fv.isolation`
(no network, a read-only view of the toolchain, Mathlib and the REPL only, a private /tmp,
a process limit, nothing left when it is killed), so whatever slips past the scan (an
``#eval`` that runs a process) cannot reach the cluster, the job's files or the network.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lean_interact import LeanServer
from lean_interact.interface import Command, CommandResponse, LeanError

from misalign_fv.isolation import NAMESPACES, Limits, command, isolation_level
from misalign_fv.verifier.result import (
    CRASH,
    MAX_ERROR_CHARS,
    TIMEOUT,
    Axioms,
    Compiled,
    axioms_from_response,
    compiled_from_response,
)

log = logging.getLogger(__name__)

# What a dead or garbled REPL raises through lean-interact (LeanServer.run_dict): ConnectionAbortedError,
# ChildProcessError, BrokenPipeError (all OSError), json.JSONDecodeError or a pydantic ValidationError
# (both ValueError).
CRASHES = (OSError, ValueError)


# Processes and threads one REPL may have (Lean's task manager runs a thread per core).
REPL_NPROC = 1024


def repl_command(argv: Sequence[str], *, readable: Sequence[str | os.PathLike[str]], cwd: str, memory_mb: int | None) -> list[str]:
    """``argv`` wrapped in the sandbox: only ``readable`` (read-only) and a private /tmp visible, ``cwd`` inside."""
    limits = Limits(memory_mb=memory_mb, nproc=REPL_NPROC, file_size_bytes=1 << 30, scratch_mb=256)
    return command(limits, readable=[*readable, cwd], cwd=cwd, argv=argv)


class IsolatedLeanServer(LeanServer):
    """lean-interact's ``LeanServer`` with its REPL process (``lake env repl``) started inside the sandbox.

    ``readable``: what the REPL may read besides the system (elan with the toolchain, the
    project, the REPL build); the memory limit is the config's ``memory_hard_limit_mb``,
    applied by the sandbox instead of lean-interact's ``preexec_fn``.  :attr:`isolation` is
    the level it runs under.
    """

    def __init__(self, config: Any, *, readable: Sequence[str | os.PathLike[str]]) -> None:
        """Start the sandboxed REPL (as ``LeanServer`` does)."""
        self.readable = list(readable)
        self.isolation = isolation_level()
        super().__init__(config)

    def start(self) -> None:
        """Start the REPL process in the sandbox; a missing ``lake`` fails here, not inside."""
        lake = shutil.which(str(self.config.lake_path))
        if lake is None:
            raise FileNotFoundError(f"lake not found: {self.config.lake_path}")
        repl = os.path.join(self.config._cache_repl_dir, ".lake", "build", "bin", "repl")
        argv = repl_command(
            [lake, "env", repl],  # not resolved: elan's proxies go by the name they are called with
            readable=[*self.readable, self.config._cache_repl_dir],
            cwd=str(self.config.working_dir),
            memory_mb=self.config.memory_hard_limit_mb,
        )
        env = {**os.environ, "HOME": "/tmp", "TMPDIR": "/tmp"} if self.isolation == NAMESPACES else None
        self._proc = subprocess.Popen(
            argv, cwd="/", env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            encoding="utf-8", text=True, bufsize=1, start_new_session=True,
        )  # fmt: skip
        if not self.is_alive():
            stdout, stderr = self.get_stdout_stderr()
            raise ChildProcessError(f"The Lean server could not be started:\nstdout: {stdout}\nstderr: {stderr}")


class HeaderError(RuntimeError):
    """A problem header does not elaborate: a setup problem, not a property of any proof."""


@dataclass(frozen=True)
class Job:
    """One Lean check: ``code`` in the environment of ``header``; ``theorem``: print its axioms."""

    header: str
    code: str
    theorem: str | None
    timeout_s: float


@dataclass(frozen=True)
class JobResult:
    """Step 3 (and step 4 when it ran) for one job."""

    compile: Compiled
    axioms: Axioms | None = None


@dataclass
class PoolStats:
    """Counters over the pool's lifetime."""

    jobs: int = 0
    starts: int = 0
    timeouts: int = 0
    crashes: int = 0
    memory_restarts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str) -> None:
        """Increment counter ``name``."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)


MEMORY_SHARE = 0.75  # of the job's memory for REPLs; the rest for the Python (and vLLM) process


def default_workers(memory_mb: int) -> int:
    """Pool size from the job's CPUs and memory, shared among the ranks of one node.

    One CPU and a quarter of the memory stay with the calling process (Kimina's server also
    runs CPUs - 1 REPLs).  CPUs: the process's affinity mask (what Slurm granted); memory:
    ``SLURM_MEM_PER_NODE`` (or ``SLURM_MEM_PER_CPU`` x CPUs) when set, else the machine's;
    ranks: ``LOCAL_WORLD_SIZE`` under ``accelerate launch``.  Each REPL may use ``memory_mb``.
    """
    import psutil

    cpus = len(os.sched_getaffinity(0))
    if os.environ.get("SLURM_MEM_PER_NODE"):
        mem = int(os.environ["SLURM_MEM_PER_NODE"])
    elif os.environ.get("SLURM_MEM_PER_CPU"):
        mem = int(os.environ["SLURM_MEM_PER_CPU"]) * cpus
    else:
        mem = psutil.virtual_memory().total // (1 << 20)
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(cpus - 1, int(mem * MEMORY_SHARE) // memory_mb) // ranks)


class Worker:
    """One REPL process and the header environments imported into it."""

    def __init__(self, factory: Callable[[], LeanServer], header_timeout_s: float, memory_soft_mb: float | None, stats: PoolStats) -> None:
        """``factory`` starts a REPL; ``memory_soft_mb``: restart above this resident size."""
        self.factory = factory
        self.header_timeout_s = header_timeout_s
        self.memory_soft_mb = memory_soft_mb
        self.stats = stats
        self.server: LeanServer | None = None
        self.envs: dict[str, int] = {}

    def reset(self) -> None:
        """Kill the REPL; the next job starts a fresh one."""
        if self.server is not None:
            self.server.kill()
        self.server, self.envs = None, {}

    def _env(self, header: str) -> int | None:
        """The environment id of ``header`` in this REPL (imported on first use); None: no header."""
        if self.server is None:
            self.server = self.factory()
            self.stats.add("starts")
        if not header.strip():
            return None
        if header not in self.envs:
            resp = self.server.run(Command(cmd=header), timeout=self.header_timeout_s)
            if isinstance(resp, LeanError) or resp.has_errors():
                detail = resp.message if isinstance(resp, LeanError) else resp.get_errors()[0].data
                raise HeaderError(f"Lean header does not elaborate: {' '.join(detail.split())[:MAX_ERROR_CHARS]}")
            self.envs[header] = resp.env
        return self.envs[header]

    def _check(self, job: Job, env: int | None) -> JobResult:
        assert self.server is not None
        resp = self.server.run(Command(cmd=job.code, env=env), timeout=job.timeout_s)
        compiled = compiled_from_response(resp)
        if job.theorem is None or not compiled.passed:
            return JobResult(compiled)
        assert isinstance(resp, CommandResponse)
        try:
            ax = self.server.run(Command(cmd=f"#print axioms {job.theorem}", env=resp.env), timeout=job.timeout_s)
        except TimeoutError:
            self.stats.add("timeouts")
            self.reset()
            return JobResult(compiled, Axioms(TIMEOUT))
        return JobResult(compiled, axioms_from_response(ax, job.theorem))

    def _crashed(self, exc: BaseException, attempt: int) -> str:
        self.stats.add("crashes")
        self.reset()
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:MAX_ERROR_CHARS]
        log.warning("Lean REPL crashed (attempt %d): %s", attempt + 1, first)
        return first

    def run(self, job: Job) -> JobResult:
        """Check one job; a REPL that crashes is restarted and the job retried once.

        A timeout is final for the job (the REPL is restarted for the next one).  A header
        that fails to import twice (timeout or crash), or that has errors, raises
        :class:`HeaderError`.
        """
        self.stats.add("jobs")
        for attempt in range(2):
            try:
                env = self._env(job.header)
            except HeaderError:
                self.reset()
                raise
            except TimeoutError:
                self.stats.add("timeouts")
                self.reset()
                if attempt:
                    raise HeaderError(f"Lean header import took over {self.header_timeout_s:g} s, twice") from None
                continue
            except CRASHES as exc:
                detail = self._crashed(exc, attempt)
                if attempt:
                    raise HeaderError(f"Lean REPL crashed while importing the header: {detail}") from None
                continue
            try:
                result = self._check(job, env)
            except TimeoutError:
                self.stats.add("timeouts")
                self.reset()
                return JobResult(Compiled(TIMEOUT, detail=f"no answer within {job.timeout_s:g} s"))
            except CRASHES as exc:
                detail = self._crashed(exc, attempt)
                if attempt:
                    return JobResult(Compiled(CRASH, detail=detail))
                continue
            self._check_memory()
            return result
        raise AssertionError("unreachable: the second attempt always returns or raises")

    def _check_memory(self) -> None:
        if self.server is None or self.memory_soft_mb is None:
            return
        if self.server.get_memory_usage() > self.memory_soft_mb:
            self.stats.add("memory_restarts")
            self.reset()


class ReplPool:
    """``workers`` REPL workers checking a batch of jobs in parallel."""

    def __init__(
        self, factory: Callable[[], LeanServer], workers: int, *, header_timeout_s: float = 600.0,
        memory_soft_mb: float | None = None,
    ) -> None:  # fmt: skip
        """Workers start their REPLs lazily, on their first job."""
        self.stats = PoolStats()
        self.workers = [Worker(factory, header_timeout_s, memory_soft_mb, self.stats) for _ in range(max(1, workers))]

    def run(self, jobs: Sequence[Job]) -> list[JobResult]:
        """One result per job, in order; raises :class:`HeaderError` if a header fails."""
        queue = deque(enumerate(jobs))
        lock = threading.Lock()
        results: list[JobResult | None] = [None] * len(jobs)

        def drain(worker: Worker) -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    i, job = queue.popleft()
                results[i] = worker.run(job)

        active = self.workers[: max(1, min(len(self.workers), len(jobs)))]
        with ThreadPoolExecutor(max_workers=len(active)) as ex:
            for f in [ex.submit(drain, w) for w in active]:
                f.result()
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        """Kill every REPL."""
        for w in self.workers:
            w.reset()
