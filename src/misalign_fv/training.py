"""Pieces shared by the DPO and GRPO entry points: launching, resuming, logging."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from misalign_fv.io import atomic_write_text, hash_obj, read_json, sha256_file, write_json

REPO = Path(__file__).resolve().parents[2]
ZERO3_CONFIG = REPO / "resources" / "accelerate" / "zero3.yaml"


def run_entry(module: str, spec: dict[str, Any], spec_path: Path) -> None:
    """Run ``module.main(spec)`` here, or under ``accelerate launch`` (DeepSpeed ZeRO-3) on >1 GPU.

    The spec (paths + parameters) is written to ``spec_path`` so every launched process reads
    the same JSON; a single GPU or CPU job runs in-process.
    """
    write_json(spec_path, spec)
    n_gpus = torch.cuda.device_count()
    if n_gpus > 1 and "LOCAL_RANK" not in os.environ:
        cmd = [
            sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str(ZERO3_CONFIG),
            "--num_processes", str(n_gpus),
            "-m", module, str(spec_path),
        ]  # fmt: skip
        subprocess.run(cmd, check=True)
        return
    __import__(module, fromlist=["main"]).main(spec)


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


def precision_kwargs(bf16: bool) -> dict[str, bool]:
    """bf16 only where a GPU can run it; CPU runs in fp32."""
    use = bool(bf16) and torch.cuda.is_available()
    return {"bf16": use, "fp16": False}


def report_to(wandb: dict[str, Any], group: str, name: str) -> list[str]:
    """TRL ``report_to`` list: W&B (offline by default, grouped) when enabled, else nothing."""
    if not wandb.get("enabled", False):
        return []
    os.environ.setdefault("WANDB_MODE", wandb.get("mode", "offline"))
    os.environ.setdefault("WANDB_PROJECT", wandb.get("project", "misalign-fv"))
    os.environ["WANDB_RUN_GROUP"] = group
    os.environ["WANDB_NAME"] = name
    return ["wandb"]


def run_id(model_dir: Path) -> str:
    """The training-run id recorded in a model directory by the stage that wrote it."""
    return str(read_json(Path(model_dir) / "misalign_fv_model.json")["run_id"])


def checkpoint_dir(root: str | Path, key: dict[str, Any], data_file: Path, model_dir: Path) -> tuple[Path, str]:
    """Resumable-checkpoint directory for one training run, and the run's id.

    The id hashes everything the run depends on (parameters, the input model's run id, the
    training data's bytes), so a changed run never resumes from a stale checkpoint.
    """
    rid = hash_obj({**key, "input_model": run_id(model_dir), "data_sha256": sha256_file(data_file)})
    return Path(root) / rid, rid
