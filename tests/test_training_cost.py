"""The GPU-hours projection (benchmarks/gpu/cost_model.py) on the committed H100 measurements."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture(scope="module")
def cost(repo: Path) -> Any:
    spec = importlib.util.spec_from_file_location("cost_model", repo / "benchmarks" / "gpu" / "cost_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def real(repo: Path) -> dict[str, Any]:
    return yaml.safe_load((repo / "config" / "config.yaml").read_text())


@pytest.fixture(scope="module")
def assume(cost: Any, repo: Path) -> dict[str, Any]:
    """The assumptions with the CPUs a job gets from profiles/rivanna."""
    return cost.ASSUMPTIONS | cost.job_cpus(repo / "profiles" / "rivanna" / "config.yaml")


def test_measurements_are_read_from_the_committed_results(cost: Any) -> None:
    m = cost.load_measurements()
    assert 0.3 < m["decode_efficiency"] < 0.7 and 0.1 < m["update_mfu"] < 0.5
    assert m["update_mfu"] < m["update_mfu_fused_dpo"] < 0.6 and m["update_mfu"] < m["update_mfu_fused_grpo"] < 0.6
    assert 700 < m["matmul_tflops"] < 1000 and 2.5 < m["copy_tb_s"] < 3.4
    a100 = cost.a100_rates(m)
    assert a100["matmul_tflops"] == pytest.approx(312 * m["matmul_tflops"] / 989)


def test_cpus_and_update_rates_follow_the_profile_and_the_settings(
    cost: Any, real: dict[str, Any], assume: dict[str, Any], repo: Path
) -> None:
    profile = yaml.safe_load((repo / "profiles" / "rivanna" / "config.yaml").read_text())["set-resources"]
    assert assume["cpus_per_grpo_job"] == profile["train_grpo"]["cpus_per_task"]
    assert assume["cpus_per_eval_job"] == profile["evaluate"]["cpus_per_task"]
    m = cost.load_measurements()
    # DPO runs with Liger and no checkpointing in config.yaml, GRPO with checkpointing
    assert cost.stage_mfu(real["dpo"], "dpo", m) == m["update_mfu_fused_dpo"]
    assert cost.stage_mfu(real["grpo"]["defaults"], "grpo", m) == m["update_mfu"]
    assert cost.stage_mfu({"use_liger_kernel": True, "gradient_checkpointing": True}, "grpo", m) == m["update_mfu"]
    base = cost.project(real, m, assume)
    doubled = cost.project(real, m, assume | {"cpus_per_grpo_job": 2 * assume["cpus_per_grpo_job"]})
    assert doubled["grpo_step_s"]["verify_s"] == pytest.approx(base["grpo_step_s"]["verify_s"] / 2)
    fused = cost.with_knobs(real, m, assume, [cost.FUSED_KNOB])
    ratio = m["update_mfu"] / m["update_mfu_fused_grpo"]
    runs_gpus = 12 * 1000 * 4 / 3600
    assert fused == pytest.approx(base["total_gpu_h"] - base["grpo_step_s"]["update_s"] * (1 - ratio) * runs_gpus)


def test_projection_of_the_real_config(cost: Any, real: dict[str, Any], assume: dict[str, Any]) -> None:
    res = cost.project(real, cost.load_measurements(), assume)
    assert res["total_gpu_h"] == pytest.approx(sum(res["stages_gpu_h"].values()))
    assert res["grpo_runs"] == 12 and res["eval_jobs"] == 14 * len(real["eval"]["benchmarks"])
    step = res["grpo_step_s"]
    assert res["grpo_step_total_s"] == pytest.approx(sum(step.values()))
    # GRPO hours = runs x (steps x step + load) x GPUs.
    expect = 12 * (1000 * res["grpo_step_total_s"] + cost.ASSUMPTIONS["model_load_s"]) * 4 / 3600
    assert res["stages_gpu_h"]["grpo"] == pytest.approx(expect)
    assert max(res["stages_gpu_h"], key=res["stages_gpu_h"].get) == "grpo"


def test_knobs_move_the_total_the_expected_way(cost: Any, real: dict[str, Any], assume: dict[str, Any]) -> None:
    m, a = cost.load_measurements(), assume
    base = cost.project(real, m, a)
    half = copy.deepcopy(real)
    half["grpo"]["defaults"]["max_steps"] = 500
    assert cost.project(half, m, a)["stages_gpu_h"]["grpo"] < 0.51 * base["stages_gpu_h"]["grpo"]
    overlapped = cost.project(real, m, a | {"async_rewards": True})
    s = base["grpo_step_s"]
    assert overlapped["grpo_step_total_s"] == pytest.approx(max(s["verify_s"], s["generate_s"] + s["update_s"]) + s["vllm_sync_s"])
    assert cost.project(real, m | {"update_mfu": 0.45}, a)["total_gpu_h"] < base["total_gpu_h"]
    # the combination that keeps 1000 steps costs less than any of its parts alone
    together = cost.with_knobs(real, m, a, next(iter(cost.COMBOS.values())))
    assert together < min(cost.with_knobs(real, m, a, [k]) for k in (cost.ASYNC_KNOB, cost.CPUS_KNOB, cost.FUSED_KNOB))
    # Two seeds instead of three: 8 GRPO runs instead of 12, 10 evaluated checkpoints instead of 14.
    stages = base["stages_gpu_h"]
    two_seeds = base["total_gpu_h"] - stages["grpo"] / 3 - stages["eval"] * 4 / 14
    assert cost.with_knobs(real, m, a, ["grpo.seeds 3 -> 2"]) == pytest.approx(two_seeds)


def test_generation_time_scales_with_waves_and_length(cost: Any) -> None:
    rates = {"copy_tb_s": 2.0, "matmul_tflops": 300.0}
    one = cost.generation_s(64, 250, 512, 64, rates, 0.5)
    assert cost.generation_s(128, 250, 512, 64, rates, 0.5) > 1.9 * one  # two waves
    assert cost.generation_s(64, 250, 1024, 64, rates, 0.5) > 2 * one  # longer, and more KV to read
    assert cost.generation_s(64, 250, 512, 64, rates, 1.0) == pytest.approx(one / 2)
