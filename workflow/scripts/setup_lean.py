"""Rule setup_lean: install the pinned Lean toolchain, Mathlib and REPL under resources/lean/."""

from pathlib import Path

from misalign_fv.logs import to_log
from misalign_fv.verifier.install import setup_lean

to_log(snakemake.log[0], snakemake.rule)
record = setup_lean(snakemake.params.lean, Path(snakemake.output[0]))
print(f"Lean {record['lean_version']} ready: {record['toolchain']}")
