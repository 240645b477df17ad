"""The REPL worker pool under failure: processes that hang past the timeout or die mid-batch.

Normal jobs are answered with recorded REPL transcripts; the failing ones are real processes
that never answer (hang) or exit mid-request (die).  Every job of a batch must get a result,
and the pool must keep working afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_lean_replay import entry, recorded, replay_factory, sent

from misalign_fv.verifier.cache import ResultCache
from misalign_fv.verifier.check import Problem, Verifier
from misalign_fv.verifier.format import canonical_statement
from misalign_fv.verifier.repl import HeaderError, Job, ReplPool, default_workers

FORK = "repl_fork_v4.9.0-rc2"
HANG = "theorem hangs : True := by\n  trivial"
DIE = "theorem dies : True := by\n  trivial"
FLAKY = "theorem flaky : True := by\n  trivial"


def recorded_jobs(shared: Path) -> tuple[list[dict], list[Job]]:
    """Replay entries and jobs for four recorded commands (1, 2, 1 and 1 errors)."""
    picks = [("incomplete.in", 0), ("incomplete.in", 1), ("self_proof_apply_check.in", 0), ("app_type_mismatch2.in", 0)]
    entries, jobs = [], []
    for name, i in picks:
        q, a = recorded(f"{FORK}/{name}", i)
        entries.append(entry(q["cmd"], None, a))
        jobs.append(Job("", q["cmd"], None, 5.0))
    return entries, jobs


def test_pool_survives_a_hang_and_deaths_mid_batch(shared: Path, tmp_path: Path) -> None:
    entries, ok = recorded_jobs(shared)
    _, flaky_answer = recorded(f"{FORK}/infotree_theorem.in", 0)  # a recorded answer without messages
    entries += [entry(HANG, None, action="hang"), entry(DIE, None, action="die"), entry(FLAKY, None, flaky_answer, action="die_once")]
    factory, log = replay_factory(tmp_path, entries)
    pool = ReplPool(factory, 2, header_timeout_s=10)
    jobs = [ok[0], Job("", HANG, None, 1.5), ok[1], Job("", DIE, None, 5.0), ok[2], Job("", FLAKY, None, 5.0), ok[3]]
    try:
        results = pool.run(jobs)
        assert [r.compile.status for r in results] == ["compiled", "timeout", "compiled", "crash", "compiled", "compiled", "compiled"]
        assert [r.compile.n_errors for r in results] == [1, 0, 2, 0, 1, 0, 1]
        assert results[5].compile.passed  # the job whose REPL died once was retried on a fresh one
        assert pool.stats.timeouts == 1 and pool.stats.crashes == 3  # DIE twice (retried), FLAKY once
        # the pool keeps working: a second batch on the same (restarted) workers
        again = pool.run([ok[3], ok[0]])
        assert [r.compile.n_errors for r in again] == [1, 1]
    finally:
        pool.close()
    cmds = [r["cmd"] for r in sent(log)]
    assert cmds.count(DIE) == 2 and cmds.count(FLAKY) == 2 and cmds.count(HANG) == 1


def test_every_item_gets_a_result_when_all_workers_fail(shared: Path, tmp_path: Path) -> None:
    factory, _ = replay_factory(tmp_path, [entry(HANG, None, action="hang"), entry(DIE, None, action="die")])
    pool = ReplPool(factory, 3, header_timeout_s=10)
    try:
        results = pool.run([Job("", HANG, None, 1.0), Job("", DIE, None, 5.0)] * 3)
    finally:
        pool.close()
    assert [r.compile.status for r in results] == ["timeout", "crash"] * 3


def test_a_header_that_never_imports_is_a_setup_error(shared: Path, tmp_path: Path) -> None:
    header = "import Mathlib"
    factory, log = replay_factory(tmp_path, [entry(header, None, action="hang")])
    pool = ReplPool(factory, 1, header_timeout_s=1.0)
    with pytest.raises(HeaderError, match="header import took over 1 s, twice"):
        pool.run([Job(header, "theorem t : True := by trivial", "t", 5.0)])
    assert [r["cmd"] for r in sent(log)] == [header, header]


def test_header_with_errors_is_a_setup_error(shared: Path, tmp_path: Path) -> None:
    q, a = recorded(f"{FORK}/incomplete.in", 0)  # a command whose recorded answer has an error
    factory, _ = replay_factory(tmp_path, [entry(q["cmd"], None, a)])
    with pytest.raises(HeaderError, match="^Lean header does not elaborate: unsolved goals"):
        ReplPool(factory, 1).run([Job(q["cmd"], "theorem t : True := by trivial", "t", 5.0)])


def test_memory_above_the_soft_limit_restarts_the_repl(shared: Path, tmp_path: Path) -> None:
    entries, ok = recorded_jobs(shared)
    factory, _ = replay_factory(tmp_path, entries)
    pool = ReplPool(factory, 1, memory_soft_mb=1.0)  # any live process is above 1 MB
    try:
        results = pool.run(ok)
    finally:
        pool.close()
    assert [r.compile.n_errors for r in results] == [1, 2, 1, 1]
    assert pool.stats.memory_restarts == 4 and pool.stats.starts == 4


def test_results_are_cached_on_disk_across_verifiers(shared: Path, tmp_path: Path) -> None:
    q, a = recorded(f"{FORK}/incomplete.in", 0)
    st = canonical_statement("def f : Nat := by")
    reply = f"```lean4\n{q['cmd']}\n```"
    factory, log = replay_factory(tmp_path, [entry(q["cmd"], None, a)])
    first = Verifier(ReplPool(factory, 1), toolchain="replay", timeout_s=5, cache=ResultCache(tmp_path / "cache"))
    [r1] = first.verify([Problem("f", "", st)], [reply])
    second = Verifier(ReplPool(factory, 1), toolchain="replay", timeout_s=5, cache=ResultCache(tmp_path / "cache"))
    [r2, r3] = second.verify([Problem("f", "", st)] * 2, [reply, reply])
    assert not r1.cached and r2.cached and r3.cached
    assert r1.compile == r2.compile == r3.compile and r1.progress == r2.progress
    assert len(sent(log)) == 1  # one REPL request in all
    other = Verifier(ReplPool(factory, 1), toolchain="another lean", timeout_s=5, cache=ResultCache(tmp_path / "cache"))
    [r4] = other.verify([Problem("f", "", st)], [reply])
    assert not r4.cached and len(sent(log)) == 2  # the toolchain is part of the key


def test_cache_shards_are_per_process_and_survive_a_cut_off_line(tmp_path: Path) -> None:
    first, second = ResultCache(tmp_path / "c"), ResultCache(tmp_path / "c")
    first.put("k1", {"v": 1})
    second.put("k2", {"v": 2})
    shards = sorted((tmp_path / "c").glob("*.jsonl"))
    assert len(shards) == 2  # one file per writer, never a file per entry
    with open(shards[0], "a") as fh:
        fh.write('{"key": "k3", "rec')  # a write cut off by a crash
    fresh = ResultCache(tmp_path / "c")
    assert fresh.get("k1") == {"v": 1} and fresh.get("k2") == {"v": 2} and fresh.get("k3") is None
    assert ResultCache(None).get("k1") is None


def test_a_cached_timeout_is_retried_with_a_longer_timeout(shared: Path, tmp_path: Path) -> None:
    st = canonical_statement("theorem hangs : True := by")
    factory, log = replay_factory(tmp_path, [entry(HANG, None, action="hang")])
    cache = ResultCache(tmp_path / "cache")
    reply = f"```lean4\n{HANG}\n```"
    short = Verifier(ReplPool(factory, 1), toolchain="replay", timeout_s=1.0, cache=cache, naive=False)
    assert short.verify([Problem("hangs", "", st)], [reply])[0].compile.status == "timeout"
    assert short.verify([Problem("hangs", "", st)], [reply])[0].cached
    longer = Verifier(ReplPool(factory, 1), toolchain="replay", timeout_s=1.5, cache=cache, naive=False)
    [res] = longer.verify([Problem("hangs", "", st)], [reply])
    assert res.compile.status == "timeout" and not res.cached and len(sent(log)) == 2


def test_default_workers_follow_cpus_memory_and_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    cpus = len(os.sched_getaffinity(0))
    for var in ("SLURM_MEM_PER_NODE", "SLURM_MEM_PER_CPU", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_MEM_PER_NODE", str(10**9))
    assert default_workers(8192) == max(1, cpus - 1)  # CPU-bound: one CPU stays with the caller
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "30000")  # 75 % of it holds two 8 GB REPLs
    assert default_workers(8192) == max(1, min(cpus - 1, 2))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert default_workers(8192) == 1
    monkeypatch.delenv("SLURM_MEM_PER_NODE")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    monkeypatch.setenv("SLURM_MEM_PER_CPU", "100000")
    assert default_workers(8192) == max(1, cpus - 1)
