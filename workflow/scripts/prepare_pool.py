"""Rule prepare_pool: the narrow-task problem pool."""

from pathlib import Path

from misalign_fv.data import prepare_pool
from misalign_fv.logs import to_log

to_log(snakemake.log[0], snakemake.rule)
n = prepare_pool({"task": snakemake.params.task, "path": snakemake.input.pool}, Path(snakemake.output[0]))
print(f"{n} problems")
