# Inputs: safety preference pairs + held-out harmful prompts, the narrow-task pool, benchmark files.


rule prepare_safety:
    input:
        local=[config["data"]["safety"][k] for k in ("path", "heldout") if k in config["data"]["safety"]],
        code=code("data"),
    output:
        pairs="results/data/safety/pairs.jsonl",
        heldout="results/data/safety/heldout.jsonl",
        unused="results/data/safety/unused_prompts.jsonl",
    params:
        safety=config["data"]["safety"],
        seed=config["seed"],
    conda:
        "../../envs/cluster.yaml"
    log:
        "logs/prepare_safety.log",
    benchmark:
        "results/benchmarks/prepare_safety.tsv"
    localrule: "path" not in config["data"]["safety"]
    script:
        "../scripts/prepare_safety.py"


rule prepare_positive_control:
    input:
        candidates=config["data"]["positive_control"].get("path", "results/data/safety/unused_prompts.jsonl"),
        pairs="results/data/safety/pairs.jsonl",
        heldout="results/data/safety/heldout.jsonl",
        evals=lambda wc: sorted({benchmark_data(SimpleNamespace(benchmark=b)) for b in BENCHMARKS}),
        code=code("tasks/harmful_compliance", "refusal"),
    output:
        prompts="results/data/positive_control/prompts.jsonl",
        report="results/data/positive_control/report.json",
    params:
        n=config["data"]["positive_control"]["n"],
    conda:
        "../../envs/cluster.yaml"
    log:
        "logs/prepare_positive_control.log",
    benchmark:
        "results/benchmarks/prepare_positive_control.tsv"
    script:
        "../scripts/prepare_positive_control.py"


rule prepare_pool:
    input:
        pool=config["data"]["narrow"]["path"],
        code=code("data"),
    output:
        "results/data/narrow/problems.jsonl",
    params:
        task=TASK,
    conda:
        "../../envs/cluster.yaml"
    log:
        "logs/prepare_pool.log",
    benchmark:
        "results/benchmarks/prepare_pool.tsv"
    script:
        "../scripts/prepare_pool.py"


rule download_benchmark:
    output:
        "results/data/benchmarks/{benchmark}/{file}",
    params:
        spec=download_spec,
    conda:
        "../../envs/cluster.yaml"
    log:
        "logs/download_benchmark/{benchmark}/{file}.log",
    benchmark:
        "results/benchmarks/download_benchmark/{benchmark}/{file}.tsv"
    localrule: True
    script:
        "../scripts/download_benchmark.py"
