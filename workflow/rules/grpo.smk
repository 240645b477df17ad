# Phase 2: one GRPO run per reward condition x seed, from the DPO checkpoint.


rule train_grpo:
    input:
        unpack(task_inputs),
        model="results/dpo/model",
        problems="results/curate/problems.jsonl",
        code=code("training", "grpo", "rewards", "tasks/__init__"),
    output:
        model=directory("results/grpo/{condition}/seed{seed}/model"),
        metrics="results/grpo/{condition}/seed{seed}/metrics.csv",
        completions="results/grpo/{condition}/seed{seed}/completions.jsonl.gz",
        summary="results/grpo/{condition}/seed{seed}/summary.json",
    params:
        grpo=grpo_params,
        task=TASK,
        random_reference=config["grpo"]["random_reference"],
        wandb=config["grpo"].get("wandb", {}),
        ckpt_root=f"{SCRATCH}/grpo",
    conda:
        "../../envs/cluster.yaml"
    log:
        "logs/train_grpo/{condition}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_grpo/{condition}/seed{seed}.tsv"
    resources:
        mem_mb=16000,
        runtime=training_runtime(72 * 60),
    script:
        "../scripts/train_grpo.py"
