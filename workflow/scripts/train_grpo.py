"""Rule train_grpo: one GRPO run (condition x seed), resumable from the scratch dir."""

from pathlib import Path

from misalign_fv.logs import to_log
from misalign_fv.training import checkpoint_dir, run_entry

to_log(snakemake.log[0], snakemake.rule)
params, wc = snakemake.params, snakemake.wildcards
key = {
    "params": params.grpo,
    "condition": wc.condition,
    "seed": int(wc.seed),
    "task": params.task,
    "shuffle_reference": params.shuffle_reference,
    "trajectory_every": params.trajectory_every,
}
ckpt, rid = checkpoint_dir(
    f"{params.ckpt_root}/{wc.condition}/seed{wc.seed}", key, Path(snakemake.input.problems), Path(snakemake.input.model)
)
spec = {
    **key,
    "model_dir": snakemake.input.model,
    "problems": snakemake.input.problems,
    "out_model": snakemake.output.model,
    "snapshots": snakemake.output.snapshots,
    "metrics_csv": snakemake.output.metrics,
    "completions": snakemake.output.completions,
    "summary": snakemake.output.summary,
    "ckpt_dir": str(ckpt),
    "run_id": rid,
    "wandb": {**snakemake.config["wandb"], "run_name": snakemake.config["run_name"]},  # not a param: toggling W&B reruns nothing
}
run_entry("misalign_fv.grpo", spec, ckpt / "spec.json")
