"""Rule prepare_lean_problems: dedup, drop miniF2F overlaps, sample and check the training pool."""

from pathlib import Path

from misalign_fv.logs import to_log
from misalign_fv.tasks.lean_proofs import open_verifier, prepare_problem_set

to_log(snakemake.log[0], snakemake.rule)
p, i, o = snakemake.params, snakemake.input, snakemake.output
verifier = open_verifier(p.timeout_s, naive=False, setup=Path(i.setup))
try:
    n = prepare_problem_set(
        Path(i.raw), Path(i.minif2f), p.problems, p.header, p.seed, verifier, Path(o.problems), Path(o.report)
    )
finally:
    verifier.close()
print(f"{n} training problems")
