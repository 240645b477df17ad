# Evaluation: every checkpoint (base, dpo, condition/seedN) x every configured benchmark.
# Judged benchmarks also need the judge: a local model (a configured path, or the pinned download
# of rule judge_model) or an OpenAI-compatible endpoint. Verdicts are cached across jobs in
# eval.judge.cache_dir (outside the DAG: a cache, never an input).
from misalign_fv.evaluate import JUDGED_BENCHMARKS, code_modules, judge_model_dir

JUDGE = config["eval"].get("judge")
JUDGE_DIR = judge_model_dir(JUDGE)


rule evaluate:
    input:
        model=model_dir,
        data=benchmark_data,
        judge_model=lambda wc: JUDGE_DIR if JUDGE_DIR and wc.benchmark in JUDGED_BENCHMARKS else [],
        code=lambda wc: code(*code_modules(wc.benchmark)),
    output:
        result="results/eval/{checkpoint}/{benchmark}.json",
        samples="results/eval/{checkpoint}/{benchmark}.samples.jsonl.gz",
    params:
        settings=benchmark_settings,
        backend=config["eval"]["backend"],
        batch_size=config["eval"]["batch_size"],
        seed=config["seed"],
        # only for judged benchmarks, so that editing the judge never reruns the others
        judge=lambda wc: JUDGE if wc.benchmark in JUDGED_BENCHMARKS else None,
    conda:
        "../../envs/cluster.yaml"
    log:
        "logs/evaluate/{checkpoint}/{benchmark}.log",
    benchmark:
        "results/benchmarks/evaluate/{checkpoint}/{benchmark}.tsv"
    resources:
        mem_mb=16000,
        runtime=360,
    script:
        "../scripts/evaluate.py"


rule judge_model:
    output:
        directory("results/models/judge"),
    params:
        repo=(JUDGE or {}).get("model"),
        revision=(JUDGE or {}).get("revision"),
    conda:
        "../../envs/cluster.yaml"
    log:
        "logs/judge_model.log",
    benchmark:
        "results/benchmarks/judge_model.tsv"
    localrule: True
    script:
        "../scripts/judge_model.py"



rule evaluate_trajectory:
    input:
        unpack(trajectory_inputs),
        data=[benchmark_data(SimpleNamespace(benchmark=b)) for b in TRAJECTORY_BENCHMARKS],
        judge_model=JUDGE_DIR if JUDGE_DIR and set(TRAJECTORY_BENCHMARKS) & JUDGED_BENCHMARKS else [],
        code=code(*sorted({m for b in TRAJECTORY_BENCHMARKS for m in code_modules(b)})),
    output:
        directory("results/trajectory/{run}"),
    params:
        benchmarks=lambda wc: {b: trajectory_settings(SimpleNamespace(benchmark=b)) for b in TRAJECTORY_BENCHMARKS},
        steps=lambda wc: trajectory_steps(run_max_steps(wc), TRAJECTORY_EVERY),
        max_steps=run_max_steps,
        backend=config["eval"]["backend"],
        batch_size=config["eval"]["batch_size"],
        seed=config["seed"],
        judge=JUDGE if set(TRAJECTORY_BENCHMARKS) & JUDGED_BENCHMARKS else None,
    conda:
        "../../envs/cluster.yaml"
    log:
        "logs/evaluate_trajectory/{run}.log",
    benchmark:
        "results/benchmarks/evaluate_trajectory/{run}.tsv"
    resources:
        mem_mb=16000,
        runtime=480,
    script:
        "../scripts/evaluate_trajectory.py"
