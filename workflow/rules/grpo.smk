# Phase 2: one GRPO run per reward condition x seed, from the DPO checkpoint. The reward-signal
# preflight (rule reward_signal) must pass first: a condition whose rewards would not vary under
# the DPO model's own samples would teach nothing.


rule train_grpo:
    input:
        unpack(task_inputs),
        model=R("dpo/model"),
        problems=grpo_problems,
        # A gate, not data: it must have passed before any run starts, but rerunning it (e.g. after
        # the positive control's prompts were rewritten) does not make every finished run stale.
        signal=ancient(R("preflight/reward_signal.json")),
        preflight=ancient(R("preflight/cluster.json")),  # the cluster preflight passed
        code=code("train_grpo", extra=["misalign_fv.grpo"]),
    output:
        model=directory(R("grpo/{condition}/seed{seed}/model")),
        snapshots=temp(directory(R("grpo/{condition}/seed{seed}/snapshots"))),
        metrics=R("grpo/{condition}/seed{seed}/metrics.csv"),
        completions=R("grpo/{condition}/seed{seed}/completions.jsonl.gz"),
        summary=R("grpo/{condition}/seed{seed}/summary.json"),
    params:
        grpo=grpo_params,
        task=lambda wc: run_task(wc.condition, TASK),
        shuffle_reference=config["grpo"]["shuffle_reference"],
        trajectory_every=TRAJECTORY_EVERY,
        ckpt_root=f"{SCRATCH}/grpo",
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/train_grpo/{condition}/seed{seed}.log"),
    benchmark:
        R("benchmarks/train_grpo/{condition}/seed{seed}.tsv")
    resources:
        runtime=training_runtime(72 * 60),
    script:
        "../scripts/train_grpo.py"


POSITIVE = any(run_task(c, TASK) == HARMFUL_TASK for c in CONDITIONS)


rule reward_signal:
    input:
        samples=R("curate/samples.jsonl.gz"),
        model=R("dpo/model"),
        prompts=R("data/positive_control/prompts.jsonl") if POSITIVE else [],
        code=code("reward_signal"),
    output:
        R("preflight/reward_signal.json"),
    params:
        conditions=CONDITIONS,
        shuffle_reference=config["grpo"]["shuffle_reference"],
        preflight=config["grpo"]["preflight"],
        positive=POSITIVE,
        curate={k: config["curate"][k] for k in ("k", "temperature", "max_new_tokens")},
        seed=config["seed"],
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/reward_signal.log"),
    benchmark:
        R("benchmarks/reward_signal.tsv")
    script:
        "../scripts/reward_signal.py"
