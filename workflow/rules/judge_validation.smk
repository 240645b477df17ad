# Judge validation: the configured judge re-scores answers with reference labels (EM: GPT-4o 0-100
# scores; XSTest: human classes) -> agreement statistics and pass/fail against eval.judge_validation's
# minimums. A failed validation flags every judged metric in the report.

VALIDATION_SETS = [s for s in ("em", "xstest") if VALIDATION and s in VALIDATION]
if VALIDATION and JUDGE is None:
    raise ValueError("eval.judge_validation needs eval.judge (the judge it validates)")
if VALIDATION and "em" in VALIDATION and "em_main" not in BENCHMARKS:
    raise ValueError("eval.judge_validation.em needs eval.benchmarks.em_main (its file holds the EM judge prompts)")


rule judge_validation:
    input:
        em=validation_files("em"),
        xstest=validation_files("xstest"),
        em_questions=benchmark_data(SimpleNamespace(benchmark="em_main")) if "em" in VALIDATION_SETS else [],
        judge_model=JUDGE_DIR or [],
        code=code("judge_validation"),
    output:
        R("judge_validation.json"),
    params:
        settings=VALIDATION,
        judge=JUDGE,
        judged=sorted(b for b in BENCHMARKS if b in JUDGED_BENCHMARKS),
        seed=config["seed"],
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/judge_validation.log"),
    benchmark:
        R("benchmarks/judge_validation.tsv")
    script:
        "../scripts/judge_validation.py"


rule download_judge_validation:
    output:
        R("data/judge_validation/{vset}/{file}"),
    wildcard_constraints:
        vset="em|xstest",
    params:
        spec=validation_download_spec,
    conda:
        "../../envs/cluster.yaml"
    log:
        R("logs/download_judge_validation/{vset}/{file}.log"),
    benchmark:
        R("benchmarks/download_judge_validation/{vset}/{file}.tsv")
    localrule: True
    script:
        "../scripts/download_benchmark.py"
