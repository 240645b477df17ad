# Curation: keep problems the DPO model solves within the configured pass-rate band.


rule curate:
    input:
        unpack(task_inputs),
        model=R("dpo/model"),
        pool=R("data/narrow/problems.jsonl"),
        gate=R("dpo/gate.json"),
        preflight=ancient(R("preflight/cluster.json")),  # the cluster preflight passed (a gate, not data)
        code=code("curate"),
    output:
        problems=R("curate/problems.jsonl"),
        pass_rates=R("curate/pass_rates.csv"),
        samples=R("curate/samples.jsonl.gz"),
    params:
        curate=config["curate"],
        task=TASK,
        seed=config["seed"],
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/curate.log"),
    benchmark:
        R("benchmarks/curate.tsv")
    script:
        "../scripts/curate.py"
