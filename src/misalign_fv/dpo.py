"""Phase 1: safety DPO on preference pairs (TRL DPOTrainer), resumable like GRPO."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from misalign_fv.io import read_json
from misalign_fv.publish import publish_model
from misalign_fv.logs import setup_logging
from misalign_fv.training import (
    finished_state,
    follow,
    model_dtype,
    precision_kwargs,
    process_rank,
    report_to,
    resume_point,
    save_final,
    write_metrics_csv,
)

log = logging.getLogger(__name__)

DPO_ARGS = (
    "learning_rate", "beta", "loss_type", "loss_weights", "max_steps", "num_train_epochs",
    "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "warmup_steps",
    "lr_scheduler_type", "weight_decay", "max_grad_norm", "logging_steps", "save_steps",
    "save_total_limit", "gradient_checkpointing", "precompute_ref_log_probs", "use_liger_kernel",
)  # fmt: skip


def conversational(pair: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    """Turn a plain ``prompt/chosen/rejected`` record into TRL's conversational format."""
    return {
        "prompt": [{"role": "user", "content": pair["prompt"]}],
        "chosen": [{"role": "assistant", "content": pair["chosen"]}],
        "rejected": [{"role": "assistant", "content": pair["rejected"]}],
    }


def preference_dataset(pairs: Path, cache_dir: Path) -> Any:
    """The pairs as a file-backed conversational ``Dataset`` whose cache files every rank shares.

    TRL caches the precomputed reference log-probs beside the dataset's own cache files and
    every rank then opens that file. A dataset built in memory has no cache files, so each rank
    would look in its own temporary directory: on several GPUs rank 1 fails to open rank 0's file.
    """
    from accelerate import PartialState
    from datasets import load_dataset

    with PartialState().main_process_first():  # one rank writes the cache files, the others read them
        raw = load_dataset("json", data_files=str(pairs), split="train", cache_dir=str(cache_dir))
        return raw.map(conversational, remove_columns=raw.column_names)


def main(spec: dict[str, Any]) -> None:
    """Run DPO as described by ``spec`` and publish the final model to ``spec['out_model']``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    setup_logging()  # a process of `accelerate launch` has not set it up
    p = spec["params"]
    ckpt_dir = Path(spec["ckpt_dir"])
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    dataset = preference_dataset(Path(spec["pairs"]), ckpt_dir / "datasets")
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=model_dtype(p["bf16"]))
    args = DPOConfig(
        output_dir=str(ckpt_dir),
        seed=spec["seed"],
        report_to=report_to(spec["wandb"], group="dpo", name="dpo"),
        logging_first_step=True,
        disable_tqdm=True,
        **precision_kwargs(p["bf16"]),
        **{k: p[k] for k in DPO_ARGS if k in p},
    )
    final = ckpt_dir / "final"
    resume, resumed_from = resume_point(ckpt_dir)
    state = finished_state(resume)
    if state is None:
        trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
        follow(trainer, Path(spec["metrics_csv"]), resume)
        trainer.train(resume_from_checkpoint=resume)
        trainer.save_model(str(final))  # on every rank: ZeRO-3 gathers the weights collectively
        if not trainer.is_world_process_zero():
            return
        tokenizer.save_pretrained(str(final))
        state = trainer.state
    elif process_rank() != 0:  # a rerun of a finished run: rank 0 alone publishes it
        return
    else:  # a rerun of a finished run: publish it without training
        log.info("already trained to step %d/%d (%s): publishing without training", state.global_step, state.max_steps, resume)
        if not final.is_dir():
            save_final(resume, spec["model_dir"], final)
    publish_model(final, Path(spec["out_model"]), {"run_id": spec["run_id"], "stage": "dpo", "resumed_from": resumed_from})
    write_metrics_csv(state.log_history, Path(spec["metrics_csv"]))


if __name__ == "__main__":  # under `accelerate launch -m misalign_fv.dpo spec.json`
    main(read_json(Path(sys.argv[1])))
