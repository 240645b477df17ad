"""Rule prepare_minif2f: check that every miniF2F statement elaborates on the pinned toolchain."""

from pathlib import Path

from misalign_fv.logs import to_log
from misalign_fv.tasks.lean_proofs import open_verifier, prepare_minif2f

to_log(snakemake.log[0], snakemake.rule)
verifier = open_verifier(snakemake.params.timeout_s, naive=False, setup=Path(snakemake.input.setup))
try:
    n = prepare_minif2f(Path(snakemake.input.raw), verifier, Path(snakemake.output.data), Path(snakemake.output.report))
finally:
    verifier.close()
print(f"{n} miniF2F statements elaborate")
