# misalign-fv: does RL on a narrow formal-verification task erode safety training?
# safety DPO -> gate -> curation -> GRPO (condition x seed) -> evaluation -> report.
# Paths, under the config's own root (`results:`, e.g. results/demo): <stage>/..., logs/<rule>/...,
# benchmarks/<rule>/... (Snakemake benchmark files).
from snakemake.utils import min_version

min_version("9.14.1")


# The real experiment is the default; `--configfile config/demo.yaml` replaces it (not merged).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
# Wildcards take only this config's values, so a path outside the experiment matches no rule (and a
# results path on the command line is checked in one line first: common.smk).
wildcard_constraints:
    condition="|".join(CONDITIONS),
    seed="|".join(map(str, SEEDS)),
    benchmark="|".join(BENCHMARKS),
    checkpoint="|".join(CHECKPOINTS),
    run="|".join(["dpo", *RUNS]),


include: "workflow/rules/models.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/lean.smk"
include: "workflow/rules/dpo.smk"
include: "workflow/rules/curate.smk"
include: "workflow/rules/grpo.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/preflight.smk"
include: "workflow/rules/judge_validation.smk"
include: "workflow/rules/report.smk"


# Every declared output of the experiment (temporary ones aside): deleting any one reruns its
# producer and everything downstream of it.
rule all:
    default_target: True
    input:
        every_output,
