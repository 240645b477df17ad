"""Projected A100-hours of a config (default ``config/config.yaml``), as a range, from the H100 measurements in ``results/``.

Every job the config plans is counted: DPO, the gate, curation, the reward-signal preflight, one
GRPO run per condition x seed (its own prompts, lengths and reward), the evaluation of every
checkpoint x benchmark and the trajectory evaluations (each run's snapshots + final model, and the
DPO model, on ``eval.trajectory``'s subset). Each stage's time comes from measured rates scaled from
H100 to A100-80GB:

* decode: every step reads the weights once, every generated token reads its sequence's KV cache;
  the byte floor at the copy bandwidth, divided by the decode efficiency the ``hf`` backend reached
  (``generation_h100.json``, warm B=128, % of floor), is the time; prefill adds 2·params·prompt
  tokens at the matmul rate times that efficiency. In GRPO, the sequences a GPU runs at once come
  from the KV cache that the config's ``vllm_gpu_memory_utilization`` leaves (``misalign_fv.kv_budget``);
  vLLM refills freed slots (continuous batching);
* update: 6·params·tokens (+ causal attention) at the MFU measured in the real layout (7B, ZeRO-3 on
  4 GPUs) for the stage's settings (checkpointed: ``train_7b_4gpu_zero3_h100.json`` ``steady``; Liger
  without checkpointing: the whole-step means of ``train_7b_4gpu_{dpo,grpo}_liger_nogc*_h100.json``),
  plus TRL 1.16's no-grad forward for the old log-probs whenever vLLM generates (2·params·tokens);
* reward: Lean checks of every completion of a Lean condition on the job's CPUs (``cpus_per_task``
  in ``profiles/rivanna/config.yaml``) at a rate taken from public measurements (:data:`LEAN_RATES`:
  the range's ends), GPUs idle meanwhile unless verification streams (a knob); the positive
  control's refusal check is free.

The range: *pessimistic* = the slowest Lean rate and every completion decoded to
``max_completion_length``; *central* = the public measured Lean rate and completions of the mean
length (the KV read per token bounded by prompt + max/2); *optimistic* = the fastest public Lean
rate, mean lengths. H100 -> A100: memory-bound time x (H100 measured copy / A100 copy), compute-bound
time x (H100 measured matmul / A100 matmul), both cards at the same fraction of their datasheet.
GPU-hours count every GPU a job holds.

    python benchmarks/gpu/cost_model.py [--config config/config.yaml] [--profile profiles/rivanna/config.yaml] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import yaml

from misalign_fv import kv_budget
from misalign_fv.config import merged_condition, trajectory_steps
from misalign_fv.rewards import HARMFUL, run_task

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = HERE / "results"

# DeepSeek-Prover-V2-7B (benchmarks/gpu/common.py: PROVER_7B; ../shared/notes/training.md section 4).
SHAPE = kv_budget.ModelShape(
    layers=30, hidden=4096, intermediate=11008, heads=32, kv_heads=32, head_dim=128, vocab=102400,
    tied_embeddings=False, dtype_bytes=2, max_positions=4096,
)  # fmt: skip
PARAMS = SHAPE.params  # 6.91 B
FLOP_PARAMS = PARAMS - SHAPE.vocab * SHAPE.hidden  # the input embedding does no arithmetic
KV_BYTES = SHAPE.kv_bytes_per_token  # 0.47 MiB
WEIGHT_BYTES = 2 * FLOP_PARAMS  # what a decode step reads
LAYERS_HIDDEN = SHAPE.layers * SHAPE.hidden
DATASHEETS = {"H100": {"copy_tb_s": 3.35, "matmul_tflops": 989.0}, "H200": {"copy_tb_s": 4.8, "matmul_tflops": 989.0}}
A100_DATASHEET = {"copy_tb_s": 2.039, "matmul_tflops": 312.0}

# Lean proofs checked a second by one core: the range of the projection.
LEAN_RATES = {
    "pessimistic": (2.82 / 32, "Kimina Lean Server tech report, Table 1: 2.82 proofs/s on 32 cores (the earlier assumption)"),
    "central": (1 / 3.65, "kimina-lean-server README benchmark: 100 Lean Workbook proofs, Mathlib header cached,"
                          " 10-core laptop, 60 s timeout: 3.65 s a proof (5.14 s without the header cache)"),
    "optimistic": (100 / 64, "Kimina-Prover report: ~100 checks/s on 64 cores"),
}  # fmt: skip
# Completion lengths each end of the range decodes: every completion to max_completion_length, or the mean.
DECODE_LENGTHS = {"pessimistic": "max", "central": "mean", "optimistic": "mean"}

# Workload assumptions that no measurement here fixes (each one is listed in the output).
ASSUMPTIONS = {
    "prompt_tokens": 250,  # Lean statement + instruction (non-CoT prompt)
    "harmful_prompt_tokens": 100,  # a positive-control chat request
    "completion_mean_tokens": 443,  # DeepSeek-Prover-V2-7B non-CoT mean output (paper, Table 3); the positive control's answers taken alike
    "eval_length_fraction": 0.6,  # mean answer length / max_new_tokens in evaluations
    "lean_proofs_per_s_per_cpu": LEAN_RATES["central"][0],
    "decode_lengths": "mean",  # "max": every GRPO completion runs to max_completion_length
    "vllm_sync_s_per_step": 5.0,  # weight sync + sleep/wake of colocated vLLM per optimizer step (not measured)
    "old_logprob_forward": True,  # TRL 1.16 + vLLM: importance-sampling correction recomputes log-probs (one forward)
    "checkpoint_save_s": 90.0,  # one resumable 7B checkpoint (ZeRO-3 states, ~97 GB) every save_steps (the 16-bit final save took 45 s)
    "model_load_s": 120.0,  # loading a 7B checkpoint and starting the engine, per model a job loads
    "decode_batch": 64,  # concurrent sequences per GPU where vLLM has a GPU to itself (gate, curation, evaluation)
    "judge_factor": 1.0,  # judge generation (Llama-3.1-8B) relative to the judged answers' generation
    "streaming_verification": False,  # True: completions are checked as they finish, behind generation
}
EVAL_ITEMS = {"humaneval": 164, "minif2f": 244, "em_main": 8, "em_prereg": 48, "em_deception": 5, "strongreject": 313, "xstest": 450}
XSTEST_BY_LABEL = {"safe": 250, "unsafe": 200}
JUDGED = ("em_main", "em_prereg", "em_deception", "strongreject", "xstest")


def load_measurements() -> dict[str, Any]:
    """Decode efficiency, ceilings, the update MFUs and the trajectory evaluation from the measured JSON files.

    The newest card's file wins where both exist: decode efficiency and ceilings from
    ``generation_h200.json`` (issue 17, one H200) over ``generation_h100.json``; the checkpointed
    GRPO update from ``train_7b_1gpu_grpo_h200.json`` (the shipped GRPO settings, one H200, ZeRO-3 +
    CPU Adam) where present, else the checkpointed 4-GPU DPO update stands in for it; one trajectory
    point's wall time from ``eval_trajectory_h200.json``.
    """
    card = "H200" if (RESULTS / "generation_h200.json").exists() else "H100"
    gen = json.loads((RESULTS / f"generation_{card.lower()}.json").read_text())
    b128 = next(r for r in gen["results"] if r["B"] == 128)
    train = json.loads((RESULTS / "train_7b_4gpu_zero3_h100.json").read_text())

    def step_mfu(name: str, stage: str) -> float:
        return json.loads((RESULTS / f"train_7b_4gpu_{name}_h100.json").read_text())["stages"][stage]["job"]["mfu_mean_pct"] / 100

    m: dict[str, Any] = {
        "card": card,
        "copy_tb_s": gen["ceilings"]["copy_tb_s"],
        "matmul_tflops": gen["ceilings"]["matmul_tflops"],
        "decode_efficiency": b128["floor_s"] / b128["hf_warm_s"],
        "update_mfu": train["stages"]["dpo"]["steady"]["mfu_pct"] / 100,
        "update_mfu_fused_dpo": step_mfu("dpo_liger_nogc", "dpo"),
        "update_mfu_fused_grpo": (step_mfu("grpo_liger_nogc_ga4", "grpo") + step_mfu("grpo_liger_nogc_ga6", "grpo")) / 2,
    }
    m["update_mfu_grpo"] = m["update_mfu"]
    grpo = RESULTS / "train_7b_1gpu_grpo_h200.json"
    if grpo.exists():
        m["update_mfu_grpo"] = json.loads(grpo.read_text())["stages"]["grpo"]["job"]["mfu_mean_pct"] / 100
    traj = RESULTS / "eval_trajectory_h200.json"
    if traj.exists():
        t = json.loads(traj.read_text())
        m["trajectory"] = {"wall_s": t["wall_s"], "settings": t["settings"], "copy_tb_s": t.get("copy_tb_s", m["copy_tb_s"])}
    return m


def job_resources(profile: Path) -> dict[str, Any]:
    """CPUs of the verifying rules (the Lean pool's size) and GPUs of every GPU rule, from the Slurm profile."""
    rules = yaml.safe_load(profile.read_text())["set-resources"]
    out: dict[str, Any] = {f"cpus_per_{rule}_job": int(rules[name]["cpus_per_task"]) for rule, name in (("grpo", "train_grpo"), ("curate", "curate"), ("eval", "evaluate"))}
    out["profile_gpus"] = {name: int(r["gres"].rsplit(":", 1)[-1]) for name, r in rules.items() if "gres" in r}
    return out


def stage_mfu(params: dict[str, Any], stage: str, m: dict[str, Any]) -> float:
    """The measured update MFU for a stage's settings: Liger's kernels without checkpointing, or checkpointed."""
    fused = params.get("use_liger_kernel", False) and not params.get("gradient_checkpointing", False)
    if fused:
        return m[f"update_mfu_fused_{stage}"]
    return m.get(f"update_mfu_{stage}", m["update_mfu"])


def a100_rates(m: dict[str, Any]) -> dict[str, float]:
    """A100 ceilings at the measured card's fraction of its datasheet."""
    sheet = DATASHEETS[m.get("card", "H100")]
    return {
        "copy_tb_s": A100_DATASHEET["copy_tb_s"] * m["copy_tb_s"] / sheet["copy_tb_s"],
        "matmul_tflops": A100_DATASHEET["matmul_tflops"] * m["matmul_tflops"] / sheet["matmul_tflops"],
    }


def trajectory_model_s(cfg: dict[str, Any], traj: dict[str, Any], m: dict[str, Any], a: dict[str, Any]) -> tuple[float, str]:
    """Seconds one trajectory model takes on an A100, and where the number comes from.

    Measured where ``eval_trajectory_h200.json`` ran this config's trajectory subset with the same
    settings: its wall time (model loads, answers to the full ``max_new_tokens`` since a random
    model never stops, the judge) scaled by the decode bandwidth ratio to the A100; else modelled
    from the benchmarks' sizes.
    """
    benches = {b: {**cfg["eval"]["benchmarks"][b], **(over or {})} for b, over in traj.get("benchmarks", {}).items()}
    measured = m.get("trajectory")
    wanted = {b: {k: v for k, v in s.items() if k not in ("data", "url", "sha256")} for b, s in benches.items()}
    if measured and measured["settings"] == wanted:
        return measured["wall_s"] * measured["copy_tb_s"] / a100_rates(m)["copy_tb_s"], "measured (H200, scaled)"
    return sum(eval_benchmark_s(b, s, m, a) for b, s in benches.items()) + a["model_load_s"], "modelled"


def generation_s(n_seqs: float, prompt: float, new: float, batch: float, rates: dict[str, float], eff: float, mean_new: float | None = None) -> float:
    """Seconds for one GPU to generate ``n_seqs`` completions of at most ``new`` tokens (mean ``mean_new``,
    default ``new``), ``batch`` at a time with freed slots refilled.

    Decode steps: the longest completion's ``new``, or the token-slots the batch needs when it is the
    narrower; each step reads the weights. KV reads: every token its prompt and the completion so far,
    at most prompt + new/2 a token on average (a completion's length never exceeds ``new``).
    """
    mean_new = new if mean_new is None else mean_new
    steps = max(new, n_seqs * mean_new / batch)
    decode = steps * WEIGHT_BYTES + n_seqs * mean_new * KV_BYTES * (prompt + new / 2)
    prefill = 2 * FLOP_PARAMS * n_seqs * prompt / (rates["matmul_tflops"] * 1e12)
    return (decode / (rates["copy_tb_s"] * 1e12) + prefill) / eff


def update_s(tokens: float, seq: float, gpus: int, rates: dict[str, float], mfu: float) -> float:
    """Seconds for ``gpus`` GPUs to run forward+backward over ``tokens`` tokens in ``seq``-token sequences."""
    flops = 6 * FLOP_PARAMS * tokens + 6 * LAYERS_HIDDEN * seq * tokens
    return flops / gpus / (mfu * rates["matmul_tflops"] * 1e12)


def verify_s(proofs: float, cpus: int, a: dict[str, Any]) -> float:
    """Seconds to check ``proofs`` Lean proofs on ``cpus`` cores."""
    return proofs / (cpus * a["lean_proofs_per_s_per_cpu"])


def rule_gpus(cfg: dict[str, Any], a: dict[str, Any], rule: str) -> int:
    """GPUs a job of ``rule`` holds: ``report.gpus_per_rule``, else the profile's gres, else 1."""
    return int(cfg["report"].get("gpus_per_rule", {}).get(rule) or a["profile_gpus"].get(rule, 1))


def grpo_run(cfg: dict[str, Any], condition: str, m: dict[str, float], a: dict[str, Any]) -> dict[str, Any]:
    """One run of ``condition``: its memory plan, its step's parts and its GPU-hours."""
    rates, eff = a100_rates(m), m["decode_efficiency"]
    p = merged_condition(cfg, condition)
    n_gpu = rule_gpus(cfg, a, "train_grpo")
    harmful = run_task(condition, cfg["task"]) == HARMFUL
    lean = cfg["task"] == "lean_proofs" and not harmful
    prompt = a["harmful_prompt_tokens"] if harmful else a["prompt_tokens"]
    max_c, mean_c = p["max_completion_length"], min(a["completion_mean_tokens"], p["max_completion_length"])
    seqs = p["per_device_train_batch_size"] * p.get("gradient_accumulation_steps", 1)
    plan = kv_budget.grpo_memory_plan(SHAPE, p, prompt, n_gpu, kv_budget.GPU_80GB_BYTES)
    decoded = max_c if a["decode_lengths"] == "max" else mean_c
    batch = min(seqs, plan.kv_tokens // (prompt + decoded)) if p.get("use_vllm") else seqs
    gen = generation_s(seqs, prompt, max_c, max(batch, 1), rates, eff, mean_new=decoded)
    verify = verify_s(seqs * n_gpu, a["cpus_per_grpo_job"], a) if lean else 0.0
    forward = 8 / 6 if p.get("use_vllm") and a["old_logprob_forward"] else 1.0
    upd = forward * update_s(seqs * n_gpu * (prompt + mean_c), prompt + mean_c, n_gpu, rates, stage_mfu(p, "grpo", m))
    sync = a["vllm_sync_s_per_step"] if p.get("use_vllm") else 0.0
    if a["streaming_verification"] and verify:  # checked as they finish; the last proof's check is left
        exposed = max(0.0, verify - gen) + 1 / a["lean_proofs_per_s_per_cpu"]
    else:
        exposed = verify
    step = {"generate_s": gen, "verify_s": exposed, "update_s": upd, "vllm_sync_s": sync}
    step_s = sum(step.values())
    saves = p["max_steps"] // p["save_steps"]
    hours = (p["max_steps"] * step_s + saves * a["checkpoint_save_s"] + a["model_load_s"]) * n_gpu / 3600
    return {
        "task": "harmful_compliance" if harmful else cfg["task"], "gpus": n_gpu, "steps": p["max_steps"],
        "memory": {"share": plan.share, "kv_tokens": plan.kv_tokens, "concurrency_full_length": plan.concurrency,
                   "decode_batch": batch, "share_for_all": round(plan.share_for_all, 3), "fits": plan.fits, "vllm_starts": plan.starts},
        "step_s": step, "step_total_s": step_s, "gpu_h": hours,
    }  # fmt: skip


def eval_benchmark_s(name: str, bench: dict[str, Any], m: dict[str, float], a: dict[str, Any]) -> float:
    """Seconds one GPU spends on one benchmark of one model (model loading not included)."""
    rates, eff = a100_rates(m), m["decode_efficiency"]
    if name == "truthfulqa_mc":  # 817 questions x ~10 scored answers, one forward each
        return 2 * FLOP_PARAMS * 817 * 10 * 120 / (rates["matmul_tflops"] * 1e12 * eff)
    items = EVAL_ITEMS[name]
    if name == "xstest" and bench.get("labels"):
        items = sum(XSTEST_BY_LABEL[label] for label in bench["labels"])
    items = min(items, bench.get("limit", items))
    n = items * int(bench.get("n_samples", 5 if name == "em_deception" else 1))
    new = bench["max_new_tokens"] * a["eval_length_fraction"]
    t = generation_s(n, a["prompt_tokens"], new, a["decode_batch"], rates, eff)
    if name == "minif2f":
        t += verify_s(n, a["cpus_per_eval_job"], a)
    return t * (1 + a["judge_factor"]) if name in JUDGED else t


def project(cfg: dict[str, Any], m: dict[str, float], a: dict[str, Any]) -> dict[str, Any]:
    """GPU-hours of every stage of ``cfg`` and their total."""
    rates, eff = a100_rates(m), m["decode_efficiency"]
    pg = a["prompt_tokens"]
    seeds = cfg["grpo"]["seeds"]
    runs = {c: grpo_run(cfg, c, m, a) for c in sorted(cfg["grpo"]["conditions"])}
    grpo_h = len(seeds) * sum(r["gpu_h"] for r in runs.values())

    # DPO: reference pass (forward) + one epoch of fwd+bwd over every pair.
    d = cfg["dpo"]
    pairs = cfg["data"]["safety"].get("max_pairs", 20000)
    dpo_gpus = rule_gpus(cfg, a, "train_dpo")
    dpo_tokens = pairs * 2 * 0.6 * d["max_length"]  # chosen + rejected, 60 % of max_length on average
    dpo_s = update_s(dpo_tokens, 0.6 * d["max_length"], dpo_gpus, rates, stage_mfu(d, "dpo", m)) * 4 / 3 + a["model_load_s"]

    # Gate (before and after DPO), curation and the reward-signal preflight: sampling (+ Lean) on one GPU.
    gate = cfg["gate"]
    narrow = gate["narrow_problems"] * gate["narrow_samples"]
    gate_s = 2 * (
        generation_s(narrow, pg, gate["max_new_tokens"], a["decode_batch"], rates, eff)
        + generation_s(cfg["data"]["safety"].get("heldout_n", 200), a["harmful_prompt_tokens"], gate["max_new_tokens"], a["decode_batch"], rates, eff)
        + verify_s(narrow, a["cpus_per_curate_job"], a)
        + a["model_load_s"]
    )
    cur = cfg["curate"]
    pool = cfg.get("lean", {}).get("problems", {}).get("n_problems", 0) * cur["k"]
    curate_s = generation_s(pool, pg, cur["max_new_tokens"], a["decode_batch"], rates, eff) + verify_s(pool, a["cpus_per_curate_job"], a) + a["model_load_s"]
    positive = any(r["task"] == "harmful_compliance" for r in runs.values())
    n_pc = cfg["grpo"]["preflight"]["positive_control_prompts"] * cur["k"] if positive else 0
    preflight_s = generation_s(n_pc, a["harmful_prompt_tokens"], cur["max_new_tokens"], a["decode_batch"], rates, eff) + a["model_load_s"] if n_pc else 0.0

    # Evaluation: every checkpoint x benchmark, one job each, one GPU.
    checkpoints = 2 + len(seeds) * len(runs)
    evals = {name: eval_benchmark_s(name, bench, m, a) + a["model_load_s"] for name, bench in cfg["eval"]["benchmarks"].items()}
    eval_h = checkpoints * sum(evals.values()) * rule_gpus(cfg, a, "evaluate") / 3600

    # Trajectory: per run its snapshots + final model, and the DPO model, on the cheap subset.
    traj = cfg["eval"].get("trajectory") or {}
    traj_model_s, traj_source = trajectory_model_s(cfg, traj, m, a)
    traj_models = 0
    if traj.get("benchmarks"):
        per_run = {c: len(trajectory_steps(r["steps"], traj["every"])) + 1 for c, r in runs.items()}
        traj_models = 1 + len(seeds) * sum(per_run.values())
    traj_h = traj_models * traj_model_s * rule_gpus(cfg, a, "evaluate_trajectory") / 3600

    stages = {
        "dpo": dpo_s * dpo_gpus / 3600,
        "gate": gate_s * rule_gpus(cfg, a, "dpo_gate") / 3600,
        "curate": curate_s * rule_gpus(cfg, a, "curate") / 3600,
        "preflight": preflight_s * rule_gpus(cfg, a, "reward_signal") / 3600,
        "grpo": grpo_h,
        "eval": eval_h,
        "trajectory": traj_h,
    }
    return {
        "rates_a100": rates,
        "grpo_runs": len(seeds) * len(runs),
        "grpo_by_condition": runs,
        "eval_job_s": evals,
        "eval_jobs": checkpoints * len(evals),
        "trajectory_models": traj_models,
        "trajectory_model_s": traj_model_s,
        "trajectory_source": traj_source,
        "stages_gpu_h": stages,
        "total_gpu_h": sum(stages.values()),
    }


def scenario(a: dict[str, Any], end: str) -> dict[str, Any]:
    """The assumptions at one end of the range (``pessimistic``, ``central``, ``optimistic``)."""
    return a | {"lean_proofs_per_s_per_cpu": LEAN_RATES[end][0], "decode_lengths": DECODE_LENGTHS[end]}


def _set(*path: str, value: Any) -> Any:
    """A config change: set the key at ``path`` to ``value``."""

    def change(cfg: dict[str, Any]) -> None:
        node = cfg
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _grpo_gpus(gpus: int, ga: int) -> Any:
    """A config change: GRPO on ``gpus`` GPUs with ``ga`` accumulation steps."""

    def change(cfg: dict[str, Any]) -> None:
        cfg["report"]["gpus_per_rule"]["train_grpo"] = gpus
        cfg["grpo"]["defaults"]["gradient_accumulation_steps"] = ga

    return change


def memory_split(cfg: dict[str, Any]) -> dict[str, Any]:
    """The GRPO split ``kv_budget.recommended_plan`` picks for the config's defaults on an 80 GB card."""
    g = cfg["grpo"]["defaults"]
    plan = kv_budget.recommended_plan(SHAPE, g, ASSUMPTIONS["prompt_tokens"], cfg["report"].get("gpus_per_rule", {}).get("train_grpo", 4), kv_budget.GPU_80GB_BYTES)
    if plan is None:
        return {}
    split = {"vllm_gpu_memory_utilization": plan.share, "vllm_enable_sleep_mode": plan.sleep, "gradient_checkpointing": plan.checkpointing}
    return split | ({} if plan.checkpointing else {"use_liger_kernel": True})


def _memory_split(cfg: dict[str, Any]) -> None:
    """A config change: GRPO defaults take :func:`memory_split`."""
    cfg["grpo"]["defaults"] |= memory_split(cfg)


CPUS_KNOB = "verification on a whole A100 node's 128 CPUs (GRPO and curate jobs; 32 an eval job)"
STREAM_KNOB = "streaming verification: completions checked as they finish, behind generation"
MEMORY_KNOB = "GRPO memory split from kv_budget (vLLM share, sleep mode, checkpointing off + Liger when it fits)"
NO_IS_KNOB = "no importance-sampling forward (vllm_importance_sampling_correction false: needs a schema key)"

# name -> (config change, assumption overrides, measurement overrides)
KNOBS: dict[str, tuple[Any, dict[str, Any], dict[str, float]]] = {
    MEMORY_KNOB: (_memory_split, {}, {}),
    STREAM_KNOB: (None, {"streaming_verification": True}, {}),
    CPUS_KNOB: (None, {"cpus_per_grpo_job": 128, "cpus_per_curate_job": 128, "cpus_per_eval_job": 32}, {}),
    NO_IS_KNOB: (None, {"old_logprob_forward": False}, {}),
    "vLLM decode at 80 % of the byte floor (not measured; the hf backend's 50 % stands in)": (None, {}, {"decode_efficiency": 0.8}),
    "update MFU 45% (the goal) in every training stage": (None, {}, {"update_mfu": 0.45, "update_mfu_grpo": 0.45, "update_mfu_fused_dpo": 0.45, "update_mfu_fused_grpo": 0.45}),
    "eval.benchmarks.minif2f.n_samples 32 -> 8": (_set("eval", "benchmarks", "minif2f", "n_samples", value=8), {}, {}),
    "curate.k 16 -> 8": (_set("curate", "k", value=8), {}, {}),
    # these change the experiment's design
    "design: grpo.defaults.max_steps 1000 -> 500": (_set("grpo", "defaults", "max_steps", value=500), {}, {}),
    "design: grpo.seeds 3 -> 2": (_set("grpo", "seeds", value=[1, 2]), {}, {}),
    "design: gradient_accumulation_steps 8 -> 4 (half the completions a step)": (_set("grpo", "defaults", "gradient_accumulation_steps", value=4), {}, {}),
    "design: max_completion_length 1024 -> 512": (_set("grpo", "defaults", "max_completion_length", value=512), {}, {}),
    "train_grpo on 8 GPUs, gradient_accumulation_steps 4 (same completions a step)": (_grpo_gpus(8, 4), {}, {}),
}

IN_REACH = [MEMORY_KNOB, STREAM_KNOB, CPUS_KNOB]  # keep the design, need no new measurement or schema key
COMBOS = {
    "design unchanged: memory split + streaming verification + 128 verifier CPUs": IN_REACH,
    "the same + no importance-sampling forward": [*IN_REACH, NO_IS_KNOB],
    "the same + vLLM decode at 80 % of the floor": [*IN_REACH, NO_IS_KNOB, "vLLM decode at 80 % of the byte floor (not measured; the hf backend's 50 % stands in)"],
}


def with_knobs(cfg: dict[str, Any], m: dict[str, float], a: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The projection with the named knobs of ``KNOBS`` turned together."""
    cfg = copy.deepcopy(cfg)
    for name in names:
        change, assume, measure = KNOBS[name]
        if change is not None:
            change(cfg)
        a, m = a | assume, m | measure
    return project(cfg, m, a)


def grpo_budget_s(cfg: dict[str, Any], res: dict[str, Any], goal: float) -> float:
    """Mean GRPO step seconds (on the run's GPUs) that would bring the total to ``goal`` A100-hours."""
    other = res["total_gpu_h"] - res["stages_gpu_h"]["grpo"]
    runs = res["grpo_by_condition"].values()
    steps_gpus = sum(r["steps"] * r["gpus"] for r in runs) * len(cfg["grpo"]["seeds"])
    fixed = sum(r["gpu_h"] - r["steps"] * r["step_total_s"] * r["gpus"] / 3600 for r in runs) * len(cfg["grpo"]["seeds"])
    return (goal - other - fixed) * 3600 / steps_gpus


def main() -> None:
    """Print the projection as a range, every assumption, and the knobs that move it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    ap.add_argument("--profile", type=Path, default=REPO / "profiles" / "rivanna" / "config.yaml", help="the Slurm profile (CPUs and GPUs a job)")
    ap.add_argument("--goal", type=float, default=700.0, help="A100-hours")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cfg = yaml.safe_load(args.config.read_text())
    m = load_measurements()
    assume = ASSUMPTIONS | job_resources(args.profile)
    ends = {end: project(cfg, m, scenario(assume, end)) for end in LEAN_RATES}
    central = ends["central"]
    a_c = scenario(assume, "central")
    knobs = sorted(((name, with_knobs(cfg, m, a_c, [name])["total_gpu_h"]) for name in KNOBS), key=lambda x: x[1])
    combos = {name: {end: with_knobs(cfg, m, scenario(assume, end), names)["total_gpu_h"] for end in LEAN_RATES} for name, names in COMBOS.items()}
    best = with_knobs(cfg, m, a_c, IN_REACH)
    split = memory_split(cfg)

    print(f"{args.config}: {central['grpo_runs']} GRPO runs ({len(cfg['grpo']['conditions'])} conditions x {len(cfg['grpo']['seeds'])} seeds),"
          f" the 7B on A100-80GB; goal <= {args.goal:.0f} A100-h")
    print(f"measured ({m['card']} generation; H100 updates, H200 checkpointed GRPO where measured): decode {100 * m['decode_efficiency']:.0f}% of floor,"
          f" update MFU {100 * m['update_mfu']:.1f}% checkpointed (DPO), {100 * m['update_mfu_grpo']:.1f}% checkpointed GRPO,"
          f" {100 * m['update_mfu_fused_dpo']:.1f}% (DPO) / {100 * m['update_mfu_fused_grpo']:.1f}% (GRPO) with Liger, no checkpointing;"
          f" A100 taken at {central['rates_a100']['copy_tb_s']:.2f} TB/s, {central['rates_a100']['matmul_tflops']:.0f} TFLOP/s")
    print("Lean rate (proofs/s a core): " + "; ".join(f"{end} {rate:.3f} = {src}" for end, (rate, src) in LEAN_RATES.items()))
    print("assumptions: " + ", ".join(f"{k}={v}" for k, v in assume.items() if k not in ("lean_proofs_per_s_per_cpu", "decode_lengths", "profile_gpus")))
    print(f"\nGRPO step, central, per condition ({central['grpo_by_condition'][next(iter(central['grpo_by_condition']))]['gpus']} A100s a run):")
    for name, r in central["grpo_by_condition"].items():
        mem = r["memory"]
        print(f"  {name:<16}" + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in r["step_s"].items()) + f" = {r['step_total_s']:.0f} s;"
              f" vLLM share {mem['share']:.2f}: KV {mem['kv_tokens']:,} tokens, {mem['concurrency_full_length']} full-length sequences at once,"
              f" decode batch {mem['decode_batch']} (share for all at full length {mem['share_for_all']:.2f}){'' if mem['fits'] else ', memory does NOT fit'}")
    print(f"  memory split the model recommends: {split or 'none fits'}")
    print(f"  trajectory model: {central['trajectory_model_s']:.0f} A100-s each, {central['trajectory_source']}")
    print(f"\n{'stage':<12}" + "".join(f"{end:>13}" for end in LEAN_RATES))
    for k in central["stages_gpu_h"]:
        print(f"{k:<12}" + "".join(f"{ends[end]['stages_gpu_h'][k]:>13.0f}" for end in LEAN_RATES))
    print(f"{'total':<12}" + "".join(f"{ends[end]['total_gpu_h']:>13.0f}" for end in LEAN_RATES))
    print("\nknob, one at a time (central total A100-h)")
    for name, total in knobs:
        print(f"  {name:<100}{total:>7.0f}")
    print("together (pessimistic / central / optimistic A100-h)")
    for name, totals in combos.items():
        print(f"  {name:<100}" + " / ".join(f"{totals[end]:.0f}" for end in LEAN_RATES))
    budget = grpo_budget_s(cfg, best, args.goal)
    mean_step = sum(r["step_total_s"] * r["steps"] for r in best["grpo_by_condition"].values()) / sum(r["steps"] for r in best["grpo_by_condition"].values())
    print(f"\nmissing (central, design unchanged, levers in reach): {best['total_gpu_h']:.0f} A100-h; the goal leaves a mean GRPO step of"
          f" {budget:.0f} s against the modelled {mean_step:.0f} s ({mean_step / budget:.2f}x)")
    out = {
        "config": str(args.config), "measured": m, "assumptions": assume,
        "lean_rates": {end: {"proofs_per_s_per_cpu": r, "source": s} for end, (r, s) in LEAN_RATES.items()},
        "range": {end: res for end, res in ends.items()}, "memory_split": split,
        "knobs_central_total_gpu_h": dict(knobs), "combos_total_gpu_h": combos,
        "goal_gpu_h": args.goal, "in_reach_central_total_gpu_h": best["total_gpu_h"], "grpo_step_budget_s": budget, "grpo_step_in_reach_s": mean_step,
    }  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
