"""Dry-run the real config: the DAG's shape, the Rivanna profile, lint, and parse-time config errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from workspace import copy_repo, job_counts, snakemake, write_config


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of the repository (no results)."""
    return copy_repo(tmp_path_factory.mktemp("repo"))


def test_real_config_plans_the_whole_experiment(ws: Path) -> None:
    out = snakemake(ws, "-n").stdout
    counts = job_counts(out)
    n_bench = len(yaml.safe_load((ws / "config/config.yaml").read_text())["eval"]["benchmarks"])
    assert counts["train_dpo"] == 1
    assert counts["dpo_gate"] == 1
    assert counts["curate"] == 1
    assert counts["train_grpo"] == 15  # 3 treatments + shuffled control + positive control, x 3 seeds
    assert counts["evaluate"] == 17 * n_bench
    assert counts["evaluate_trajectory"] == 16  # the DPO model (step 0) + one job per run
    assert counts["prepare_positive_control"] == 1 and counts["reward_signal"] == 1
    assert counts["report"] == 1
    grpo = [j.split("\n[", 1)[0] for j in out.split("rule train_grpo:")[1:]]
    assert sum("results/data/positive_control/prompts.jsonl" in j for j in grpo) == 3  # comply_harmful x 3 seeds
    assert all("results/preflight/reward_signal.json" in j for j in grpo)  # the preflight is upstream of every run


def test_rivanna_profile_dry_run_never_calls_sbatch(ws: Path, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls"
    for tool in ("sbatch", "squeue", "sacct", "sacctmgr", "scontrol", "sinfo"):
        exe = bindir / tool
        exe.write_text(f"#!/bin/sh\necho {tool} \"$@\" >> {calls}\nexit 1\n")
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    proc = snakemake(
        ws, "-n", "--profile", "profiles/rivanna",
        env={"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "SBATCH_ACCOUNT": "myalloc"},
    )  # fmt: skip
    assert job_counts(proc.stdout)["train_grpo"] == 15
    assert not calls.exists() or "sbatch" not in calls.read_text()


def test_lint_is_clean(ws: Path) -> None:
    for extra in ((), ("--configfile", "config/demo.yaml")):
        out = snakemake(ws, "--lint", *extra).stdout
        assert "Congratulations, your workflow is in a good condition!" in out


BAD_CONFIGS = [
    ("unknown condition", lambda c: c["grpo"]["conditions"].update({"fv_magic": {}}), "config: grpo.conditions: unknown condition 'fv_magic'"),
    ("empty seeds", lambda c: c["grpo"].update(seeds=[]), "config: grpo.seeds:"),
    ("negative lr", lambda c: c["grpo"]["conditions"].update(shuffled={"learning_rate": -1e-6}), "config: grpo.conditions.shuffled.learning_rate:"),
    ("old random control", lambda c: c["grpo"]["conditions"].update(random={}), "config: grpo.conditions: unknown condition 'random'"),
    ("allow unknown", lambda c: c["grpo"]["preflight"].update(allow=["fv_binary"]), "config: grpo.preflight.allow: 'fv_binary' is not a configured condition"),
    ("trajectory benchmark", lambda c: c["eval"]["trajectory"]["benchmarks"].update(truthfulqa_mc={}) or c["eval"]["benchmarks"].pop("truthfulqa_mc"), "config: eval.trajectory.benchmarks.truthfulqa_mc: not among eval.benchmarks"),
    ("missing key", lambda c: c["dpo"].pop("beta"), "config: dpo.beta: required key is missing"),
    ("bad band", lambda c: c["curate"].update(band=[0.7, 0.2]), "config: curate.band:"),
    ("unknown benchmark", lambda c: c["eval"]["benchmarks"].update(mmlu={"data": "x.json"}), "config: eval.benchmarks.mmlu: unknown benchmark"),
]


@pytest.mark.parametrize(("what", "edit", "message"), BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_fails_at_parse_time_with_one_line(ws: Path, tmp_path: Path, what: str, edit, message: str) -> None:
    cfg = write_config(tmp_path / "bad.yaml", ws / "config/config.yaml", edit)
    proc = snakemake(ws, "-n", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("config: ")]
    assert len(lines) == 1, proc.stdout
    assert lines[0].startswith(message), lines[0]
    assert "Building DAG of jobs" not in proc.stdout  # failed before planning any job


def test_zero_condition_warns_and_points_to_the_dpo_control(ws: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "zero.yaml", ws / "config/config.yaml", lambda c: c["grpo"]["conditions"].update(zero={}))
    out = snakemake(ws, "-n", "--configfile", str(cfg)).stdout
    assert "grpo.conditions.zero" in out and "results/eval/dpo" in out
    assert job_counts(out)["train_grpo"] == 18
