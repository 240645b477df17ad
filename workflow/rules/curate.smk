# Curation: keep problems the DPO model solves within the configured pass-rate band.


rule curate:
    input:
        unpack(task_inputs),
        model="results/dpo/model",
        pool="results/data/narrow/problems.jsonl",
        gate="results/dpo/gate.json",
        code=code("curate", "gate", "generation", "rewards", "tasks/__init__"),
    output:
        problems="results/curate/problems.jsonl",
        pass_rates="results/curate/pass_rates.csv",
        samples="results/curate/samples.jsonl.gz",
    params:
        curate=config["curate"],
        task=TASK,
        backend=config["eval"]["backend"],
        seed=config["seed"],
    conda:
        "../../envs/cluster.yaml"
    log:
        "logs/curate.log",
    benchmark:
        "results/benchmarks/curate.tsv"
    resources:
        mem_mb=16000,
        runtime=480,
    script:
        "../scripts/curate.py"
