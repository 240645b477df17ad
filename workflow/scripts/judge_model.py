"""Rule judge_model: the judge model as a pinned Hugging Face snapshot (a local rule: needs network)."""

from pathlib import Path

from misalign_fv.logs import to_log
from misalign_fv.models import download_model

to_log(snakemake.log[0], snakemake.rule)
download_model(Path(snakemake.output[0]), snakemake.params.repo, snakemake.params.revision)
