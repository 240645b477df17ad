# Lean 4 (task lean_proofs): the toolchain, miniF2F and the training problem pool.
# setup_lean and the downloads are local rules (they need the network; compute nodes are offline).
# Every rule that verifies proofs depends on setup_lean's marker, directly or through the
# problem files checked with it (the pool -> curation -> GRPO; minif2f.jsonl -> its evaluations).

if "lean" in config:
    LEAN = config["lean"]
    LEAN_SETUP = "resources/lean/setup.json"
    LEAN_CODE = code(
        "tasks/lean_proofs", "isolation", "_jail",
        *(f"verifier/{m}" for m in ("cache", "check", "format", "install", "lexer", "repl", "result", "scan")),
    )

    rule setup_lean:
        output:
            LEAN_SETUP,
        params:
            lean={k: LEAN[k] for k in ("toolchain", "mathlib", "repl", "memory_mb", "header_timeout_s", "header")},
        conda:
            "../../envs/cluster.yaml"
        log:
            "logs/setup_lean.log",
        benchmark:
            "results/benchmarks/setup_lean.tsv"
        localrule: True
        script:
            "../scripts/setup_lean.py"

    rule download_minif2f:
        output:
            "results/data/lean/raw/minif2f.jsonl",
        params:
            spec=LEAN["minif2f"],
        conda:
            "../../envs/cluster.yaml"
        log:
            "logs/download_minif2f.log",
        benchmark:
            "results/benchmarks/download_minif2f.tsv"
        localrule: True
        script:
            "../scripts/download_benchmark.py"

    rule prepare_minif2f:
        input:
            raw="results/data/lean/raw/minif2f.jsonl",
            setup=LEAN_SETUP,
            code=LEAN_CODE,
        output:
            data="results/data/lean/minif2f.jsonl",
            report="results/data/lean/minif2f.report.json",
        params:
            timeout_s=LEAN["check_timeout_s"],
        conda:
            "../../envs/cluster.yaml"
        log:
            "logs/prepare_minif2f.log",
        benchmark:
            "results/benchmarks/prepare_minif2f.tsv"
        threads: 8
        resources:
            mem_mb=80000,
            runtime=120,
        script:
            "../scripts/prepare_minif2f.py"

    rule download_lean_problems:
        output:
            "results/data/lean/raw/problems.json",
        params:
            spec={k: LEAN["problems"][k] for k in ("hf_dataset", "file", "revision")},
        conda:
            "../../envs/cluster.yaml"
        log:
            "logs/download_lean_problems.log",
        benchmark:
            "results/benchmarks/download_lean_problems.tsv"
        localrule: True
        script:
            "../scripts/download_lean_problems.py"

    rule prepare_lean_problems:
        input:
            raw="results/data/lean/raw/problems.json",
            minif2f="results/data/lean/minif2f.jsonl",
            setup=LEAN_SETUP,
            code=LEAN_CODE,
        output:
            problems="results/data/lean/problems.jsonl",
            report="results/data/lean/problems.report.json",
        params:
            problems={"n_problems": LEAN["problems"]["n_problems"], "source": LEAN["problems"]["hf_dataset"]},
            header=LEAN["header"],
            seed=config["seed"],
            timeout_s=LEAN["check_timeout_s"],
        conda:
            "../../envs/cluster.yaml"
        log:
            "logs/prepare_lean_problems.log",
        benchmark:
            "results/benchmarks/prepare_lean_problems.tsv"
        threads: 8
        resources:
            mem_mb=80000,
            runtime=240,
        script:
            "../scripts/prepare_lean_problems.py"
