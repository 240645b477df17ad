"""profiles/rivanna against a real Slurm (tests/slurm): fan-out, no-op rerun, timeout + resume, bad input.

Every run is the command a Rivanna user types, ``SBATCH_ACCOUNT=<alloc> snakemake --profile
profiles/rivanna``, on the demo config and a subset of its DAG (targets by path), plus one
setting that changes no job: ``--slurm-init-seconds-before-status-checks 2`` (poll every few
seconds instead of 40, so that the module takes minutes).  The cluster is shaped like Rivanna:
partitions ``standard`` and ``gpu`` (3-day limit, limits enforced at submission), no default
partition, a node with ``Gres=gpu:a100:4`` and ``Features=a100_80gb``, an enforced account.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from slurm.cluster import ACCOUNT, PARTITION_MAX_MINUTES, SlurmCluster
from slurm.fixture import slurm_cluster  # noqa: F401  (the session fixture)
from workspace import SNAKEMAKE, copy_repo, planned_jobs, snakemake, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

RUN = ("--profile", "profiles/rivanna", "--slurm-init-seconds-before-status-checks", "2")
DEMO = ("--configfile=config/demo.yaml",)
FIRST_TARGETS = ("results/demo/grpo/shuffled/seed1/summary.json", "results/demo/eval/base/xstest.json")
GPU_RULES = {"train_dpo", "dpo_gate", "curate", "reward_signal", "train_grpo", "evaluate", "cluster_preflight"}
COMMENT = re.compile(r"rule_(?P<rule>.+?)(?:_wildcards_(?P<wc>.*))?$")


@dataclass
class Run:
    """One Snakemake invocation: its exit status, output and the Slurm jobs it submitted."""

    returncode: int
    output: str
    jobs: list[dict[str, str]]

    def of(self, rule: str, wildcards: str = "") -> list[dict[str, str]]:
        """This run's jobs of ``rule`` (with the plugin's wildcard string, e.g. ``shuffled_2``)."""
        return [j for j in self.jobs if job_key(j) == (rule, wildcards)]


def job_key(job: dict[str, str]) -> tuple[str, str]:
    """(rule, wildcard string) from the ``--comment`` the Slurm plugin gives every job."""
    m = COMMENT.match(job["Comment"])
    assert m, f"job {job['JobIDRaw']} has no Snakemake comment: {job['Comment']!r}"
    return m["rule"], m["wc"] or ""


def user_env(cluster: SlurmCluster) -> dict[str, str]:
    """What a user's shell on Rivanna has: the Slurm config and the allocation to charge."""
    return {**cluster.env, "SBATCH_ACCOUNT": ACCOUNT}


def run(ws: Path, cluster: SlurmCluster, *args: str) -> Run:
    """Run Snakemake with the Rivanna profile and collect the jobs it submitted."""
    before = {j["JobIDRaw"] for j in cluster.jobs()}
    proc = snakemake(ws, *RUN, *args, check=False, env=user_env(cluster))
    return Run(proc.returncode, proc.stdout, [j for j in cluster.jobs() if j["JobIDRaw"] not in before])


def profile(ws: Path) -> dict[str, Any]:
    """profiles/rivanna/config.yaml of the workspace."""
    return yaml.safe_load((ws / "profiles/rivanna/config.yaml").read_text())


def profile_resources(ws: Path, rule: str) -> dict[str, Any]:
    """What profiles/rivanna asks Slurm for on behalf of ``rule``."""
    p = profile(ws)
    return {**p["default-resources"], **p["set-resources"].get(rule, {})}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of the repository."""
    return copy_repo(tmp_path_factory.mktemp("rivanna"))


@pytest.fixture(scope="module")
def first(ws: Path, slurm_cluster: SlurmCluster) -> tuple[list[tuple[str, str]], Run]:  # noqa: F811
    """Jobs the dry run plans for one GRPO run + one evaluation, and the real run of them."""
    dry = snakemake(ws, "-n", *RUN, *DEMO, *FIRST_TARGETS, env=user_env(slurm_cluster)).stdout
    planned = [(rule, "_".join(wc.values())) for rule, wc in planned_jobs(dry)]
    done = run(ws, slurm_cluster, *DEMO, *FIRST_TARGETS)
    assert done.returncode == 0, done.output[-4000:]
    return planned, done


def test_unset_account_stops_before_anything_is_submitted(ws: Path, slurm_cluster: SlurmCluster) -> None:  # noqa: F811
    env = {k: v for k, v in user_env(slurm_cluster).items() if k != "SBATCH_ACCOUNT"}
    before = slurm_cluster.jobs()
    proc = subprocess.run(
        [*SNAKEMAKE, *RUN, *DEMO, "results/demo/eval/dpo/xstest.json"], cwd=ws, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.returncode != 0
    said = [ln for ln in proc.stdout.splitlines() if "SBATCH_ACCOUNT" in ln]
    assert said == ["profile: SBATCH_ACCOUNT is not set; run `export SBATCH_ACCOUNT=<allocation>` (see `allocations`) first"]
    assert slurm_cluster.jobs() == before


def test_every_job_goes_through_sbatch_with_the_profiles_resources(
    first: tuple[list[tuple[str, str]], Run], slurm_cluster: SlurmCluster, ws: Path  # noqa: F811
) -> None:
    planned, done = first
    assert Counter(job_key(j) for j in done.jobs) == Counter(planned)  # every planned job, once, via sbatch
    assert {rule for rule, _ in planned} == GPU_RULES | {"prepare_safety", "prepare_pool", "prepare_positive_control", "base_model"}
    for job in done.jobs:
        rule, _ = job_key(job)
        want = profile_resources(ws, rule)
        tres = set(job["ReqTRES"].split(","))
        assert job["State"] == "COMPLETED" and job["Account"] == ACCOUNT, job
        assert job["Partition"] == want["slurm_partition"] == ("gpu" if rule in GPU_RULES else "standard"), job
        assert {f"cpu={want['cpus_per_task']}", f"mem={want['mem_mb']}M"} <= tres, job
        assert int(job["TimelimitRaw"]) <= PARTITION_MAX_MINUTES[job["Partition"]], job
        if rule not in ("train_dpo", "train_grpo"):  # their limit grows with the attempt (set in the rule)
            assert int(job["TimelimitRaw"]) == int(want["runtime"]), job  # resources in one place: the profile
        shown = slurm_cluster.show_job(job["JobIDRaw"])
        if rule in GPU_RULES:
            kind, model, n = str(want["gres"]).split(":")
            assert {f"gres/{kind}={n}", f"gres/{kind}:{model}={n}"} <= tres, job
            assert shown["TresPerNode"].replace("gres/", "gres:") == f"gres:{want['gres']}", shown
            assert job["Constraints"] == shown["Features"] == want["constraint"] == "a100_80gb", job
        else:
            assert not any(t.startswith("gres/") for t in tres) and job["Constraints"] == "", job
            assert "TresPerNode" not in shown, shown
    for target in FIRST_TARGETS:
        assert (ws / target).exists()


def test_second_run_submits_nothing(first: tuple[list[tuple[str, str]], Run], ws: Path, slurm_cluster: SlurmCluster) -> None:  # noqa: F811
    again = run(ws, slurm_cluster, *DEMO, *FIRST_TARGETS)
    assert again.returncode == 0, again.output[-4000:]
    assert "Nothing to be done" in again.output
    assert again.jobs == []


def _checkpoints(ckpt_root: Path) -> list[int]:
    """Steps of the complete checkpoints (those with trainer_state.json) under a run's scratch dir."""
    return sorted(int(p.parent.name.split("-")[1]) for p in ckpt_root.glob("*/checkpoint-*/trainer_state.json"))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:  # already gone
        return ""


def _running_job(cluster: SlurmCluster, comment: str) -> str | None:
    out = cluster.run("squeue", "-h", "-t", "RUNNING", "-o", "%i|%k")
    return next((jid for jid, c in (line.split("|", 1) for line in out.splitlines()) if c == comment), None)


def test_timed_out_training_is_retried_and_resumes_from_its_checkpoint(
    first: tuple[list[tuple[str, str]], Run], ws: Path, slurm_cluster: SlurmCluster  # noqa: F811
) -> None:
    """GRPO shuffled/seed2 stalls after its first checkpoint and runs past its time limit.

    The test freezes the training process (SIGSTOP: a hung job) once a checkpoint exists and
    lowers the job's limit to one minute; Slurm ends it as TIMEOUT, the profile's ``retries``
    resubmit it (attempt 2, whose time limit must still fit the gpu partition) and it resumes.
    """
    target = ws / "results/demo/grpo/shuffled/seed2/summary.json"
    ckpt_root = ws / "work/checkpoints/grpo/shuffled/seed2"
    before = {j["JobIDRaw"] for j in slurm_cluster.jobs()}
    proc = subprocess.Popen(
        [*SNAKEMAKE, *RUN, *DEMO, str(target.relative_to(ws))], cwd=ws, env=user_env(slurm_cluster),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        job_id, stopped_at = None, None
        while stopped_at is None:
            assert proc.poll() is None and time.monotonic() < deadline, "GRPO never reached a checkpoint"
            job_id = job_id or _running_job(slurm_cluster, "rule_train_grpo_wildcards_shuffled_2")
            if job_id and _checkpoints(ckpt_root):
                trainers = [p for p in slurm_cluster.job_pids(job_id) if "train_grpo.py" in _cmdline(p)]
                assert trainers, "no training process in the job"
                for pid in trainers:
                    os.kill(pid, signal.SIGSTOP)
                stopped_at = _checkpoints(ckpt_root)[-1]
            time.sleep(0.05)
        slurm_cluster.run("scontrol", "update", f"JobId={job_id}", "TimeLimit=1")
        output, _ = proc.communicate(timeout=480)
    finally:
        if proc.poll() is None:
            proc.kill()
    jobs = [j for j in slurm_cluster.jobs() if j["JobIDRaw"] not in before]
    assert [j["State"] for j in jobs] == ["TIMEOUT", "COMPLETED"], (jobs, output[-4000:])
    assert {job_key(j) for j in jobs} == {("train_grpo", "shuffled_2")}
    assert proc.returncode == 0, output[-4000:]
    assert "Trying to restart job" in output
    assert int(jobs[1]["TimelimitRaw"]) <= PARTITION_MAX_MINUTES["gpu"]
    summary = json.loads(target.read_text())
    assert stopped_at > 0 and summary["resumed_from"] == stopped_at
    # The run trains to its last step, or stops early by collapse (an outcome the design keeps).
    assert summary["steps_done"] == summary["max_steps"] or summary["collapse_kind"] in ("starved", "saturated")
    steps = pd.read_csv(target.parent / "metrics.csv").step
    assert steps.is_unique and steps.max() == summary["steps_done"]


BAD_TARGET = "results/demo/eval/base/xstest.json"
BAD_SAMPLES = "results/demo/eval/base/xstest.samples.jsonl.gz"
GOOD_TARGET = "results/demo/judge_validation.json"  # a GPU job that does not read the broken file


@pytest.fixture(scope="module")
def bad(first: tuple[list[tuple[str, str]], Run], ws: Path, slurm_cluster: SlurmCluster) -> Run:  # noqa: F811
    """One benchmark pointed at the wrong file (TruthfulQA's JSON as XSTest's CSV), two targets.

    A truncated samples file of the failing job is planted first, as an interrupted attempt
    would leave it.
    """
    (ws / BAD_SAMPLES).parent.mkdir(parents=True, exist_ok=True)
    (ws / BAD_SAMPLES).write_bytes(b"\x1f\x8b\x08")
    cfg = write_config(
        ws / "config/demo_bad_xstest.yaml", ws / "config/demo.yaml",
        lambda c: c["eval"]["benchmarks"]["xstest"].update(data="resources/demo/truthfulqa_mini.json"),
    )  # fmt: skip
    return run(ws, slurm_cluster, f"--configfile={cfg.relative_to(ws)}", BAD_TARGET, GOOD_TARGET)


def test_bad_input_fails_a_bounded_number_of_times_and_leaves_no_output(bad: Run, ws: Path) -> None:
    retries = profile(ws)["retries"]
    failed = bad.of("evaluate", "base_xstest")
    assert bad.returncode != 0
    assert [j["State"] for j in failed] == ["FAILED"] * (1 + retries)
    assert not (ws / BAD_TARGET).exists() and not (ws / BAD_SAMPLES).exists()
    log = (ws / "results/demo/logs/evaluate/base/xstest.log").read_text()
    assert "truthfulqa_mini.json" in log and "Traceback (most recent call last)" in log  # the whole story in the log
    assert "Traceback (most recent call last)" not in bad.output  # the console names the log instead
    assert "results/demo/logs/evaluate/base/xstest.log" in bad.output


def test_keep_going_lets_the_independent_branch_finish(bad: Run, ws: Path) -> None:
    assert [j["State"] for j in bad.of("judge_validation")] == ["COMPLETED"]
    assert json.loads((ws / GOOD_TARGET).read_text())["xstest"]["n"] > 0


def test_rerun_after_the_fix_submits_only_the_failed_job(bad: Run, ws: Path, slurm_cluster: SlurmCluster) -> None:  # noqa: F811
    fixed = run(ws, slurm_cluster, *DEMO, BAD_TARGET, GOOD_TARGET)
    assert fixed.returncode == 0, fixed.output[-4000:]
    assert [(job_key(j), j["State"]) for j in fixed.jobs] == [(("evaluate", "base_xstest"), "COMPLETED")]
    assert json.loads((ws / BAD_TARGET).read_text())["n"] > 0
