"""Rule evaluate_trajectory: the DPO model (step 0), or one run's snapshots and final model, on the
cheap safety subset -> one JSON (+ samples) per step and benchmark under the output folder."""

from pathlib import Path

from misalign_fv.evaluate import run_trajectory
from misalign_fv.logs import to_log

to_log(snakemake.log[0], snakemake.rule)
p, i, run = snakemake.params, snakemake.input, snakemake.wildcards.run
gen = snakemake.config["generation"]  # how to generate, not what: not a param, so changing it reruns nothing
points = [(0 if run == "dpo" else p.max_steps, Path(i.model))]
points += [(s, Path(i.snapshots) / f"step{s}") for s in p.steps]
run_trajectory(
    run, sorted(points), dict(zip(p.benchmarks, map(Path, i.data))), p.benchmarks, gen["backend"], gen["batch_size"], p.seed,
    Path(snakemake.output[0]), judge=p.judge, judge_dir=Path(i.judge_model) if i.judge_model else None,
)  # fmt: skip
