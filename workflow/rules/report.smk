# Report: tidy scores, statistics against the controls, figures, report.md/html (seconds, local).


rule report:
    input:
        evals=expand(R("eval/{checkpoint}/{benchmark}.json"), checkpoint=CHECKPOINTS, benchmark=BENCHMARKS),
        runs=expand(R("grpo/{run}/{f}"), run=RUNS, f=["metrics.csv", "summary.json", "completions.jsonl.gz"]),
        trajectory=expand(R("trajectory/{run}"), run=TRAJECTORY_RUNS),
        signal=R("preflight/reward_signal.json"),
        gate=R("dpo/gate.json"),
        judge_validation=[R("judge_validation.json")] if VALIDATION else [],
        code=code("report"),
    output:
        scores=report(R("report/scores.csv"), category="Tables"),
        stats=report(R("report/stats.csv"), category="Tables"),
        flags=report(R("report/flags.csv"), category="Tables"),
        benchmarks=report(R("report/fig_benchmarks.png"), category="Figures"),
        training=report(R("report/fig_training.png"), category="Figures"),
        em_scatter=report(R("report/fig_em_scatter.png"), category="Figures"),
        gate=report(R("report/fig_dpo_gate.png"), category="Figures"),
        trajectory=report(R("report/fig_trajectory.png"), category="Figures"),
        manipulation=report(R("report/manipulation.csv"), category="Tables"),
        power=report(R("report/power.csv"), category="Tables"),
        pdfs=expand(R("report/{fig}.pdf"), fig=["fig_benchmarks", "fig_training", "fig_em_scatter", "fig_dpo_gate", "fig_trajectory"]),
        md=R("report/report.md"),
        html=report(R("report/report.html"), category="Report"),
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
        bench_dir=R("benchmarks"),
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/report.log"),
    benchmark:
        R("benchmarks/report.tsv")
    localrule: True
    script:
        "../scripts/report.py"
