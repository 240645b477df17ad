# Report: tidy scores, statistics against the controls, figures, report.md/html (seconds, local).


rule report:
    input:
        evals=expand("results/eval/{checkpoint}/{benchmark}.json", checkpoint=CHECKPOINTS, benchmark=BENCHMARKS),
        runs=expand("results/grpo/{run}/{f}", run=RUNS, f=["metrics.csv", "summary.json", "completions.jsonl.gz"]),
        gate="results/dpo/gate.json",
        code=sorted(glob.glob(f"{SRC}/report/*.py")),
    output:
        scores=report("results/report/scores.csv", category="Tables"),
        stats=report("results/report/stats.csv", category="Tables"),
        md="results/report/report.md",
        html=report("results/report/report.html", category="Report"),
        figures=report(
            directory("results/report/figures"), patterns=["{name}.png"], category="Figures"
        ),
    params:
        settings={
            "model": config["base_model"].get("hf_repo", "tiny demo model"),
            "task": TASK,
            "conditions": CONDITIONS,
            "seeds": SEEDS,
            "steps": config["grpo"]["defaults"]["max_steps"],
            "hardware": config["report"]["hardware"],
            "control": "random",
            "coverage_threshold": config["report"]["coverage_threshold"],
            "headline_metrics": config["report"]["headline_metrics"],
        },
        bench_dir="results/benchmarks",
    log:
        "logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    localrule: True
    script:
        "../scripts/report.py"
