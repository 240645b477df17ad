# Evaluation: every checkpoint (base, dpo, condition/seedN) x every configured benchmark.


rule evaluate:
    input:
        model=model_dir,
        data=benchmark_data,
        code=code("evaluate", "generation", "benchmarks/truthfulqa", "benchmarks/humaneval", "sandbox"),
    output:
        result="results/eval/{checkpoint}/{benchmark}.json",
        samples="results/eval/{checkpoint}/{benchmark}.samples.jsonl.gz",
    params:
        settings=benchmark_settings,
        backend=config["eval"]["backend"],
        batch_size=config["eval"]["batch_size"],
        seed=config["seed"],
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
