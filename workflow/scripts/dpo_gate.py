"""Rule dpo_gate: refusal rate and narrow-task pass rate, before and after DPO."""

from pathlib import Path

from misalign_fv.gate import run_gate
from misalign_fv.logs import to_log

to_log(snakemake.log[0], snakemake.rule)
gate = run_gate(
    Path(snakemake.input.base), Path(snakemake.input.dpo), Path(snakemake.input.heldout), Path(snakemake.input.pool),
    snakemake.params.task, snakemake.params.gate, snakemake.config["generation"]["backend"], snakemake.params.seed,
    Path(snakemake.output.gate), Path(snakemake.output.samples), batch_size=snakemake.config["generation"]["batch_size"],
)  # fmt: skip
print(f"gate passed: {gate['passed']} {gate['reasons']}")
