"""Per-call overhead of the sandbox: a bare interpreter start vs. a sandboxed run, per isolation level.

Medians over ``--n`` calls of: ``python -I -S -c pass`` (no sandbox), :func:`run_python` of ``pass``
and a :func:`run_tests` of 5 asserts (one candidate process, 5 remote calls), each at the
namespace level (where available) and at the rlimits-only fallback.  Usage:
``python benchmarks/sandbox_overhead.py [--n 30]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable

from misalign_fv import isolation
from misalign_fv.sandbox import run_python, run_tests

PROGRAM = "def inc(x):\n    return x + 1\n"
TESTS = [f"assert inc({i}) == {i + 1}" for i in range(5)]


def median_ms(fn: Callable[[], object], n: int) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``n`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    """Print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30)
    n = parser.parse_args().n
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    bare = median_ms(lambda: subprocess.run([isolation.interpreter(), "-I", "-S", "-c", "pass"], check=True), n)
    print(f"bare interpreter start: {bare:.1f} ms")
    for level in isolation.LEVELS:
        if level == isolation.NAMESPACES and isolation.isolation_level() != level:
            print(f"{level}: unavailable here")
            continue
        os.environ[isolation.FORCE_ENV] = level
        isolation.isolation_level.cache_clear()
        python = median_ms(lambda: run_python("pass"), n)
        tests = median_ms(lambda: run_tests(PROGRAM, TESTS), n)
        print(f"{level}: run_python {python:.1f} ms (+{python - bare:.1f}), run_tests x5 {tests:.1f} ms (+{tests - bare:.1f})")
    del os.environ[isolation.FORCE_ENV]
    isolation.isolation_level.cache_clear()


if __name__ == "__main__":
    main()
