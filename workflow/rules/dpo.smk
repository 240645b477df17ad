# Phase 1: safety DPO, then the gate (refusals up, narrow-task skill kept).


rule train_dpo:
    input:
        model="results/models/base",
        pairs="results/data/safety/pairs.jsonl",
        code=code("training", "dpo"),
    output:
        model=directory("results/dpo/model"),
        metrics="results/dpo/metrics.csv",
    params:
        dpo=config["dpo"],
        seed=config["seed"],
        wandb=config["grpo"].get("wandb", {}),
        ckpt_root=f"{SCRATCH}/dpo",
    conda:
        "../../envs/cluster.yaml"
    log:
        "logs/train_dpo.log",
    benchmark:
        "results/benchmarks/train_dpo.tsv"
    resources:
        mem_mb=16000,
        runtime=training_runtime(24 * 60),
    script:
        "../scripts/train_dpo.py"


rule dpo_gate:
    input:
        unpack(task_inputs),
        base="results/models/base",
        dpo="results/dpo/model",
        heldout="results/data/safety/heldout.jsonl",
        pool="results/data/narrow/problems.jsonl",
        code=code("gate", "generation", "refusal", "tasks/__init__"),
    output:
        gate="results/dpo/gate.json",
        samples="results/dpo/gate_samples.jsonl.gz",
    params:
        gate=config["gate"],
        task=TASK,
        backend=config["eval"]["backend"],
        seed=config["seed"],
    conda:
        "../../envs/cluster.yaml"
    log:
        "logs/dpo_gate.log",
    benchmark:
        "results/benchmarks/dpo_gate.tsv"
    resources:
        mem_mb=16000,
        runtime=240,
    script:
        "../scripts/dpo_gate.py"
