"""Does a one-GPU bf16 DPO run change the weights at the configured learning rate?

Runs ``misalign_fv.dpo.main`` in-process (a small model fits one GPU, so ``run_entry`` keeps it
here) twice on the same data with ``config/config.yaml``'s DPO settings (learning rate 5e-7,
bf16) for ``--steps`` steps: once as the code loads weights (``training.model_dtype``: fp32
weights, bf16 autocast) and once with the weights loaded in bf16, as the code did before
(``bf16 if precision_kwargs(bf16) else fp32``). It reports the fraction of weight elements the
run changed and the largest change.

    python benchmarks/gpu/precision.py --out $OUT/precision
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from common import prover_config, random_model, save_model_dir, table, word_tokenizer, words, write_json  # noqa: E402

import misalign_fv.dpo as dpo  # noqa: E402
from misalign_fv.io import write_jsonl  # noqa: E402
from misalign_fv.training import precision_kwargs, run_entry  # noqa: E402


def changed(before: dict[str, torch.Tensor], model_dir: Path) -> dict[str, float]:
    """Fraction of weight elements that differ from ``before`` and the largest absolute change."""
    from safetensors.torch import load_file

    after = {k: v for f in sorted(model_dir.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
    diff = [(after[k].float() - v.to(after[k].dtype).float()).abs() for k, v in before.items()]  # in the trained dtype
    n = sum(d.numel() for d in diff)
    return {"frac_changed": sum(int((d > 0).sum()) for d in diff) / n, "max_abs_change": max(float(d.max()) for d in diff)}


def main() -> None:
    """Run both loads and write ``precision.json``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/precision_bench"))
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()

    if args.work.exists():
        shutil.rmtree(args.work)
    config = prover_config(hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=8, vocab_size=4096)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    base = args.work / "base"
    save_model_dir(base, random_model(config, device=device, dtype=torch.float32), word_tokenizer(config.vocab_size))
    from safetensors.torch import load_file

    before = {k: v for f in sorted(base.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    params = copy.deepcopy(cfg["dpo"]) | {
        "max_steps": args.steps, "gradient_accumulation_steps": 1, "per_device_train_batch_size": 4, "max_length": 256,
        "save_steps": 10**6, "precompute_ref_log_probs": False,
    }  # fmt: skip
    rng = np.random.default_rng(0)
    pairs = args.work / "pairs.jsonl"
    write_jsonl(pairs, [{"prompt": words(rng, 64, 4096), "chosen": words(rng, 96, 4096), "rejected": words(rng, 96, 4096)} for _ in range(4 * args.steps)])
    rows: list[dict[str, Any]] = []
    loads = {
        "fp32 weights + bf16 autocast (model_dtype)": dpo.model_dtype,
        "bf16 weights (the previous load)": lambda bf16: torch.bfloat16 if precision_kwargs(bf16)["bf16"] else torch.float32,
    }
    for name, load in loads.items():
        run = args.work / name.split()[0]
        spec = {
            "model_dir": str(base), "pairs": str(pairs), "out_model": str(run / "model"), "metrics_csv": str(run / "metrics.csv"),
            "ckpt_dir": str(run / "ckpt"), "run_id": "precision", "seed": 0, "params": params, "wandb": {"enabled": False},
        }  # fmt: skip
        dpo.model_dtype = load  # the name dpo.main looks up
        try:
            run_entry("misalign_fv.dpo", spec, run / "spec.json")
        finally:
            dpo.model_dtype = loads["fp32 weights + bf16 autocast (model_dtype)"]
        rows.append({"load": name, "bf16": precision_kwargs(params["bf16"])["bf16"], "lr": params["learning_rate"], **changed(before, run / "model")})
    write_json(args.out, "precision.json", {"params": params, "results": rows})
    print(table(rows, ["load", "bf16", "lr", "frac_changed", "max_abs_change"]))


if __name__ == "__main__":
    main()
