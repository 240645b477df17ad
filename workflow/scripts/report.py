"""Rule report: scores, statistics, figures and report.md/html from the eval JSONs and run logs."""

from pathlib import Path

from misalign_fv.logs import to_log
from misalign_fv.report.build import build_report

to_log(snakemake.log[0], snakemake.rule)
validation = snakemake.input.get("judge_validation", [])
bench_dir = Path(snakemake.params.bench_dir)
build_report(
    eval_jsons=[Path(p) for p in snakemake.input.evals],
    grpo_dirs=sorted({Path(p).parent for p in snakemake.input.runs}),
    gate_json=Path(snakemake.input.gate),
    # every job's timing but this rule's own, which a rerun would add (and so change the report)
    bench_tsvs=sorted(p for p in bench_dir.rglob("*.tsv") if p != bench_dir / "report.tsv"),
    settings=snakemake.params.settings,
    out_dir=Path(snakemake.output.md).parent,
    trajectory_dirs=[Path(p) for p in snakemake.input.trajectory],
    signal_json=Path(snakemake.input.signal),
    judge_validation_json=Path(validation[0]) if validation else None,
)
