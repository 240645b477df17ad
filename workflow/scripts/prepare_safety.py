"""Rule prepare_safety: preference pairs for DPO and held-out harmful prompts for the gate."""

from pathlib import Path

from misalign_fv.data import prepare_safety
from misalign_fv.logs import to_log

to_log(snakemake.log[0])
n_pairs, n_held = prepare_safety(
    snakemake.params.safety, snakemake.params.seed, Path(snakemake.output.pairs), Path(snakemake.output.heldout)
)
print(f"{n_pairs} preference pairs, {n_held} held-out harmful prompts")
