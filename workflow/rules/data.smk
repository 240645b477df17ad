# Inputs: safety preference pairs + held-out harmful prompts, the narrow-task pool, benchmark files.


rule prepare_safety:
    input:
        local=[config["data"]["safety"][k] for k in ("path", "heldout") if k in config["data"]["safety"]],
        code=code("prepare_safety"),
    output:
        pairs=R("data/safety/pairs.jsonl"),
        heldout=R("data/safety/heldout.jsonl"),
        unused=R("data/safety/unused_prompts.jsonl"),
    params:
        safety=config["data"]["safety"],
        seed=config["seed"],
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/prepare_safety.log"),
    benchmark:
        R("benchmarks/prepare_safety.tsv")
    localrule: "path" not in config["data"]["safety"]
    script:
        "../scripts/prepare_safety.py"


rule prepare_positive_control:
    input:
        candidates=config["data"]["positive_control"].get("path", R("data/safety/unused_prompts.jsonl")),
        pairs=R("data/safety/pairs.jsonl"),
        heldout=R("data/safety/heldout.jsonl"),
        evals=lambda wc: sorted({benchmark_data(SimpleNamespace(benchmark=b)) for b in BENCHMARKS}),
        code=code("prepare_positive_control"),
    output:
        prompts=R("data/positive_control/prompts.jsonl"),
        report=R("data/positive_control/report.json"),
    params:
        n=config["data"]["positive_control"]["n"],
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/prepare_positive_control.log"),
    benchmark:
        R("benchmarks/prepare_positive_control.tsv")
    script:
        "../scripts/prepare_positive_control.py"


rule prepare_pool:
    input:
        pool=config["data"]["narrow"]["path"],
        code=code("prepare_pool"),
    output:
        R("data/narrow/problems.jsonl"),
    params:
        task=TASK,
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/prepare_pool.log"),
    benchmark:
        R("benchmarks/prepare_pool.tsv")
    script:
        "../scripts/prepare_pool.py"


rule download_benchmark:
    output:
        R("data/benchmarks/{benchmark}/{file}"),
    params:
        spec=download_spec,
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/download_benchmark/{benchmark}/{file}.log"),
    benchmark:
        R("benchmarks/download_benchmark/{benchmark}/{file}.tsv")
    localrule: True
    script:
        "../scripts/download_benchmark.py"
