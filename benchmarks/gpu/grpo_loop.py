"""A full GRPO loop on GPU through the project's entry point, rewarded by the python_tests sandbox.

The model is the demo base model (a real Llama architecture, warmed up on the narrow task so that
rewards vary): ``--model-dir``, or built here from ``config/demo.yaml`` when the directory is
missing. The run is the demo's ``ut_shaped`` seed-1 GRPO run (``config/demo.yaml``'s
``grpo.defaults``) with bf16 on, ``--steps`` steps and a checkpoint every ``--save-steps``,
launched by :func:`misalign_fv.training.run_entry` on the GPUs this process sees: in-process on
one GPU, DeepSpeed ZeRO-3 under ``accelerate launch`` on several.

    python benchmarks/gpu/grpo_loop.py --model-dir .carry/demo_base --out $OUT/grpo_loop
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import torch
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "benchmarks"))
from common import table, write_json  # noqa: E402

from misalign_fv.config import merged_condition  # noqa: E402
from misalign_fv.io import read_json  # noqa: E402
from misalign_fv.training import launch_plan, count_params, run_entry  # noqa: E402


def main() -> None:
    """Run the loop and write ``grpo_loop_<tag>.json`` with per-step metrics and the summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tag", default="gpu1")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--save-steps", type=int, default=4)
    ap.add_argument("--work", type=Path, default=Path("/tmp/grpo_loop"))
    args = ap.parse_args()

    if not (args.model_dir / "config.json").exists():
        from generation_cpu import build_demo_model

        build_demo_model(args.model_dir)
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    work = args.work / args.tag
    if work.exists():
        shutil.rmtree(work)
    params = merged_condition(cfg, "ut_shaped") | {"max_steps": args.steps, "save_steps": args.save_steps, "bf16": True}
    spec = {
        "condition": "ut_shaped",
        "seed": 1,
        "task": "python_tests",
        "random_reference": cfg["grpo"]["random_reference"],
        "params": params,
        "model_dir": str(args.model_dir),
        "problems": str(REPO / cfg["data"]["narrow"]["path"]),
        "out_model": str(work / "model"),
        "metrics_csv": str(work / "metrics.csv"),
        "completions": str(work / "completions.jsonl.gz"),
        "summary": str(work / "summary.json"),
        "ckpt_dir": str(work / "ckpt"),
        "run_id": "grpo-loop",
        "wandb": {"enabled": False},
    }
    gpus = torch.cuda.device_count()
    gpu_bytes = torch.cuda.get_device_properties(0).total_memory if gpus else 0
    plan = launch_plan(count_params(args.model_dir), gpus, gpu_bytes)
    t0 = time.perf_counter()
    run_entry("misalign_fv.grpo", spec, work / "spec.json")
    wall = time.perf_counter() - t0
    with open(work / "metrics.csv") as f:
        metrics = list(csv.DictReader(f))
    summary = read_json(work / "summary.json")
    checkpoints = sorted(p.name for p in (work / "ckpt").glob("checkpoint-*"))
    write_json(
        args.out,
        f"grpo_loop_{args.tag}.json",
        {"gpus": gpus, "plan": plan, "wall_s": wall, "params": params, "summary": summary, "checkpoints": checkpoints, "metrics": metrics},
    )
    keys = ["step", "reward", "reward_std", "frac_reward_zero_std", "grad_norm", "completions/mean_length", "step_time"]
    print(table([{k: m.get(k, "") for k in keys} for m in metrics], keys))
    print(json.dumps({"gpus": gpus, "plan": plan, "wall_s": round(wall, 1), "checkpoints": checkpoints, **summary}))


if __name__ == "__main__":
    main()
