"""Rule cluster_preflight: the real toolchain, generation, judge and sandbox, checked before any expensive job."""

from pathlib import Path

from misalign_fv.logs import to_log
from misalign_fv.preflight import JudgePlan, LeanPlan, run

to_log(snakemake.log.log, snakemake.rule)
i, p = snakemake.input, snakemake.params
lean = LeanPlan(Path(i.lean_setup), Path(i.lean_cases), p.lean["header"], p.lean["timeout_s"]) if p.lean else None
judge = None
if p.judge:
    judge = JudgePlan(
        p.judge, Path(i.judge_model) if i.judge_model else None, Path(i.em_data) if i.em_data else None,
        Path(i.judge_answers),
    )  # fmt: skip
report = run(
    p.required, lean, Path(i.model), snakemake.config["generation"]["backend"], judge, p.seed,
    Path(snakemake.output[0]), Path(snakemake.log.checks),
)  # fmt: skip
for name, check in sorted(report["checks"].items()):
    print(f"{name}: {check['status']} ({check['reason']})")
