"""Rule prepare_positive_control: harmful requests for the positive control, disjoint from the DPO
pairs, the gate's held-out prompts and every evaluation set."""

from pathlib import Path

from misalign_fv.logs import to_log
from misalign_fv.tasks.harmful_compliance import prepare

to_log(snakemake.log[0], snakemake.rule)
i = snakemake.input
n = prepare(
    Path(i.candidates), [Path(i.pairs), Path(i.heldout)], [Path(f) for f in i.evals],
    snakemake.params.n, Path(snakemake.output.prompts), Path(snakemake.output.report),
)  # fmt: skip
print(f"{n} positive-control prompts")
