"""Rule train_dpo: safety DPO (resumes from the newest checkpoint in the scratch dir)."""

from pathlib import Path

from misalign_fv.logs import to_log
from misalign_fv.training import checkpoint_dir, run_entry

to_log(snakemake.log[0], snakemake.rule)
params = snakemake.params
ckpt, rid = checkpoint_dir(
    params.ckpt_root, {"params": params.dpo, "seed": params.seed}, Path(snakemake.input.pairs), Path(snakemake.input.model)
)
spec = {
    "model_dir": snakemake.input.model,
    "pairs": snakemake.input.pairs,
    "out_model": snakemake.output.model,
    "metrics_csv": snakemake.output.metrics,
    "ckpt_dir": str(ckpt),
    "run_id": rid,
    "seed": params.seed,
    "params": params.dpo,
    "wandb": {**snakemake.config["wandb"], "run_name": snakemake.config["run_name"]},  # not a param: toggling W&B reruns nothing
}
run_entry("misalign_fv.dpo", spec, ckpt / "spec.json")
