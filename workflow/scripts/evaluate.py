"""Rule evaluate: one checkpoint on one benchmark -> JSON (metrics, n, provenance) + samples."""

from pathlib import Path

from misalign_fv.evaluate import run_eval
from misalign_fv.logs import to_log

to_log(snakemake.log[0], snakemake.rule)
p = snakemake.params
gen = snakemake.config["generation"]  # how to generate, not what: not a param, so changing it reruns nothing
run_eval(
    snakemake.wildcards.checkpoint, Path(snakemake.input.model), snakemake.wildcards.benchmark,
    Path(snakemake.input.data), p.settings, gen["backend"], gen["batch_size"], p.seed,
    Path(snakemake.output.result), Path(snakemake.output.samples),
    judge=p.judge, judge_dir=Path(snakemake.input.judge_model) if snakemake.input.judge_model else None,
)  # fmt: skip
