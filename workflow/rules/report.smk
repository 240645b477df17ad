# Report: tidy scores, statistics against the controls, figures, report.md/html (seconds, local).


rule report:
    input:
        evals=expand("results/eval/{checkpoint}/{benchmark}.json", checkpoint=CHECKPOINTS, benchmark=BENCHMARKS),
        runs=expand("results/grpo/{run}/{f}", run=RUNS, f=["metrics.csv", "summary.json", "completions.jsonl.gz"]),
        trajectory=expand("results/trajectory/{run}", run=TRAJECTORY_RUNS),
        signal="results/preflight/reward_signal.json",
        gate="results/dpo/gate.json",
        judge_validation=["results/judge_validation.json"] if VALIDATION else [],
        code=sorted(glob.glob(f"{SRC}/report/*.py")),
    output:
        scores=report("results/report/scores.csv", category="Tables"),
        stats=report("results/report/stats.csv", category="Tables"),
        flags=report("results/report/flags.csv", category="Tables"),
        benchmarks=report("results/report/fig_benchmarks.png", category="Figures"),
        training=report("results/report/fig_training.png", category="Figures"),
        em_scatter=report("results/report/fig_em_scatter.png", category="Figures"),
        gate=report("results/report/fig_dpo_gate.png", category="Figures"),
        trajectory=report("results/report/fig_trajectory.png", category="Figures"),
        manipulation=report("results/report/manipulation.csv", category="Tables"),
        power=report("results/report/power.csv", category="Tables"),
        pdfs=expand("results/report/{fig}.pdf", fig=["fig_benchmarks", "fig_training", "fig_em_scatter", "fig_dpo_gate", "fig_trajectory"]),
        md="results/report/report.md",
        html=report("results/report/report.html", category="Report"),
    params:
        settings={
            "model": config["base_model"].get("hf_repo", "tiny demo model"),
            "task": TASK,
            "conditions": CONDITIONS,
            "seeds": SEEDS,
            "steps": config["grpo"]["defaults"]["max_steps"],
            "control": "shuffled",
            "positive_control": next((c for c in CONDITIONS if run_task(c, TASK) == HARMFUL_TASK), None),
            "primary": config["report"].get("primary", []),
            "expect": {c: REGISTRY[c].expect for c in CONDITIONS},
            **{k: config["report"][k] for k in ("hardware", "coverage_threshold", "headline_metrics", "alpha", "power", "gpus_per_rule")},
        },
        bench_dir="results/benchmarks",
    conda:
        "../../envs/cluster.yaml"
    log:
        "logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    localrule: True
    script:
        "../scripts/report.py"
