# The starting model: a pinned Hugging Face download (real config) or the tiny demo model.


rule base_model:
    input:
        unpack(tiny_warmup_inputs),
        corpus=config["base_model"].get("tiny", {}).get("corpus", []),
        code=code("base_model"),
    output:
        directory(R("models/base")),
    params:
        base=config["base_model"],
        seed=config["seed"],
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/base_model.log"),
    benchmark:
        R("benchmarks/base_model.tsv")
    localrule: config["base_model"]["source"] == "hf"
    script:
        "../scripts/base_model.py"
