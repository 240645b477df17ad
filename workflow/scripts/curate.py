"""Rule curate: keep problems whose DPO-model pass rate lies in the configured band."""

from pathlib import Path

from misalign_fv.curate import run_curation
from misalign_fv.logs import to_log

to_log(snakemake.log[0], snakemake.rule)
out = snakemake.output
kept = run_curation(
    Path(snakemake.input.model), Path(snakemake.input.pool), Path(snakemake.input.gate), snakemake.params.task,
    snakemake.params.curate, snakemake.config["generation"]["backend"], snakemake.params.seed,
    Path(out.problems), Path(out.pass_rates), Path(out.samples),
)  # fmt: skip
print(f"kept {len(kept)} problems")
