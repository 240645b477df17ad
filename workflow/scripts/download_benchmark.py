"""Rule download_benchmark: a pinned benchmark file, checked against its sha256."""

from pathlib import Path

from misalign_fv.data import download
from misalign_fv.logs import to_log

to_log(snakemake.log[0], snakemake.rule)
download(snakemake.params.spec["url"], snakemake.params.spec["sha256"], Path(snakemake.output[0]))
