# Shared helpers: config validation, the experiment's dimensions, input functions.
import os
import sys
from pathlib import Path
from types import SimpleNamespace

# The library under src/ is importable by this file and, through PYTHONPATH, by every job
# (local, or on Slurm with --export=ALL), whether or not the package was pip-installed.
_SRC_ROOT = str(Path(workflow.basedir) / "src")
sys.path.insert(0, _SRC_ROOT)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (_SRC_ROOT, os.environ.get("PYTHONPATH")) if p))

from snakemake.io import is_flagged, strip_wildcard_constraints

from misalign_fv.benchmarks import BENCHMARKS as BENCHMARK_MODULES, JUDGED_BENCHMARKS
from misalign_fv.code_deps import code_inputs
from misalign_fv.config import ConfigError, check, merged_condition, trajectory_steps
from misalign_fv.rewards import HARMFUL as HARMFUL_TASK, REGISTRY, run_task
from misalign_fv.targets import first_problem

# `--configfile config/demo.yaml results/.../x.json` makes the target a second config file.
for _cf in workflow.config_settings.configfiles:
    if Path(_cf).suffix not in (".yaml", ".yml"):
        raise ConfigError(
            f"config: {os.path.relpath(_cf)}: read as a config file; put targets before --configfile, or write --configfile=FILE"
        )

for _warning in check(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"):
    logger.warning(f"WARNING: {_warning}")

# Slurm: the profile's account comes from $SBATCH_ACCOUNT; unset, sbatch would get the literal text.
if workflow.is_main_process and any(  # checked where jobs are submitted, not inside a job
    "SBATCH_ACCOUNT" in str(getattr(r, "raw", ""))
    for r in dict((workflow.resource_settings.default_resources or {}).items()).values()
) and not os.environ.get("SBATCH_ACCOUNT"):
    raise ConfigError(
        "profile: SBATCH_ACCOUNT is not set; run `export SBATCH_ACCOUNT=<allocation>` (see `allocations`) first"
    )

# Every output, log and benchmark file of this config lives under its own root (config key `results`),
# so the demo and the real experiment never overwrite each other.
ROOT = config["results"].rstrip("/")


def R(path):
    """``path`` under this config's results root."""
    return f"{ROOT}/{path}"


TASK = config["task"]
SCRATCH = os.path.expandvars(config["scratch_dir"])
CONDITIONS = sorted(config["grpo"]["conditions"])
SEEDS = sorted(config["grpo"]["seeds"])
BENCHMARKS = sorted(config["eval"]["benchmarks"])
RUNS = [f"{c}/seed{s}" for c in CONDITIONS for s in SEEDS]
CHECKPOINTS = ["base", "dpo", *RUNS]
# Trajectory evaluation: the DPO model (step 0), each run's snapshots and its final model, on a
# cheap safety subset (eval.trajectory).
TRAJECTORY = config["eval"].get("trajectory") or {}
TRAJECTORY_EVERY = TRAJECTORY.get("every")
TRAJECTORY_BENCHMARKS = sorted(TRAJECTORY.get("benchmarks", {}))
TRAJECTORY_RUNS = ["dpo", *RUNS] if TRAJECTORY_BENCHMARKS else []
# Judge validation: the judge on reference-labelled answers (eval.judge_validation), upstream of the report.
VALIDATION = config["eval"].get("judge_validation")


# Targets are not visible to a Snakefile; results paths on the command line are checked here so that
# an unconfigured seed, condition or benchmark fails in one line instead of planning new GPU jobs.
_problem = first_problem(sys.argv[1:], ROOT, CONDITIONS, SEEDS, BENCHMARKS)
if _problem is not None:
    raise ConfigError(_problem)


def code(script, extra=(), exclude=()):
    """The library files a rule's script runs (computed from its imports), declared as inputs so
    that editing one reruns the rules that run it. ``extra``: modules loaded by name at run time."""
    return code_inputs(f"workflow/scripts/{script}.py", "src", extra=tuple(extra), exclude=tuple(exclude))


def benchmark_code(benchmarks):
    """code() arguments of an evaluation of ``benchmarks``: their modules (loaded by name), and the
    judge's code only when one of them is judged (so judge edits rerun only judged evaluations)."""
    judged = any(b in JUDGED_BENCHMARKS for b in benchmarks)
    return {
        "extra": sorted({f"misalign_fv.benchmarks.{BENCHMARK_MODULES[b]}" for b in benchmarks}),
        "exclude": [] if judged else ["misalign_fv.judges"],
    }


def tiny_warmup_inputs(wildcards):
    """Warm-up data of the tiny demo model (narrow-task solutions, chat replies); none for hf."""
    if config["base_model"]["source"] != "tiny":
        return {}
    return {"tasks": config["data"]["narrow"]["path"], "chat": config["base_model"]["tiny"]["warmup_chat"]}


def task_inputs(wildcards):
    """What checking the narrow task needs besides code: the Lean setup marker for lean_proofs (so
    every verifying job runs after setup_lean)."""
    return {"lean_setup": "resources/lean/setup.json"} if TASK == "lean_proofs" else {}


def model_dir(wildcards):
    """Model directory of an evaluated checkpoint (base, dpo or condition/seedN)."""
    if wildcards.checkpoint == "base":
        return R("models/base")
    if wildcards.checkpoint == "dpo":
        return R("dpo/model")
    return R(f"grpo/{wildcards.checkpoint}/model")


def benchmark_data(wildcards):
    """A benchmark's data file: a local path from config, or the pinned download."""
    spec = config["eval"]["benchmarks"][wildcards.benchmark]
    if "data" in spec:
        return spec["data"]
    return R(f"data/benchmarks/{wildcards.benchmark}/{spec['url'].rsplit('/', 1)[-1]}")


def benchmark_settings(wildcards):
    """The benchmark's own config slice (without where its data comes from)."""
    spec = config["eval"]["benchmarks"][wildcards.benchmark]
    return {k: v for k, v in spec.items() if k not in ("data", "url", "sha256")}


def download_spec(wildcards):
    """URL and sha256 of a benchmark file downloaded by a local rule."""
    spec = config["eval"]["benchmarks"][wildcards.benchmark]
    return {"url": spec["url"], "sha256": spec["sha256"]}


def validation_files(name):
    """A validation set's data files: local paths from config, or the pinned downloads."""
    files = (VALIDATION or {}).get(name, {}).get("files", [])
    return [
        f["data"] if "data" in f else R(f"data/judge_validation/{name}/{f['url'].rsplit('/', 1)[-1]}")
        for f in files
    ]


def validation_download_spec(wildcards):
    """URL and sha256 of the validation file named by the output path."""
    for f in VALIDATION[wildcards.vset]["files"]:
        if f.get("url", "").rsplit("/", 1)[-1] == wildcards.file:
            return {"url": f["url"], "sha256": f["sha256"]}
    raise ValueError(f"eval.judge_validation.{wildcards.vset}: no file named {wildcards.file}")


def grpo_params(wildcards):
    """One condition's GRPO parameters: defaults overlaid with its own overrides."""
    return merged_condition(config, wildcards.condition)


GPU_MAX_MINUTES = 3 * 24 * 60  # Rivanna's gpu partition limit; sbatch rejects a longer request


def training_runtime(base_minutes):
    """Slurm time limit that grows with the attempt, capped at the gpu partition's 3 days.

    A retried job resumes from its checkpoint, so a capped attempt still makes progress.
    """

    def runtime(wildcards, attempt):
        return min(base_minutes * attempt, GPU_MAX_MINUTES)

    return runtime


def trajectory_settings(wildcards):
    """A trajectory benchmark's settings: the benchmark's own, overlaid with eval.trajectory's overrides."""
    return {**benchmark_settings(wildcards), **(TRAJECTORY["benchmarks"][wildcards.benchmark] or {})}


def grpo_problems(wildcards):
    """The prompts a run trains on: the curated narrow-task problems, or the positive control's requests."""
    if run_task(wildcards.condition, TASK) == HARMFUL_TASK:
        return R("data/positive_control/prompts.jsonl")
    return R("curate/problems.jsonl")


def trajectory_inputs(wildcards):
    """A trajectory job's models: the DPO model, or one run's snapshots and final model."""
    if wildcards.run == "dpo":
        return {"model": R("dpo/model")}
    return {"model": R(f"grpo/{wildcards.run}/model"), "snapshots": R(f"grpo/{wildcards.run}/snapshots")}


def run_max_steps(wildcards):
    """max_steps of a trajectory job's run (0 for the DPO model, the trajectory's step 0)."""
    if wildcards.run == "dpo":
        return 0
    condition, _, _ = wildcards.run.partition("/")
    return grpo_params(SimpleNamespace(condition=condition))["max_steps"]


def outputs(rule, **values):
    """A rule's declared outputs, temporary ones left out, expanded over the given wildcard values."""
    patterns = [strip_wildcard_constraints(str(f)) for f in getattr(rules, rule).rule.output if not is_flagged(f, "temp")]
    return expand(patterns, **values) if values else list(patterns)


def every_output(wildcards):
    """The default target: every declared output of this config's experiment (temporary ones aside),
    so that deleting any one of them reruns its producer and everything downstream of it."""
    downloads = [p for p in map(benchmark_data, (SimpleNamespace(benchmark=b) for b in BENCHMARKS)) if p.startswith(ROOT)]
    downloads += [p for name in ("em", "xstest") for p in validation_files(name) if p.startswith(ROOT)]
    stages = [
        "base_model", "prepare_safety", "prepare_pool", "train_dpo", "dpo_gate", "curate", "reward_signal", "report",
        *(["prepare_positive_control"] if POSITIVE else []),
        *(["judge_model"] if JUDGE_DIR == R("models/judge") else []),
        *(["judge_validation"] if VALIDATION else []),
        *(["cluster_preflight"] if workflow.is_rule("cluster_preflight") else []),
        *(["setup_lean", "download_minif2f", "prepare_minif2f", "download_lean_problems", "prepare_lean_problems"] if "lean" in config else []),
    ]  # fmt: skip
    return sorted({
        *downloads,
        *(f for stage in stages for f in outputs(stage)),
        *outputs("train_grpo", condition=CONDITIONS, seed=SEEDS),
        *outputs("evaluate", checkpoint=CHECKPOINTS, benchmark=BENCHMARKS),
        *(outputs("evaluate_trajectory", run=TRAJECTORY_RUNS) if TRAJECTORY_RUNS else []),
    })  # fmt: skip
