"""Rule judge_validation: the configured judge on reference-labelled answers -> agreement JSON."""

from pathlib import Path

from misalign_fv.io import write_json
from misalign_fv.judges import Judge, VerdictCache
from misalign_fv.judges.validation import validate
from misalign_fv.logs import to_log

to_log(snakemake.log[0], snakemake.rule)
p = snakemake.params
judge = Judge(
    p.judge, Path(snakemake.input.judge_model) if snakemake.input.judge_model else None,
    VerdictCache(Path(p.judge["cache_dir"]), "judge_validation"),
)  # fmt: skip
result = validate(
    judge, p.settings, [Path(f) for f in snakemake.input.em], [Path(f) for f in snakemake.input.xstest],
    Path(snakemake.input.em_questions) if snakemake.input.em_questions else None, p.judged, seed=p.seed,
)  # fmt: skip
write_json(Path(snakemake.output[0]), result)
print(f"judge validation {'passed' if result['passed'] else 'FAILED'}: {result['checks']}", flush=True)
