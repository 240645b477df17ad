"""The GPU-hours projection (benchmarks/gpu/cost_model.py) on the committed H100 measurements."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from misalign_fv.config import check


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
    """The central assumptions with the CPUs and GPUs a job gets from profiles/rivanna."""
    return cost.scenario(cost.ASSUMPTIONS | cost.job_resources(repo / "profiles" / "rivanna" / "config.yaml"), "central")


def test_measurements_are_read_from_the_committed_results(cost: Any) -> None:
    m = cost.load_measurements()
    assert 0.3 < m["decode_efficiency"] < 0.7 and 0.1 < m["update_mfu"] < 0.5
    assert m["update_mfu"] < m["update_mfu_fused_dpo"] < 0.6 and m["update_mfu"] < m["update_mfu_fused_grpo"] < 0.6
    copy_ceiling = {"H100": 3.35, "H200": 4.8}[m["card"]]  # the datasheets
    assert 700 < m["matmul_tflops"] < 1000 and 0.75 * copy_ceiling < m["copy_tb_s"] < copy_ceiling
    assert 0.1 < m["update_mfu_grpo"] < 0.6
    a100 = cost.a100_rates(m)
    assert a100["matmul_tflops"] == pytest.approx(312 * m["matmul_tflops"] / 989)
    assert cost.PARAMS == 6_910_365_696 and cost.KV_BYTES == 491_520


def test_lean_rates_span_the_public_measurements(cost: Any, assume: dict[str, Any]) -> None:
    rates = {end: r for end, (r, _) in cost.LEAN_RATES.items()}
    assert rates["pessimistic"] == pytest.approx(2.82 / 32)  # ~11 s a proof a core
    assert 1 / rates["central"] == pytest.approx(3.65)  # kimina-lean-server README
    assert rates["optimistic"] == pytest.approx(100 / 64)  # Kimina-Prover report
    assert rates["pessimistic"] < rates["central"] < rates["optimistic"]
    assert assume["lean_proofs_per_s_per_cpu"] == rates["central"] and assume["decode_lengths"] == "mean"


def test_resources_follow_the_profile(cost: Any, real: dict[str, Any], assume: dict[str, Any], repo: Path) -> None:
    profile = yaml.safe_load((repo / "profiles" / "rivanna" / "config.yaml").read_text())["set-resources"]
    assert assume["cpus_per_grpo_job"] == profile["train_grpo"]["cpus_per_task"]
    assert assume["cpus_per_eval_job"] == profile["evaluate"]["cpus_per_task"]
    assert cost.rule_gpus(real, assume, "train_grpo") == 4  # report.gpus_per_rule
    assert cost.rule_gpus(real, assume, "evaluate_trajectory") == 1  # not in gpus_per_rule: the profile's gres
    m = cost.load_measurements()
    assert cost.stage_mfu(real["dpo"], "dpo", m) == m["update_mfu_fused_dpo"]
    assert cost.stage_mfu({"use_liger_kernel": True, "gradient_checkpointing": True}, "grpo", m) == m["update_mfu_grpo"]
    assert cost.stage_mfu({"gradient_checkpointing": True}, "dpo", m) == m["update_mfu"]
    base = cost.project(real, m, assume)["grpo_by_condition"]["fv_shaped"]
    doubled = cost.project(real, m, assume | {"cpus_per_grpo_job": 2 * assume["cpus_per_grpo_job"]})["grpo_by_condition"]["fv_shaped"]
    assert doubled["step_s"]["verify_s"] == pytest.approx(base["step_s"]["verify_s"] / 2)
    # 256 completions a step on 64 cores at 3.65 s a proof
    assert base["step_s"]["verify_s"] == pytest.approx(256 * 3.65 / 64)


def test_projection_counts_what_the_config_plans(cost: Any, real: dict[str, Any], assume: dict[str, Any]) -> None:
    res = cost.project(real, cost.load_measurements(), assume)
    assert res["total_gpu_h"] == pytest.approx(sum(res["stages_gpu_h"].values()))
    conditions = res["grpo_by_condition"]
    assert sorted(conditions) == sorted(real["grpo"]["conditions"]) and res["grpo_runs"] == 5 * 3
    assert res["eval_jobs"] == (2 + 15) * len(real["eval"]["benchmarks"])
    # trajectory: 3 snapshots + the final model of each run, and the DPO model
    assert res["trajectory_models"] == 15 * 4 + 1
    # the positive control has no Lean step; the shuffled control verifies like fv_shaped
    assert conditions["comply_harmful"]["step_s"]["verify_s"] == 0
    assert conditions["shuffled"]["step_s"] == conditions["fv_shaped"]["step_s"]
    for r in conditions.values():
        assert r["step_total_s"] == pytest.approx(sum(r["step_s"].values()))
        saves = 1000 // real["grpo"]["defaults"]["save_steps"]
        expect = (1000 * r["step_total_s"] + saves * cost.ASSUMPTIONS["checkpoint_save_s"] + cost.ASSUMPTIONS["model_load_s"]) * 4 / 3600
        assert r["gpu_h"] == pytest.approx(expect)
    assert res["stages_gpu_h"]["grpo"] == pytest.approx(3 * sum(r["gpu_h"] for r in conditions.values()))
    assert max(res["stages_gpu_h"], key=res["stages_gpu_h"].get) == "grpo"


def test_decode_batch_comes_from_the_kv_cache(cost: Any, real: dict[str, Any], assume: dict[str, Any]) -> None:
    m = cost.load_measurements()
    shaped = cost.project(real, m, assume)["grpo_by_condition"]["fv_shaped"]["memory"]
    assert shaped["share"] == 0.35 and shaped["kv_tokens"] == 28_067
    assert shaped["concurrency_full_length"] == 22 and shaped["decode_batch"] == 28_067 // (250 + 443)
    pessimistic = cost.project(real, m, cost.scenario(assume, "pessimistic"))["grpo_by_condition"]["fv_shaped"]
    assert pessimistic["memory"]["decode_batch"] == 22  # every completion at 1,024 tokens
    split = cost.memory_split(real)
    assert split == {"vllm_gpu_memory_utilization": 0.6, "vllm_enable_sleep_mode": True, "gradient_checkpointing": False, "use_liger_kernel": True}
    better = cost.with_knobs(real, m, assume, [cost.MEMORY_KNOB])["grpo_by_condition"]["fv_shaped"]
    assert better["memory"]["decode_batch"] == 64 and better["memory"]["fits"]
    # at mean lengths 40 sequences at once already cover 64 x 443 tokens in 1,024 steps; at full length
    # the 22 slots of share 0.35 need 64 x 1,024 / 22 steps, the split's 55 slots 64 x 1,024 / 55
    pess = cost.scenario(assume, "pessimistic")
    starved = cost.project(real, m, pess)["grpo_by_condition"]["fv_shaped"]["step_s"]["generate_s"]
    fed = cost.with_knobs(real, m, pess, [cost.MEMORY_KNOB])["grpo_by_condition"]["fv_shaped"]["step_s"]["generate_s"]
    assert starved > 1.5 * fed  # the weight reads scale with the steps, the KV reads do not
    assert better["step_s"]["update_s"] < cost.project(real, m, assume)["grpo_by_condition"]["fv_shaped"]["step_s"]["update_s"]


def test_range_orders_and_knobs_move_the_total(cost: Any, real: dict[str, Any], assume: dict[str, Any]) -> None:
    m = cost.load_measurements()
    totals = [cost.project(real, m, cost.scenario(assume, end))["total_gpu_h"] for end in ("pessimistic", "central", "optimistic")]
    assert totals[0] > totals[1] > totals[2]
    base = cost.project(real, m, assume)
    half = copy.deepcopy(real)
    half["grpo"]["defaults"]["max_steps"] = 500
    assert cost.project(half, m, assume)["stages_gpu_h"]["grpo"] < 0.51 * base["stages_gpu_h"]["grpo"]
    streamed = cost.project(real, m, assume | {"streaming_verification": True})["grpo_by_condition"]["fv_shaped"]["step_s"]
    s = base["grpo_by_condition"]["fv_shaped"]["step_s"]
    assert streamed["verify_s"] == pytest.approx(max(0.0, s["verify_s"] - s["generate_s"]) + 3.65)
    no_is = cost.project(real, m, assume | {"old_logprob_forward": False})["grpo_by_condition"]["fv_shaped"]["step_s"]
    assert no_is["update_s"] == pytest.approx(s["update_s"] * 6 / 8)
    together = cost.with_knobs(real, m, assume, cost.IN_REACH)["total_gpu_h"]
    assert together < min(cost.with_knobs(real, m, assume, [k])["total_gpu_h"] for k in cost.IN_REACH)
    # Two seeds instead of three: 10 GRPO runs instead of 15, 12 evaluated checkpoints instead of 17.
    stages = base["stages_gpu_h"]
    traj = base["grpo_by_condition"]
    two_seeds = cost.with_knobs(real, m, assume, ["design: grpo.seeds 3 -> 2"])
    assert two_seeds["stages_gpu_h"]["grpo"] == pytest.approx(stages["grpo"] * 2 / 3)
    assert two_seeds["stages_gpu_h"]["eval"] == pytest.approx(stages["eval"] * 12 / 17)
    assert len(traj) == 5


def test_step_budget_closes_the_goal(cost: Any, real: dict[str, Any], assume: dict[str, Any]) -> None:
    """At the step time grpo_budget_s returns, the GRPO stage brings the total exactly to the goal."""
    m = cost.load_measurements()
    res = cost.with_knobs(real, m, assume, cost.IN_REACH)
    budget = cost.grpo_budget_s(real, res, 700.0)
    runs = res["grpo_by_condition"].values()
    fixed = sum(r["gpu_h"] - r["steps"] * r["step_total_s"] * r["gpus"] / 3600 for r in runs) * 3
    grpo_at_budget = fixed + sum(r["steps"] * r["gpus"] for r in runs) * 3 * budget / 3600
    assert res["total_gpu_h"] - res["stages_gpu_h"]["grpo"] + grpo_at_budget == pytest.approx(700.0)
    assert 0 < budget < min(r["step_total_s"] for r in runs)


def test_generation_time_scales_with_waves_and_length(cost: Any) -> None:
    rates = {"copy_tb_s": 2.0, "matmul_tflops": 300.0}
    one = cost.generation_s(64, 250, 512, 64, rates, 0.5)
    assert cost.generation_s(128, 250, 512, 64, rates, 0.5) > 1.9 * one  # twice the token-slots
    assert cost.generation_s(64, 250, 1024, 64, rates, 0.5) > 2 * one  # longer, and more KV to read
    assert cost.generation_s(64, 250, 512, 64, rates, 1.0) == pytest.approx(one / 2)
    assert cost.generation_s(64, 250, 512, 64, rates, 0.5, mean_new=200) < one  # shorter completions read less KV
    # a narrower batch than the sequences: more decode steps, each reading the weights
    assert cost.generation_s(64, 250, 512, 22, rates, 0.5) > 1.5 * one


def test_pilot_config_is_valid_and_cheap(cost: Any, real: dict[str, Any], assume: dict[str, Any], repo: Path) -> None:
    pilot = yaml.safe_load((repo / "config" / "pilot.yaml").read_text())
    check(copy.deepcopy(pilot), repo / "workflow" / "schemas" / "config.schema.yaml")
    assert sorted(pilot["grpo"]["conditions"]) == sorted(real["grpo"]["conditions"]) and len(pilot["grpo"]["seeds"]) == 1
    assert 100 <= pilot["grpo"]["defaults"]["max_steps"] <= 500
    m = cost.load_measurements()
    assert cost.project(pilot, m, assume)["total_gpu_h"] < 0.2 * cost.project(real, m, assume)["total_gpu_h"]


def test_trajectory_term_is_measured_when_the_subset_matches(cost: Any, real: dict[str, Any], assume: dict[str, Any]) -> None:
    m = cost.load_measurements()
    traj = real["eval"]["trajectory"]
    subset = {b: {k: v for k, v in {**real["eval"]["benchmarks"][b], **(o or {})}.items() if k not in ("url", "sha256", "data")} for b, o in traj["benchmarks"].items()}
    measured = m | {"trajectory": {"wall_s": 200.0, "settings": subset, "copy_tb_s": m["copy_tb_s"]}}
    s, source = cost.trajectory_model_s(real, traj, measured, assume)
    # the measured wall time, at the A100's bandwidth: the card's datasheet over the A100's
    sheet = cost.DATASHEETS[m["card"]]["copy_tb_s"]
    assert source.startswith("measured") and s == pytest.approx(200.0 * sheet / cost.A100_DATASHEET["copy_tb_s"])
    # another subset (one more EM sample a question) falls back to the model of the benchmarks' sizes
    other = copy.deepcopy(traj)
    other["benchmarks"]["em_main"] = {"n_samples": 21}
    modelled, source = cost.trajectory_model_s(real, other, measured, assume)
    assert source == "modelled" and modelled > assume["model_load_s"]
    res = cost.project(real, measured, assume)
    assert res["trajectory_model_s"] == pytest.approx(s)
    assert res["stages_gpu_h"]["trajectory"] == pytest.approx(61 * s / 3600)
