# Inputs: safety preference pairs + held-out harmful prompts, the narrow-task pool, benchmark files.


rule prepare_safety:
    input:
        local=[config["data"]["safety"][k] for k in ("path", "heldout") if k in config["data"]["safety"]],
        code=code("data"),
    output:
        pairs="results/data/safety/pairs.jsonl",
        heldout="results/data/safety/heldout.jsonl",
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
