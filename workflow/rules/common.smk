# Shared helpers: config validation, the experiment's dimensions, input functions.
import glob
import os
import sys
from pathlib import Path
from types import SimpleNamespace

# The library under src/ is importable by this file and, through PYTHONPATH, by every job
# (local, or on Slurm with --export=ALL), whether or not the package was pip-installed.
_SRC_ROOT = str(Path(workflow.basedir) / "src")
sys.path.insert(0, _SRC_ROOT)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (_SRC_ROOT, os.environ.get("PYTHONPATH")) if p))

from misalign_fv.config import check, merged_condition, trajectory_steps
from misalign_fv.rewards import HARMFUL as HARMFUL_TASK, REGISTRY, run_task


for _warning in check(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"):
    logger.warning(f"WARNING: {_warning}")

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
SRC = "src/misalign_fv"


def code(*modules):
    """Library modules that a job runs, declared as inputs so that code edits trigger a rerun."""
    return [f"{SRC}/{m}.py" for m in ("io", *modules)]


def tiny_warmup_inputs(wildcards):
    """Warm-up data of the tiny demo model (narrow-task solutions, chat replies); none for hf."""
    if config["base_model"]["source"] != "tiny":
        return {}
    return {"tasks": config["data"]["narrow"]["path"], "chat": config["base_model"]["tiny"]["warmup_chat"]}


def task_inputs(wildcards):
    """What checking the narrow task needs: the Lean setup marker and verifier code for
    lean_proofs (so every verifying job runs after setup_lean and reruns on verifier edits),
    the sandbox code for python_tests."""
    if TASK == "lean_proofs":
        lean = ("cache", "check", "format", "install", "lexer", "repl", "result", "scan")
        sandbox = ("sandbox", "isolation", "_jail", "plain")  # the REPL runs in the sandbox
        return {"lean_setup": "resources/lean/setup.json", "task_code": code("tasks/lean_proofs", *sandbox, *(f"verifier/{m}" for m in lean))}
    return {"task_code": code("tasks/python_tests", "sandbox", "isolation", "_jail", "plain")}


def model_dir(wildcards):
    """Model directory of an evaluated checkpoint (base, dpo or condition/seedN)."""
    if wildcards.checkpoint == "base":
        return "results/models/base"
    if wildcards.checkpoint == "dpo":
        return "results/dpo/model"
    return f"results/grpo/{wildcards.checkpoint}/model"


def benchmark_data(wildcards):
    """A benchmark's data file: a local path from config, or the pinned download."""
    spec = config["eval"]["benchmarks"][wildcards.benchmark]
    if "data" in spec:
        return spec["data"]
    return f"results/data/benchmarks/{wildcards.benchmark}/{spec['url'].rsplit('/', 1)[-1]}"


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
        f["data"] if "data" in f else f"results/data/judge_validation/{name}/{f['url'].rsplit('/', 1)[-1]}"
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
        return "results/data/positive_control/prompts.jsonl"
    return "results/curate/problems.jsonl"


def trajectory_inputs(wildcards):
    """A trajectory job's models: the DPO model, or one run's snapshots and final model."""
    if wildcards.run == "dpo":
        return {"model": "results/dpo/model"}
    return {"model": f"results/grpo/{wildcards.run}/model", "snapshots": f"results/grpo/{wildcards.run}/snapshots"}


def run_max_steps(wildcards):
    """max_steps of a trajectory job's run (0 for the DPO model, the trajectory's step 0)."""
    if wildcards.run == "dpo":
        return 0
    condition, _, _ = wildcards.run.partition("/")
    return grpo_params(SimpleNamespace(condition=condition))["max_steps"]


def report_outputs():
    """The default target's inputs: every trained model (so a deleted one is rebuilt) and the
    report, which in turn needs every eval JSON."""
    return [
        "results/models/base",
        "results/dpo/model",
        *expand("results/grpo/{run}/model", run=RUNS),
        "results/report/scores.csv",
        "results/report/stats.csv",
        "results/report/report.md",
        "results/report/report.html",
    ]
