"""Rule base_model: build the tiny demo model or download the real one."""

from pathlib import Path

from misalign_fv.logs import to_log
from misalign_fv.models import build_tiny_model, download_model

to_log(snakemake.log[0], snakemake.rule)
base = snakemake.params.base
out = Path(snakemake.output[0])
if base["source"] == "tiny":
    build_tiny_model(
        out,
        [Path(p) for p in snakemake.input.corpus],
        Path(snakemake.input.tasks),
        Path(snakemake.input.chat),
        base["tiny"],
        snakemake.params.seed,
    )
else:
    download_model(out, base["hf_repo"], base["revision"])
