"""Rule download_lean_problems: the Lean training problem source at its pinned revision."""

from pathlib import Path

from misalign_fv.logs import to_log
from misalign_fv.tasks.lean_proofs import download_source

to_log(snakemake.log[0], snakemake.rule)
download_source(snakemake.params.spec, Path(snakemake.output[0]))
