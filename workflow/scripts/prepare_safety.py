"""Rule prepare_safety: preference pairs for DPO, held-out harmful prompts for the gate, and the
prompts of the pairs DPO does not use (the positive control's candidates)."""

from pathlib import Path

from misalign_fv.data import prepare_safety
from misalign_fv.logs import to_log

to_log(snakemake.log[0], snakemake.rule)
out = snakemake.output
n_pairs, n_held = prepare_safety(
    snakemake.params.safety, snakemake.params.seed, Path(out.pairs), Path(out.heldout), Path(out.unused)
)
print(f"{n_pairs} preference pairs, {n_held} held-out harmful prompts")
