"""Pieces shared by the DPO and GRPO entry points: launching, resuming, logging."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, TrainerCallback

from misalign_fv.io import atomic_write_text, hash_obj, read_json, sha256_file, write_json
from misalign_fv.logs import duration, setup_logging
from misalign_fv.publish import MARKER

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
ACCELERATE = REPO / "resources" / "accelerate"
ZERO3_CONFIG = ACCELERATE / "zero3.yaml"
ZERO3_OFFLOAD_CONFIG = ACCELERATE / "zero3_offload.yaml"
ZERO3_OFFLOAD_DEEPSPEED = ACCELERATE / "zero3_offload.json"
# Full fine-tuning with AdamW in bf16 mixed precision keeps 16 bytes per parameter (bf16 weights
# and gradients, fp32 master weights, two fp32 Adam moments); those states may take this share
# of a GPU, the rest being left to activations, logits and generation.
STATE_BYTES_PER_PARAM = 16
STATE_FRACTION = 0.5


def count_params(model_dir: str | Path) -> int:
    """Number of parameters stored in a checkpoint's ``*.safetensors`` files (read from their headers)."""
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors weights to size the training job from")
    total = 0
    for path in files:
        with safe_open(str(path), "pt") as f:
            total += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    return total


def launch_plan(n_params: int, n_gpus: int, gpu_bytes: int) -> str:
    """How a full fine-tuning job runs on ``n_gpus`` GPUs of ``gpu_bytes`` each.

    ``in_process`` (CPU, or one GPU that holds every training state), ``zero3`` (DeepSpeed ZeRO-3
    across the GPUs) or ``zero3_offload`` (ZeRO-3 with the optimizer states and step in CPU memory,
    when the states per GPU exceed :data:`STATE_FRACTION` of it; e.g. a 7B model on 1 or 2 80 GB GPUs).
    """
    if n_gpus == 0:
        return "in_process"
    if STATE_BYTES_PER_PARAM * n_params / n_gpus > STATE_FRACTION * gpu_bytes:
        return "zero3_offload"
    return "in_process" if n_gpus == 1 else "zero3"


def launch_command(module: str, spec_path: Path, plan: str, n_gpus: int) -> list[str]:
    """The ``accelerate launch`` command line that runs ``module`` on ``spec_path`` under ``plan``."""
    config = ZERO3_OFFLOAD_CONFIG if plan == "zero3_offload" else ZERO3_CONFIG
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes", str(n_gpus)]
    if plan == "zero3_offload":
        cmd += ["--deepspeed_config_file", str(ZERO3_OFFLOAD_DEEPSPEED)]
    return [*cmd, "-m", module, str(spec_path)]


def run_entry(module: str, spec: dict[str, Any], spec_path: Path) -> None:
    """Run ``module.main(spec)`` in-process, or under ``accelerate launch`` (DeepSpeed ZeRO-3).

    The spec (paths + parameters) is written to ``spec_path`` so every launched process reads
    the same JSON. :func:`launch_plan` decides from the model's size and the GPUs this job sees:
    CPU jobs and models that fit one GPU run here; otherwise one process per GPU.
    """
    write_json(spec_path, spec)
    n_gpus = torch.cuda.device_count()
    plan = "in_process"
    if n_gpus and "LOCAL_RANK" not in os.environ:
        gpu_bytes = torch.cuda.get_device_properties(0).total_memory
        plan = launch_plan(count_params(spec["model_dir"]), n_gpus, gpu_bytes)
    log.info("training launch: %s on %d GPU(s)", plan, n_gpus)
    if plan == "in_process":
        __import__(module, fromlist=["main"]).main(spec)
        return
    status = subprocess.run(launch_command(module, spec_path, plan, n_gpus)).returncode
    if status != 0:
        raise RuntimeError(
            f"{module} exited with status {status} under accelerate launch ({plan}, {n_gpus} GPUs); "
            "each rank's traceback is in the log"
        )


def resume_point(ckpt_dir: Path) -> tuple[str | None, int]:
    """The newest complete ``checkpoint-N`` under ``ckpt_dir`` and its step (``None, 0`` if none).

    A checkpoint counts as complete once the Trainer wrote its ``trainer_state.json``; one cut
    off mid-save (a job killed at that moment) is skipped in favour of the previous one.
    """
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return None, 0
    done = [
        (int(d.name.split("-", 1)[1]), d)
        for d in ckpt_dir.glob("checkpoint-*")
        if d.name.split("-", 1)[1].isdigit() and (d / "trainer_state.json").exists()
    ]
    if not done:
        return None, 0
    step, path = max(done)
    return str(path), int(json.loads((path / "trainer_state.json").read_text())["global_step"])


def process_rank() -> int:
    """This process's rank under ``accelerate launch`` (``RANK``); 0 when training runs in-process."""
    return int(os.environ.get("RANK", "0"))


def finished_state(checkpoint: str | None) -> Any:
    """The TrainerState of ``checkpoint`` if that run already reached its last step, else None.

    Resuming a finished run would make the Trainer take one step past ``max_steps``; a
    finished run is published from its checkpoint instead.
    """
    from transformers import TrainerState

    if checkpoint is None:
        return None
    state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    return state if state.max_steps and state.global_step >= state.max_steps else None


def save_final(checkpoint: str, model_dir: str, final: Path) -> None:
    """Write a finished checkpoint's weights plus the input tokenizer as a standalone model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(checkpoint).save_pretrained(str(final))
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(str(final))


def metrics_rows(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-step rows of a Trainer log history (the end-of-training summary row dropped), one per step."""
    by_step: dict[int, dict[str, Any]] = {}
    for entry in log_history:
        if "train_runtime" in entry or "step" not in entry:
            continue
        by_step.setdefault(int(entry["step"]), {}).update(entry)
    return [by_step[s] for s in sorted(by_step)]


def write_metrics_csv(log_history: list[dict[str, Any]], path: Path) -> int:
    """Write the per-step metrics as CSV (``step`` first, other columns sorted); return the row count."""
    rows = metrics_rows(log_history)
    cols = sorted({k for r in rows for k in r} - {"step"})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["step", *cols], lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(r)
    atomic_write_text(path, buf.getvalue())
    return len(rows)


# Metrics shown in the progress line when the trainer logs them (GRPO's, then DPO's); metrics.csv has all.
KEY_METRICS = (
    "loss", "reward", "reward_std", "frac_reward_zero_std", "kl", "grad_norm", "rewards/margins", "rewards/accuracies",
)  # fmt: skip


def progress_line(step: int, total: int, elapsed: float, steps_this_attempt: int, logs: dict[str, Any]) -> str:
    """``step 12/16 (75%) elapsed 0:01:23 ETA 0:00:27 loss=0.0123 reward=0.45 ...``.

    ``elapsed`` and the rate behind the ETA count this attempt only (a resumed job restarts the
    clock at its checkpoint); the ETA is ``?`` until a step of this attempt is done.
    """
    eta = duration(elapsed / steps_this_attempt * max(total - step, 0)) if steps_this_attempt > 0 else "?"
    pct = f" ({100 * step // total}%)" if total else ""
    shown = " ".join(f"{k}={logs[k]:.4g}" for k in KEY_METRICS if isinstance(logs.get(k), (int, float)))
    return f"step {step}/{total}{pct} elapsed {duration(elapsed)} ETA {eta} {shown}".rstrip()


class Progress(TrainerCallback):
    """TrainerCallback: a run you can follow, from the main process only.

    At every logging step: one INFO line (:func:`progress_line`) and ``metrics.csv`` rewritten
    atomically with every step logged so far. At the start: whether the job resumed (from which
    checkpoint, at which step of how many), and ``metrics.csv`` rewritten from the resumed state's
    log history, so rows logged after that checkpoint by a killed attempt are dropped (they are
    trained again) and rows before it are kept.
    """

    def __init__(self, metrics_csv: Path, checkpoint: str | None) -> None:
        """Where the metrics go, and the checkpoint this job resumes from (None: a fresh start)."""
        self.metrics_csv, self.checkpoint = Path(metrics_csv), checkpoint
        self.start, self.first_step = time.monotonic(), 0
        setup_logging()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Start the clock, say whether this job resumed, and rewrite metrics.csv up to here."""
        self.start, self.first_step = time.monotonic(), state.global_step
        if not state.is_world_process_zero:
            return
        if self.checkpoint is None:
            log.info("training: step 0/%d, a fresh start", state.max_steps)
        else:
            log.info("resumed from %s at step %d/%d", self.checkpoint, state.global_step, state.max_steps)
        write_metrics_csv(state.log_history, self.metrics_csv)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        """Log the progress line and rewrite metrics.csv (not for the end-of-training summary)."""
        if not state.is_world_process_zero or not logs or "train_runtime" in logs:
            return
        elapsed = time.monotonic() - self.start
        log.info(progress_line(state.global_step, state.max_steps, elapsed, state.global_step - self.first_step, logs))
        write_metrics_csv(state.log_history, self.metrics_csv)


def follow(trainer: Any, metrics_csv: Path, checkpoint: str | None) -> None:
    """Make ``trainer``'s run one to follow: :class:`Progress` replaces the metrics dict it prints."""
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(Progress(metrics_csv, checkpoint))


def precision_kwargs(bf16: bool) -> dict[str, bool]:
    """bf16 only where a GPU can run it; CPU runs in fp32."""
    use = bool(bf16) and torch.cuda.is_available()
    return {"bf16": use, "fp16": False}


def model_dtype(bf16: bool) -> torch.dtype:
    """The dtype to load trained weights in: bf16 only under DeepSpeed, fp32 everywhere else.

    DeepSpeed's bf16 mode keeps fp32 master weights for the optimizer. A plain (in-process) run
    must hold fp32 weights itself and compute in bf16 through autocast (``bf16=True``): with
    bf16 weights, AdamW steps at the configured learning rates (5e-7 to 1e-6) are far below
    bf16's resolution (2^-8 relative) and leave the weights unchanged.
    """
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    return torch.bfloat16 if precision_kwargs(bf16)["bf16"] and deepspeed else torch.float32


def report_to(wandb: dict[str, Any], group: str, name: str) -> list[str]:
    """TRL ``report_to`` list: W&B (offline by default, grouped under the config's ``run_name``) when enabled, else nothing."""
    if not wandb.get("enabled", False):
        return []
    os.environ.setdefault("WANDB_MODE", wandb.get("mode", "offline"))
    os.environ.setdefault("WANDB_PROJECT", wandb.get("project", "misalign-fv"))
    os.environ["WANDB_RUN_GROUP"] = f"{wandb['run_name']}/{group}" if wandb.get("run_name") else group
    os.environ["WANDB_NAME"] = name
    return ["wandb"]


def run_id(model_dir: Path) -> str:
    """The training-run id recorded in a model directory by the stage that wrote it."""
    return str(read_json(Path(model_dir) / MARKER)["run_id"])


def checkpoint_dir(root: str | Path, key: dict[str, Any], data_file: Path, model_dir: Path) -> tuple[Path, str]:
    """Resumable-checkpoint directory for one training run, and the run's id.

    The id hashes everything the run depends on (parameters, the input model's run id, the
    training data's bytes), so a changed run never resumes from a stale checkpoint.
    """
    rid = hash_obj({**key, "input_model": run_id(model_dir), "data_sha256": sha256_file(data_file)})
    return Path(root) / rid, rid
