# Phase 1: safety DPO, then the gate (refusals up, narrow-task skill kept).


rule train_dpo:
    input:
        model=R("models/base"),
        pairs=R("data/safety/pairs.jsonl"),
        code=code("train_dpo", extra=["misalign_fv.dpo"]),
    output:
        model=directory(R("dpo/model")),
        metrics=R("dpo/metrics.csv"),
    params:
        dpo=config["dpo"],
        seed=config["seed"],
        ckpt_root=f"{SCRATCH}/dpo",
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/train_dpo.log"),
    benchmark:
        R("benchmarks/train_dpo.tsv")
    resources:
        runtime=training_runtime(24 * 60),
    script:
        "../scripts/train_dpo.py"


rule dpo_gate:
    input:
        unpack(task_inputs),
        base=R("models/base"),
        dpo=R("dpo/model"),
        heldout=R("data/safety/heldout.jsonl"),
        pool=R("data/narrow/problems.jsonl"),
        code=code("dpo_gate"),
    output:
        gate=R("dpo/gate.json"),
        samples=R("dpo/gate_samples.jsonl.gz"),
    params:
        gate=config["gate"],
        task=TASK,
        seed=config["seed"],
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/dpo_gate.log"),
    benchmark:
        R("benchmarks/dpo_gate.tsv")
    script:
        "../scripts/dpo_gate.py"
