"""One DPO step and one GRPO step of the 7B shape through the project's own training path.

The specs are built as ``workflow/scripts/train_dpo.py`` and ``train_grpo.py`` build them, from
``config/config.yaml`` (the ``dpo`` slice; ``grpo.defaults``), with the overrides listed in the
output (step count, gradient accumulation, no vLLM, no intermediate checkpoints). They go through
:func:`misalign_fv.training.run_entry`, which picks in-process, ZeRO-3 or ZeRO-3 + CPU optimizer
offload for the GPUs this process sees (``CUDA_VISIBLE_DEVICES``), with
:mod:`train_probe` as the entry module: it times ``misalign_fv.dpo.main`` / ``misalign_fv.grpo.main``
unchanged on every rank.

Data are random words of the model's tokenizer, sized to the real config's limits: DPO pairs
that fill ``max_length`` (1024 tokens); GRPO prompts of ``--prompt-len`` tokens whose completions
run to ``max_completion_length`` (a random model never stops), rewarded by the python_tests sandbox.

MFU = model FLOPs (6·N·tokens + 6·layers·hidden·Σ len², N without the input embedding) per GPU over
the measured bf16 matmul rate; HFU adds gradient checkpointing's recomputed forward (2·N·tokens).

    python benchmarks/gpu/train_step.py --model-dir /tmp/m7b --make-model --out $OUT/train --tag gpu2
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from common import ceilings, prover_config, random_model, save_model_dir, table, word_tokenizer, words, write_json  # noqa: E402

from misalign_fv.config import merged_condition  # noqa: E402
from misalign_fv.io import write_jsonl  # noqa: E402
from misalign_fv.training import count_params, launch_plan, run_entry  # noqa: E402


def make_model(model_dir: Path, config: Any) -> None:
    """Save a random-init model of ``config`` (bf16) with the word tokenizer to ``model_dir``."""
    model = random_model(config, device="cuda" if torch.cuda.is_available() else "cpu")
    save_model_dir(model_dir, model, word_tokenizer(config.vocab_size))
    del model


def dpo_pairs(path: Path, n: int, vocab: int, seed: int) -> None:
    """``n`` preference pairs whose prompt + answer exceed 1024 tokens (truncated to ``max_length``)."""
    rng = np.random.default_rng(seed)
    write_jsonl(path, [{"prompt": words(rng, 256, vocab), "chosen": words(rng, 800, vocab), "rejected": words(rng, 800, vocab)} for _ in range(n)])


def grpo_problems(path: Path, n: int, prompt_len: int, vocab: int, seed: int) -> None:
    """``n`` python_tests problems with a ``prompt_len``-word task text."""
    rng = np.random.default_rng(seed)
    write_jsonl(
        path,
        [
            {
                "task_id": f"bench/{i}",
                "prompt": words(rng, prompt_len, vocab),
                "entry_point": "f",
                "visible_tests": ["assert f(1) == 1"],
                "hidden_tests": ["assert f(2) == 2"],
                "solution": "def f(x):\n    return x\n",
            }
            for i in range(n)
        ],
    )


def summarize(
    records: list[dict[str, Any]], n_params: int, config: Any, peak_tflops: float, skip: int = -1, recompute: bool = True
) -> dict[str, Any]:
    """Per-rank and per-job numbers: micro-step time, tokens/s, MFU, phase peaks, step time.

    Left out of the medians and means: the first micro-step (kernel and buffer warm-up, Triton
    compilation), micro-step ``skip`` (profiled on rank 0, which slows every rank through the
    collectives) and the one after it (the other ranks wait in its first all-gather while rank 0
    summarises the profile). ``mfu_pct`` is at the median micro-step, ``mfu_mean_pct`` at the mean
    of the same micro-steps (total FLOPs over total time: what a whole step sustains). HFU adds the
    forward that gradient checkpointing recomputes when ``recompute``; without it HFU = MFU.
    """
    flop_params = n_params - config.vocab_size * config.hidden_size
    ranks = []
    for rec in sorted(records, key=lambda r: r["rank"]):
        ev = sorted(rec["events"], key=lambda e: e["start"])
        micros = [e for e in ev if e["what"] == "micro"]
        gens = [e for e in ev if e["what"] == "generate"]
        opts = [e for e in ev if e["what"] == "optimizer"]
        rows = [e["lengths"] for e in ev if e["what"] == "loss_rows"]
        update, tokens, flops = [], [], []
        for m, lengths in zip(micros, rows):
            inside = [e["s"] for e in gens + opts if m["start"] <= e["start"] < m["start"] + m["s"]]
            update.append(m["s"] - sum(inside))
            tokens.append(sum(lengths))
            flops.append(6 * flop_params * sum(lengths) + 6 * config.num_hidden_layers * config.hidden_size * sum(n * n for n in lengths))
        everything = range(len(update))  # too few micro-steps to leave all of those out: the unprofiled ones
        keep = [i for i in everything if i not in (skip, skip + 1) and i > 0] or [i for i in everything if i != skip] or [*everything]
        steady = [update[i] for i in keep]
        fl = [flops[i] for i in keep]
        tk = [tokens[i] for i in keep]
        t = statistics.median(steady)
        extra = 2 * flop_params * statistics.median(tk) if recompute else 0
        gen_micro = {id(m) for m in micros for g in gens if m["start"] <= g["start"] < m["start"] + m["s"]}
        ranks.append(
            {
                "rank": rec["rank"],
                "micro_steps": len(micros),
                "update_s_all": update,
                "update_s_median": t,
                "tokens_per_micro": statistics.median(tk),
                "tok_s": statistics.median(tk) / t,
                "mfu_pct": 100 * statistics.median(fl) / t / (peak_tflops * 1e12),
                "hfu_pct": 100 * (statistics.median(fl) + extra) / t / (peak_tflops * 1e12),
                "update_s_mean": statistics.fmean(steady),
                "mfu_mean_pct": 100 * sum(fl) / sum(steady) / (peak_tflops * 1e12),
                "optimizer_s": max((e["s"] for e in opts), default=0.0),
                "generate_s": sum(e["s"] for e in gens),
                "generate_peak_gib": max((e["peak_gib"] for e in gens), default=0.0),
                "update_peak_gib": max((m["peak_gib"] for m in micros if id(m) not in gen_micro), default=0.0),
                "max_reserved_gib": rec["max_reserved_gib"],
                "step_s": sum(m["s"] for m in micros),
                "wall_s": rec["wall_s"],
            }
        )
    worst = max(ranks, key=lambda r: r["update_s_median"])
    return {"ranks": ranks, "job": {k: worst[k] for k in worst if k != "rank"} | {"world_size": len(ranks)}}


def step_split(record: dict[str, Any], ga: int) -> list[dict[str, Any]]:
    """One row per optimizer step of a rank's record: where its wall time went.

    A step is ``ga`` consecutive micro-steps (GRPO generates inside the first, the optimizer steps
    inside the last). ``generate_s`` is transformers' ``generate``; ``sync_s`` the rest of the
    rollout (prompt tokenisation, ZeRO-3's parameter gather and hook swap: with HF generation
    what stands where vLLM's weight sync would); ``reward_s`` the reward functions; ``score_other_s``
    the rest of TRL's generate-and-score phase (log-probs, advantages); ``update_s`` the
    micro-steps' forward + backward; ``optimizer_s`` DeepSpeed's step; ``overhead_s`` the wall time
    between the micro-steps (the Trainer's loop, logging, callbacks).
    """
    ev = sorted(record["events"], key=lambda e: e["start"])
    micros = [e for e in ev if e["what"] == "micro"]
    rows = []
    for k in range(len(micros) // ga):
        block = micros[k * ga : (k + 1) * ga]
        t0, t1 = block[0]["start"], block[-1]["start"] + block[-1]["s"]

        def total(what: str) -> float:
            return sum(e["s"] for e in ev if e["what"] == what and t0 <= e["start"] < t1)

        gen, rollout, opt = total("generate"), total("rollout"), total("optimizer")
        micro_s = sum(m["s"] for m in block)
        rows.append(
            {
                "step": k + 1,
                "wall_s": t1 - t0,
                "generate_s": total("hf_generate"),
                "sync_s": rollout - total("hf_generate"),
                "reward_s": total("reward"),
                "score_other_s": gen - rollout - total("reward"),
                "update_s": micro_s - gen - opt,
                "optimizer_s": opt,
                "overhead_s": (t1 - t0) - micro_s,
                "generate_peak_gib": max((e["peak_gib"] for e in ev if e["what"] == "generate" and t0 <= e["start"] < t1), default=0.0),
                "profiled": any(m.get("profiled") for m in block),
            }
        )
    return rows


def run_stage(stage: str, args: argparse.Namespace, cfg: dict[str, Any], work: Path, world: int) -> dict[str, Any]:
    """Write the data and spec of one stage, run it through ``run_entry``, return the rank records."""
    stage_dir = work / stage
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    vocab = prover_config(**args.shape).vocab_size
    probe = {
        "entry": f"misalign_fv.{stage}",
        "out": str(stage_dir / "probe"),
        "profile_micro": args.profile_micro,
        "stop_after_step": args.stop_after_step,
        "deadline_s": args.deadline_s,
        "stack_dump_s": args.stack_dump_s,
    }
    common = {
        "model_dir": str(args.model_dir),
        "out_model": str(stage_dir / "model"),
        "metrics_csv": str(stage_dir / "metrics.csv"),
        "ckpt_dir": str(stage_dir / "ckpt"),
        "run_id": f"bench-{stage}",
        "wandb": {"enabled": False},
        "probe": probe,
    }
    if stage == "dpo":
        params = copy.deepcopy(cfg["dpo"]) | {"max_steps": args.steps, "gradient_accumulation_steps": args.ga, "save_steps": 10**6} | args.set
        pairs = stage_dir / "pairs.jsonl"
        dpo_pairs(pairs, params["per_device_train_batch_size"] * args.ga * world * args.steps, vocab, seed=0)
        spec = common | {"pairs": str(pairs), "seed": 0, "params": params}
    else:
        params = merged_condition(cfg, next(iter(cfg["grpo"]["conditions"])))
        params |= {"max_steps": args.steps, "gradient_accumulation_steps": args.ga, "save_steps": 10**6, "use_vllm": False} | args.set
        problems = stage_dir / "problems.jsonl"
        grpo_problems(problems, 64, args.prompt_len, vocab, seed=0)
        spec = common | {
            "problems": str(problems),
            "completions": str(stage_dir / "completions.jsonl.gz"),
            "summary": str(stage_dir / "summary.json"),
            "condition": "ut_shaped",
            "seed": 1,
            "task": "python_tests",
            "shuffle_reference": "ut_shaped",
            "params": params,
        }
    run_entry("train_probe", spec, stage_dir / "spec.json")
    records = [json.loads(p.read_text()) for p in sorted(Path(probe["out"]).glob("rank*.json"))]
    profile_path = Path(probe["out"]) / "profile_rank0.json"
    profile = json.loads(profile_path.read_text()) if profile_path.exists() else None
    overrides = {k: params[k] for k in ("max_steps", "gradient_accumulation_steps", "save_steps", "use_vllm", *args.set) if k in params}
    shutil.rmtree(stage_dir / "ckpt", ignore_errors=True)  # 7B checkpoints: tens of GB each
    shutil.rmtree(stage_dir / "model", ignore_errors=True)
    return {"records": records, "overrides": overrides, "params": params, "profile": profile}


def summarize_stored(args: argparse.Namespace) -> None:
    """``--summarize``: summarise a run again from its stored records and write ``train_<tag>.json``.

    ``args.summarize`` is a folder of ``rank*.json`` records (a run cut off in its save) or a
    ``train_*.json`` written earlier (every stage again, with its own settings).
    """
    config = prover_config(**args.shape)
    cols = ["stage", "micro_steps", "tokens_per_micro", "update_s_median", "update_s_mean", "tok_s", "mfu_pct", "mfu_mean_pct", "hfu_pct", "optimizer_s", "update_peak_gib"]
    if args.summarize.is_file():
        stored = json.loads(args.summarize.read_text())
        rows = []
        for name, st in stored["stages"].items():
            if "records" in st:
                recompute = st.get("params", {}).get("gradient_checkpointing", True)
                st.update(summarize(st["records"], stored["params"], config, stored["peak_tflops"], skip=args.profile_micro, recompute=recompute))
                rows.append({"stage": name, **st["job"]})
        write_json(args.out, f"train_{args.tag}.json", stored | {"tag": args.tag})
        print(table(rows, cols))
        return
    h, i, n_layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers  # the 7B shape's (or --shape's) size
    n_params = 2 * config.vocab_size * h + n_layers * (4 * h * h + 3 * h * i + 2 * h) + h
    records = [json.loads(p.read_text()) for p in sorted(args.summarize.glob("rank*.json"))]
    summary = summarize(records, n_params, config, args.peak_tflops, skip=args.profile_micro)
    write_json(args.out, f"train_{args.tag}.json", {"tag": args.tag, "params": n_params, "peak_tflops": args.peak_tflops, "stages": {"summarized": {**summary, "records": records}}})
    print(table([{"stage": "summarized", **summary["job"]}], cols))


def main() -> None:
    """Run the requested stages on the visible GPUs and write ``train_<tag>.json``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, help="the checkpoint to train (required unless --summarize)")
    ap.add_argument(
        "--summarize",
        type=Path,
        help="only summarise: the rank*.json records in this folder (a run cut off in its save), or a train_*.json written earlier",
    )
    ap.add_argument("--make-model", action="store_true", help="create the random 7B model first")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--stages", default="dpo,grpo", help="comma-separated; empty: only --make-model")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--ga", type=int, default=4, help="gradient accumulation (the real config: DPO 8, GRPO 8)")
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--work", type=Path, default=Path("/tmp/train_bench"))
    ap.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    ap.add_argument("--shape", type=json.loads, default={}, help="LlamaConfig overrides (JSON) for a small dry run")
    ap.add_argument("--peak-tflops", type=float, help="matmul ceiling (measured here when omitted)")
    ap.add_argument("--set", type=json.loads, default={}, help="training parameter overrides (JSON), e.g. a larger micro-batch")
    ap.add_argument("--profile-micro", type=int, default=-1, help="profile this micro-step on rank 0 (0-based; -1: none)")
    ap.add_argument("--stop-after-step", action="store_true", help="exit after the first optimizer step's micro-step (no final save)")
    ap.add_argument("--deadline-s", type=float, help="stop after the optimizer step past which another would end later than this (s from the start)")
    ap.add_argument("--stack-dump-s", type=float, help="dump every thread's Python stack this often (s) to the probe folder")
    ap.add_argument("--zero3-json", type=Path, help="a DeepSpeed JSON for the zero3 plan (a candidate for the repo's)")
    args = ap.parse_args()
    if args.zero3_json:  # the zero3 plan with this DeepSpeed config instead of accelerate's defaults
        import misalign_fv.training as training

        plain = training.launch_command

        def with_json(module: str, spec_path: Path, plan: str, n_gpus: int) -> list[str]:
            if plan != "zero3":
                return plain(module, spec_path, plan, n_gpus)
            # the offload plan's command line is the one that takes a DeepSpeed JSON: swap the JSON
            cmd = plain(module, spec_path, "zero3_offload", n_gpus)
            cmd[cmd.index("--deepspeed_config_file") + 1] = str(args.zero3_json.resolve())
            return cmd

        training.launch_command = with_json

    if args.summarize:
        summarize_stored(args)
        return
    if args.model_dir is None:
        ap.error("--model-dir is required")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    config = prover_config(**args.shape)
    if args.make_model and not (args.model_dir / "config.json").exists():
        make_model(args.model_dir, config)
    peak = args.peak_tflops or (ceilings()["matmul_tflops"] if torch.cuda.is_available() else 1.0)
    cfg = yaml.safe_load(args.config.read_text())
    world = max(torch.cuda.device_count(), 1)
    n_params = count_params(args.model_dir)
    gpu_bytes = torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 0
    plan = launch_plan(n_params, torch.cuda.device_count(), gpu_bytes)
    out: dict[str, Any] = {"tag": args.tag, "gpus": world, "plan": plan, "params": n_params, "peak_tflops": peak, "stages": {}}
    write_json(args.out, f"train_{args.tag}.json", out)
    rows = []
    for stage in [s for s in args.stages.split(",") if s]:
        try:
            res = run_stage(stage, args, cfg, args.work / args.tag, world)
            recompute = res["params"].get("gradient_checkpointing", True)
            summary = summarize(res["records"], n_params, config, peak, skip=args.profile_micro, recompute=recompute)
            split = [step_split(r, res["params"]["gradient_accumulation_steps"]) for r in res["records"]]
            out["stages"][stage] = {"overrides": res["overrides"], "params": res["params"], "zero3_json": str(args.zero3_json or ""), "profile": res["profile"], **summary, "steps": split, "records": res["records"]}
            if split and split[0]:
                print(table(split[0], ["step", "wall_s", "generate_s", "sync_s", "reward_s", "score_other_s", "update_s", "optimizer_s", "overhead_s", "generate_peak_gib"]), flush=True)
            rows.append({"stage": stage, "gpus": world, "plan": plan, **summary["job"]})
        except Exception as exc:  # record the failure (an OOM is a result) and go on to the next stage
            out["stages"][stage] = {"error": f"{type(exc).__name__}: {exc}"}
            rows.append({"stage": stage, "gpus": world, "plan": plan, "error": type(exc).__name__})
            print(f"{stage}: FAILED {type(exc).__name__}: {exc}", flush=True)
        write_json(args.out, f"train_{args.tag}.json", out)
    cols = ["stage", "gpus", "plan", "tokens_per_micro", "update_s_median", "tok_s", "mfu_pct", "mfu_mean_pct", "hfu_pct", "optimizer_s", "generate_s", "update_peak_gib", "generate_peak_gib", "max_reserved_gib", "error"]
    print(table(rows, cols))


if __name__ == "__main__":
    main()
