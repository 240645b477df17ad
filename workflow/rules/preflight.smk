# Cluster preflight: the first job of a run. Cheap checks (minutes) of what the expensive jobs rely on:
# the real Lean toolchain + REPL + Mathlib (accepted proofs, rejected exploits, #print axioms, a
# timeout), one short generation with the configured backend (one BOS), the judge on two fixed
# answers, the sandbox's isolation. Its JSON is an input of curation, GRPO and miniF2F, so a broken
# setup stops the run before any GPU-day is spent. preflight.required: the checks that must pass.

PREFLIGHT_LEAN = TASK == "lean_proofs"
PREFLIGHT_JUDGE = config["eval"].get("judge")


rule cluster_preflight:
    input:
        model=R("models/base"),
        lean_setup="resources/lean/setup.json" if PREFLIGHT_LEAN else [],
        lean_cases="resources/preflight/lean_cases.yaml" if PREFLIGHT_LEAN else [],
        judge_model=JUDGE_DIR or [],
        judge_answers="resources/preflight/judge_answers.yaml",
        em_data=benchmark_data(SimpleNamespace(benchmark="em_main")) if "em_main" in BENCHMARKS else [],
        code=code("preflight"),
    output:
        R("preflight/cluster.json"),
    params:
        required=config.get("preflight", {}).get("required"),  # None: every check
        lean={"header": LEAN["header"], "timeout_s": LEAN["check_timeout_s"]} if PREFLIGHT_LEAN else None,
        judge=PREFLIGHT_JUDGE,
        seed=config["seed"],
    conda:
        "../../envs/cluster.yaml"
    log:
        log=R("logs/cluster_preflight.log"),
        # a copy of the report that Snakemake keeps when the job fails (it removes a failed job's outputs)
        checks=R("logs/cluster_preflight.json"),
    benchmark:
        R("benchmarks/cluster_preflight.tsv")
    script:
        "../scripts/preflight.py"
