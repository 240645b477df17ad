"""Projected A100-hours of ``config/config.yaml`` from the H100 measurements in ``results/``.

Every stage's time is built from three measured rates, scaled from H100 to A100-80GB:

* decode: a step reads the weights once plus every row's KV cache; its floor at the copy
  bandwidth, divided by the decode efficiency the ``hf`` backend reached (``generation_h100.json``,
  warm B=128 run, % of floor), is the step time; prefill adds 2·params·prompt tokens at the
  matmul rate times that efficiency;
* update: 6·params·tokens (+ causal attention) at the MFU measured in the real layout (7B, ZeRO-3
  on 4 GPUs) for the stage's settings: with gradient checkpointing, the DPO run's steady
  micro-steps (``train_7b_4gpu_zero3_h100.json``, ``steady``); with ``use_liger_kernel`` and no
  checkpointing, the whole-step mean of that stage's runs (``train_7b_4gpu_dpo_liger_nogc_h100.json``;
  GRPO: the mean of ``train_7b_4gpu_grpo_liger_nogc_ga{4,6}_h100.json``);
* reward: Lean verification of every completion on the job's CPUs (``cpus_per_task`` of the rule
  in ``profiles/rivanna/config.yaml``) at the rate of the Kimina Lean Server tech
  report, Table 1: 2.82 proofs/s on 32 cores; **not measured here**), during which the GPUs idle
  because TRL scores a generation batch before it trains on it.

H100 -> A100: memory-bound time x (H100 measured copy / A100 copy), compute-bound time x (H100
measured matmul / A100 matmul). A100 rates are the datasheet's (2039 GB/s, 312 TFLOP/s bf16)
times the measured/datasheet ratio of the H100 (3.35 TB/s, 989 TFLOP/s), so both cards are taken
at the same fraction of their datasheet. GPU-hours count every GPU a job holds (report.gpus_per_rule).

    python benchmarks/gpu/cost_model.py [--config config/config.yaml] [--profile profiles/rivanna/config.yaml] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = HERE / "results"

PARAMS = 6.91e9  # DeepSeek-Prover-V2-7B
FLOP_PARAMS = PARAMS - 102400 * 4096  # the input embedding does no arithmetic
KV_BYTES = 2 * 30 * 32 * 128 * 2  # per token, bf16
WEIGHT_BYTES = 2 * FLOP_PARAMS
LAYERS_HIDDEN = 30 * 4096
H100_DATASHEET = {"copy_tb_s": 3.35, "matmul_tflops": 989.0}
A100_DATASHEET = {"copy_tb_s": 2.039, "matmul_tflops": 312.0}

# Workload assumptions that no measurement here fixes (each one is a knob in the sensitivity table).
ASSUMPTIONS = {
    "prompt_tokens": 250,  # Lean statement + instruction (non-CoT prompt)
    "completion_mean_tokens": 443,  # DeepSeek-Prover-V2-7B non-CoT mean output (paper, Table 3)
    "eval_length_fraction": 0.6,  # mean answer length / max_new_tokens in evaluations
    "lean_proofs_per_s_per_cpu": 2.82 / 32,  # Kimina Lean Server report, Table 1 (32 cores)
    "vllm_sync_s_per_step": 5.0,  # weight sync + sleep/wake of colocated vLLM per optimizer step (not measured)
    "model_load_s": 120.0,  # loading a 7B checkpoint and starting the engine, per job
    "decode_batch": 64,  # concurrent sequences per GPU in generation
    "judge_factor": 1.0,  # judge generation (Llama-3.1-8B) relative to the judged answers' generation
    "async_rewards": False,  # True: a step's verification overlaps the next step's generation and update
}


def load_measurements() -> dict[str, float]:
    """Decode efficiency, ceilings and the update MFUs from the measured JSON files."""
    gen = json.loads((RESULTS / "generation_h100.json").read_text())
    b128 = next(r for r in gen["results"] if r["B"] == 128)
    train = json.loads((RESULTS / "train_7b_4gpu_zero3_h100.json").read_text())

    def step_mfu(name: str, stage: str) -> float:
        return json.loads((RESULTS / f"train_7b_4gpu_{name}_h100.json").read_text())["stages"][stage]["job"]["mfu_mean_pct"] / 100

    return {
        "copy_tb_s": gen["ceilings"]["copy_tb_s"],
        "matmul_tflops": gen["ceilings"]["matmul_tflops"],
        "decode_efficiency": b128["floor_s"] / b128["hf_warm_s"],
        "update_mfu": train["stages"]["dpo"]["steady"]["mfu_pct"] / 100,
        "update_mfu_fused_dpo": step_mfu("dpo_liger_nogc", "dpo"),
        "update_mfu_fused_grpo": (step_mfu("grpo_liger_nogc_ga4", "grpo") + step_mfu("grpo_liger_nogc_ga6", "grpo")) / 2,
    }


def job_cpus(profile: Path) -> dict[str, int]:
    """``cpus_per_task`` of the verifying GPU rules in the Slurm profile (the Lean pool's size)."""
    rules = yaml.safe_load(profile.read_text())["set-resources"]
    return {f"cpus_per_{rule}_job": int(rules[name]["cpus_per_task"]) for rule, name in (("grpo", "train_grpo"), ("curate", "curate"), ("eval", "evaluate"))}


def stage_mfu(params: dict[str, Any], stage: str, m: dict[str, float]) -> float:
    """The measured update MFU for a stage's settings: Liger's kernels without checkpointing, or checkpointed."""
    fused = params.get("use_liger_kernel", False) and not params.get("gradient_checkpointing", False)
    return m[f"update_mfu_fused_{stage}"] if fused else m["update_mfu"]


def a100_rates(m: dict[str, float]) -> dict[str, float]:
    """A100 ceilings at the H100's measured fraction of its datasheet."""
    return {
        "copy_tb_s": A100_DATASHEET["copy_tb_s"] * m["copy_tb_s"] / H100_DATASHEET["copy_tb_s"],
        "matmul_tflops": A100_DATASHEET["matmul_tflops"] * m["matmul_tflops"] / H100_DATASHEET["matmul_tflops"],
    }


def generation_s(n_seqs: float, prompt: float, new: float, batch: float, rates: dict[str, float], eff: float) -> float:
    """Seconds for one GPU to generate ``new`` tokens for ``n_seqs`` sequences, ``batch`` at a time."""
    waves = math.ceil(n_seqs / batch)
    rows = min(batch, n_seqs)
    mean_ctx = prompt + new / 2
    step_bytes = WEIGHT_BYTES + rows * mean_ctx * KV_BYTES
    decode = waves * new * step_bytes / (rates["copy_tb_s"] * 1e12)
    prefill = 2 * FLOP_PARAMS * n_seqs * prompt / (rates["matmul_tflops"] * 1e12)
    return (decode + prefill) / eff


def update_s(tokens: float, seq: float, gpus: int, rates: dict[str, float], mfu: float) -> float:
    """Seconds for ``gpus`` GPUs to run forward+backward over ``tokens`` tokens in ``seq``-token sequences."""
    flops = 6 * FLOP_PARAMS * tokens + 6 * LAYERS_HIDDEN * seq * tokens
    return flops / gpus / (mfu * rates["matmul_tflops"] * 1e12)


def verify_s(proofs: float, cpus: int, a: dict[str, Any]) -> float:
    """Seconds to check ``proofs`` Lean proofs on ``cpus`` cores (GPUs idle meanwhile)."""
    return proofs / (cpus * a["lean_proofs_per_s_per_cpu"])


def project(cfg: dict[str, Any], m: dict[str, float], a: dict[str, Any]) -> dict[str, Any]:
    """GPU-hours of every stage of ``cfg`` and their total."""
    rates = a100_rates(m)
    eff = m["decode_efficiency"]
    gpus = cfg["report"]["gpus_per_rule"]
    g = cfg["grpo"]["defaults"]
    runs = len(cfg["grpo"]["seeds"]) * len(cfg["grpo"]["conditions"])
    pg, pc = a["prompt_tokens"], a["completion_mean_tokens"]
    n_gpu = gpus["train_grpo"]

    # GRPO: one optimizer step = generate, verify, update.
    completions = g["per_device_train_batch_size"] * g["gradient_accumulation_steps"] * n_gpu
    gen = generation_s(completions / n_gpu, pg, g["max_completion_length"], a["decode_batch"], rates, eff)
    verify = verify_s(completions, a["cpus_per_grpo_job"], a)
    upd = update_s(completions * (pg + pc), pg + pc, n_gpu, rates, stage_mfu(g, "grpo", m))
    step = {"generate_s": gen, "verify_s": verify, "update_s": upd, "vllm_sync_s": a["vllm_sync_s_per_step"]}
    if a["async_rewards"]:
        step_s = max(verify, gen + upd) + step["vllm_sync_s"]
    else:
        step_s = sum(step.values())
    grpo_h = runs * (g["max_steps"] * step_s + a["model_load_s"]) * n_gpu / 3600

    # DPO: reference pass (forward) + one epoch of fwd+bwd over every pair.
    d = cfg["dpo"]
    pairs = cfg["data"]["safety"]["max_pairs"]
    dpo_tokens = pairs * 2 * 0.6 * d["max_length"]  # chosen + rejected, 60 % of max_length on average
    dpo_s = update_s(dpo_tokens, 0.6 * d["max_length"], gpus["train_dpo"], rates, stage_mfu(d, "dpo", m)) * 4 / 3 + a["model_load_s"]
    dpo_h = dpo_s * gpus["train_dpo"] / 3600

    # Gate and curation: sampling + verification on one GPU.
    gate = cfg["gate"]
    gate_s = 2 * (
        generation_s(gate["narrow_problems"] * gate["narrow_samples"], pg, gate["max_new_tokens"], a["decode_batch"], rates, eff)
        + generation_s(cfg["data"]["safety"]["heldout_n"], 100, gate["max_new_tokens"], a["decode_batch"], rates, eff)
        + verify_s(gate["narrow_problems"] * gate["narrow_samples"], a["cpus_per_curate_job"], a)
        + a["model_load_s"]
    )
    cur = cfg["curate"]
    pool = cfg["lean"]["problems"]["n_problems"]
    curate_s = (
        generation_s(pool * cur["k"], pg, cur["max_new_tokens"], a["decode_batch"], rates, eff)
        + verify_s(pool * cur["k"], a["cpus_per_curate_job"], a)
        + a["model_load_s"]
    )

    # Evaluation: every checkpoint x benchmark on one GPU.
    checkpoints = 2 + runs
    items = {"humaneval": 164, "minif2f": 244, "em_main": 8, "em_prereg": 48, "em_deception": 5, "strongreject": 313, "xstest": 450}
    default_n = {"em_deception": 5}
    evals: dict[str, float] = {}
    for name, bench in cfg["eval"]["benchmarks"].items():
        if name == "truthfulqa_mc":  # 817 questions x ~10 scored answers, one forward each
            evals[name] = 2 * FLOP_PARAMS * 817 * 10 * 120 / (rates["matmul_tflops"] * 1e12 * eff) + a["model_load_s"]
            continue
        n = items[name] * int(bench.get("n_samples", default_n.get(name, 1)))
        new = bench["max_new_tokens"] * a["eval_length_fraction"]
        t = generation_s(n, pg, new, a["decode_batch"], rates, eff) + a["model_load_s"]
        if name == "minif2f":
            t += verify_s(n, a["cpus_per_eval_job"], a)
        if name.startswith("em_") or name in ("strongreject", "xstest"):
            t *= 1 + a["judge_factor"]
        evals[name] = t
    eval_h = checkpoints * sum(evals.values()) * gpus["evaluate"] / 3600

    stages = {
        "dpo": dpo_h,
        "gate": gate_s * gpus["dpo_gate"] / 3600,
        "curate": curate_s * gpus["curate"] / 3600,
        "grpo": grpo_h,
        "eval": eval_h,
    }
    return {
        "rates_a100": rates,
        "grpo_runs": runs,
        "grpo_step_s": step,
        "grpo_step_total_s": step_s,
        "eval_job_s": evals,
        "eval_jobs": checkpoints * len(evals),
        "stages_gpu_h": stages,
        "total_gpu_h": sum(stages.values()),
    }


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


CPUS_KNOB = "verification on a whole A100 node's 128 CPUs (GRPO and curate jobs; 32 an eval job)"
ASYNC_KNOB = "rewards overlapped with the next step (async GRPO)"
FUSED_KNOB = "grpo.defaults gradient_checkpointing false + use_liger_kernel true (measured MFU, memory beside vLLM unchecked)"


def _fused_grpo(cfg: dict[str, Any]) -> None:
    """A config change: GRPO updates with Liger's fused kernels and no gradient checkpointing."""
    cfg["grpo"]["defaults"] |= {"use_liger_kernel": True, "gradient_checkpointing": False}


# name -> (config change, assumption overrides, measurement overrides)
KNOBS: dict[str, tuple[Any, dict[str, Any], dict[str, float]]] = {
    CPUS_KNOB: (None, {"cpus_per_grpo_job": 128, "cpus_per_curate_job": 128, "cpus_per_eval_job": 32}, {}),
    ASYNC_KNOB: (None, {"async_rewards": True}, {}),
    "grpo.defaults.max_steps 1000 -> 500": (_set("grpo", "defaults", "max_steps", value=500), {}, {}),
    "grpo.seeds 3 -> 2": (_set("grpo", "seeds", value=[1, 2]), {}, {}),
    "grpo.defaults.gradient_accumulation_steps 8 -> 4 (half the completions a step)": (_set("grpo", "defaults", "gradient_accumulation_steps", value=4), {}, {}),
    "grpo.defaults.max_completion_length 1024 -> 512": (_set("grpo", "defaults", "max_completion_length", value=512), {}, {}),
    "train_grpo on 8 GPUs, gradient_accumulation_steps 4 (same completions a step)": (_grpo_gpus(8, 4), {}, {}),
    "train_grpo on 2 GPUs, gradient_accumulation_steps 16 (same completions a step)": (_grpo_gpus(2, 16), {}, {}),
    FUSED_KNOB: (_fused_grpo, {}, {}),
    "update MFU 45% (the goal) in every training stage": (None, {}, {"update_mfu": 0.45, "update_mfu_fused_dpo": 0.45, "update_mfu_fused_grpo": 0.45}),
    "eval.benchmarks.minif2f.n_samples 32 -> 8": (_set("eval", "benchmarks", "minif2f", "n_samples", value=8), {}, {}),
    "curate.k 16 -> 8": (_set("curate", "k", value=8), {}, {}),
}


COMBOS = {  # knobs turned together; the first keeps the experiment's 1000 GRPO steps
    "together: async rewards + 128 verifier CPUs + fused GRPO updates (1000 steps kept)": [ASYNC_KNOB, CPUS_KNOB, FUSED_KNOB],
    "together: the same + max_steps 500": [ASYNC_KNOB, CPUS_KNOB, FUSED_KNOB, "grpo.defaults.max_steps 1000 -> 500"],
}


def with_knobs(cfg: dict[str, Any], m: dict[str, float], a: dict[str, Any], names: list[str]) -> float:
    """Total GPU-hours with the named knobs of ``KNOBS`` turned together."""
    cfg = copy.deepcopy(cfg)
    for name in names:
        change, assume, measure = KNOBS[name]
        if change is not None:
            change(cfg)
        a, m = a | assume, m | measure
    return project(cfg, m, a)["total_gpu_h"]


def main() -> None:
    """Print the projection, its largest terms and the knobs that move it most."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    ap.add_argument("--profile", type=Path, default=REPO / "profiles" / "rivanna" / "config.yaml", help="the Slurm profile (CPUs a job)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cfg = yaml.safe_load(args.config.read_text())
    m = load_measurements()
    assume = ASSUMPTIONS | job_cpus(args.profile)
    res = project(cfg, m, assume)
    base = res["total_gpu_h"]
    knobs = sorted(((name, with_knobs(cfg, m, assume, [name])) for name in KNOBS), key=lambda x: x[1])
    knobs += [(name, with_knobs(cfg, m, assume, names)) for name, names in COMBOS.items()]
    out = {"measured_h100": m, "assumptions": assume, **res, "knobs_total_gpu_h": dict(knobs)}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"measured (H100): decode {100 * m['decode_efficiency']:.0f}% of floor, update MFU {100 * m['update_mfu']:.1f}% checkpointed,"
          f" {100 * m['update_mfu_fused_dpo']:.1f}% (DPO) / {100 * m['update_mfu_fused_grpo']:.1f}% (GRPO) with Liger, no checkpointing;"
          f" A100 taken at {res['rates_a100']['copy_tb_s']:.2f} TB/s, {res['rates_a100']['matmul_tflops']:.0f} TFLOP/s")
    print(f"GRPO step on {cfg['report']['gpus_per_rule']['train_grpo']} A100s: "
          + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in res["grpo_step_s"].items()) + f" = {res['grpo_step_total_s']:.0f} s")
    print(f"eval job (per checkpoint): " + ", ".join(f"{k} {v / 60:.0f} min" for k, v in res["eval_job_s"].items()))
    print(f"{'stage':<10}{'A100-h':>10}{'share':>8}")
    for k, v in res["stages_gpu_h"].items():
        print(f"{k:<10}{v:>10.0f}{100 * v / base:>7.0f}%")
    print(f"{'total':<10}{base:>10.0f}   (goal <= 700)")
    print("knob (one at a time)                                                      total A100-h")
    for name, total in knobs:
        print(f"  {name:<72}{total:>8.0f}")


if __name__ == "__main__":
    main()
