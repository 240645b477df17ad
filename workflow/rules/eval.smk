# Evaluation: every checkpoint (base, dpo, condition/seedN) x every configured benchmark.
# Judged benchmarks also need the judge: a local model (a configured path, or the pinned download
# of rule judge_model) or an OpenAI-compatible endpoint. Verdicts are cached across jobs in
# eval.judge.cache_dir (outside the DAG: a cache, never an input).
JUDGE = config["eval"].get("judge")
# A local judge: its configured path, else the pinned download (rule judge_model); none for an endpoint.
JUDGE_DIR = None if JUDGE is None or JUDGE["backend"] == "openai" else JUDGE.get("path", R("models/judge"))



rule evaluate:
    input:
        model=model_dir,
        data=benchmark_data,
        judge_model=lambda wc: JUDGE_DIR if JUDGE_DIR and wc.benchmark in JUDGED_BENCHMARKS else [],
        code=lambda wc: code("evaluate", **benchmark_code([wc.benchmark])),
    output:
        result=R("eval/{checkpoint}/{benchmark}.json"),
        samples=R("eval/{checkpoint}/{benchmark}.samples.jsonl.gz"),
    params:
        settings=benchmark_settings,
        seed=config["seed"],
        # only for judged benchmarks, so that editing the judge never reruns the others
        judge=lambda wc: JUDGE if wc.benchmark in JUDGED_BENCHMARKS else None,
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/evaluate/{checkpoint}/{benchmark}.log"),
    benchmark:
        R("benchmarks/evaluate/{checkpoint}/{benchmark}.tsv")
    script:
        "../scripts/evaluate.py"


rule judge_model:
    output:
        directory(R("models/judge")),
    params:
        repo=(JUDGE or {}).get("model"),
        revision=(JUDGE or {}).get("revision"),
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/judge_model.log"),
    benchmark:
        R("benchmarks/judge_model.tsv")
    localrule: True
    script:
        "../scripts/judge_model.py"



rule evaluate_trajectory:
    input:
        unpack(trajectory_inputs),
        data=[benchmark_data(SimpleNamespace(benchmark=b)) for b in TRAJECTORY_BENCHMARKS],
        judge_model=JUDGE_DIR if JUDGE_DIR and set(TRAJECTORY_BENCHMARKS) & JUDGED_BENCHMARKS else [],
        code=code("evaluate_trajectory", **benchmark_code(TRAJECTORY_BENCHMARKS)),
    output:
        directory(R("trajectory/{run}")),
    params:
        benchmarks=lambda wc: {b: trajectory_settings(SimpleNamespace(benchmark=b)) for b in TRAJECTORY_BENCHMARKS},
        steps=lambda wc: trajectory_steps(run_max_steps(wc), TRAJECTORY_EVERY),
        max_steps=run_max_steps,
        seed=config["seed"],
        judge=JUDGE if set(TRAJECTORY_BENCHMARKS) & JUDGED_BENCHMARKS else None,
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/evaluate_trajectory/{run}.log"),
    benchmark:
        R("benchmarks/evaluate_trajectory/{run}.tsv")
    script:
        "../scripts/evaluate_trajectory.py"
