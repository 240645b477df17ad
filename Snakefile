# misalign-fv: does RL on a narrow formal-verification task erode safety training?
# safety DPO -> gate -> curation -> GRPO (condition x seed) -> evaluation -> report.
# Paths: results/<stage>/..., logs/<rule>/..., results/benchmarks/<rule>/... (Snakemake benchmark files).
from snakemake.utils import min_version

min_version("9.14.1")


# The real experiment is the default; `--configfile config/demo.yaml` replaces it (not merged).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
wildcard_constraints:
    condition="|".join(CONDITIONS),
    seed=r"\d+",
    benchmark="|".join(BENCHMARKS),
    checkpoint="|".join(["base", "dpo", *(rf"{c}/seed\d+" for c in CONDITIONS)]),
    run="|".join(["dpo", *(rf"{c}/seed\d+" for c in CONDITIONS)]),


include: "workflow/rules/models.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/lean.smk"
include: "workflow/rules/dpo.smk"
include: "workflow/rules/curate.smk"
include: "workflow/rules/grpo.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/judge_validation.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        report_outputs(),
