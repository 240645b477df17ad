# Lean 4 (task lean_proofs): the toolchain, miniF2F and the training problem pool.
# setup_lean and the downloads are local rules (they need the network; compute nodes are offline).
# Every rule that verifies proofs depends on setup_lean's marker, directly or through the
# problem files checked with it (the pool -> curation -> GRPO; minif2f.jsonl -> its evaluations).

if "lean" in config:
    LEAN = config["lean"]
    LEAN_SETUP = "resources/lean/setup.json"

    rule setup_lean:
        output:
            LEAN_SETUP,
        params:
            lean={k: LEAN[k] for k in ("toolchain", "mathlib", "repl", "memory_mb", "header_timeout_s", "header")},
        conda:
            "../../envs/cluster.yaml"
        log:
            R("logs/setup_lean.log"),
        benchmark:
            R("benchmarks/setup_lean.tsv")
        localrule: True
        script:
            "../scripts/setup_lean.py"

    rule download_minif2f:
        output:
            R("data/lean/raw/minif2f.jsonl"),
        params:
            spec=LEAN["minif2f"],
        conda:
            "../../envs/cluster.yaml"
        log:
            R("logs/download_minif2f.log"),
        benchmark:
            R("benchmarks/download_minif2f.tsv")
        localrule: True
        script:
            "../scripts/download_benchmark.py"

    rule prepare_minif2f:
        input:
            raw=R("data/lean/raw/minif2f.jsonl"),
            preflight=ancient(R("preflight/cluster.json")),  # the cluster preflight passed
            setup=LEAN_SETUP,
            code=code("prepare_minif2f"),
        output:
            data=R("data/lean/minif2f.jsonl"),
            report=R("data/lean/minif2f.report.json"),
        params:
            timeout_s=LEAN["check_timeout_s"],
        conda:
            "../../envs/cluster.yaml"
        log:
            R("logs/prepare_minif2f.log"),
        benchmark:
            R("benchmarks/prepare_minif2f.tsv")
        script:
            "../scripts/prepare_minif2f.py"

    rule download_lean_problems:
        output:
            R("data/lean/raw/problems.json"),
        params:
            spec={k: LEAN["problems"][k] for k in ("hf_dataset", "file", "revision")},
        conda:
            "../../envs/cluster.yaml"
        log:
            R("logs/download_lean_problems.log"),
        benchmark:
            R("benchmarks/download_lean_problems.tsv")
        localrule: True
        script:
            "../scripts/download_lean_problems.py"

    rule prepare_lean_problems:
        input:
            raw=R("data/lean/raw/problems.json"),
            minif2f=R("data/lean/minif2f.jsonl"),
            setup=LEAN_SETUP,
            code=code("prepare_lean_problems"),
        output:
            problems=R("data/lean/problems.jsonl"),
            report=R("data/lean/problems.report.json"),
        params:
            problems={"n_problems": LEAN["problems"]["n_problems"], "source": LEAN["problems"]["hf_dataset"]},
            header=LEAN["header"],
            seed=config["seed"],
            timeout_s=LEAN["check_timeout_s"],
        conda:
            "../../envs/cluster.yaml"
        log:
            R("logs/prepare_lean_problems.log"),
        benchmark:
            R("benchmarks/prepare_lean_problems.tsv")
        script:
            "../scripts/prepare_lean_problems.py"
