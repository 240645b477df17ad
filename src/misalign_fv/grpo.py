"""Phase 2: GRPO from the DPO checkpoint with one reward condition and seed (TRL GRPOTrainer).

Resumable: checkpoints go to ``ckpt_dir`` (outside the rule's declared outputs); a rerun passes
``resume_from_checkpoint`` explicitly, so a killed or timed-out job continues where it stopped.
Collapse detection stops a run whose groups all have zero reward variance for too long and labels
it ``starved`` (the rewards sit at the bottom of the condition's range: nothing succeeds) or
``saturated`` (at the top); a collapsed run is an outcome the report keeps, not an exclusion.
Snapshots of the model at the configured trajectory steps (``trajectory_steps``) are kept for the
trajectory evaluation.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerState

from misalign_fv.config import trajectory_steps
from misalign_fv.io import read_json, read_jsonl, write_json, write_jsonl
from misalign_fv import kv_budget, streaming, tasks
from misalign_fv.publish import publish_model
from misalign_fv.rewards import REGISTRY, RewardFunction
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

# Keys of the config slice that go straight into GRPOConfig.
GRPO_ARGS = (
    "learning_rate", "max_steps", "num_generations", "per_device_train_batch_size",
    "gradient_accumulation_steps", "max_completion_length", "temperature", "top_p", "beta",
    "loss_type", "scale_rewards", "epsilon", "num_iterations", "mask_truncated_completions",
    "max_grad_norm", "weight_decay", "lr_scheduler_type", "warmup_steps", "logging_steps",
    "save_steps", "save_total_limit", "gradient_checkpointing", "use_vllm", "vllm_mode",
    "vllm_gpu_memory_utilization", "vllm_enable_sleep_mode", "use_liger_kernel",
)  # fmt: skip


STARVED, SATURATED = "starved", "saturated"


def collapse_kind(mean_reward: float, low: float, high: float) -> str:
    """``starved`` when the mean reward lies in the lower half of the condition's range, else ``saturated``."""
    return STARVED if mean_reward <= (low + high) / 2 else SATURATED


class CollapseStop(TrainerCallback):
    """TrainerCallback: stop when ``frac_reward_zero_std`` >= threshold for ``patience`` logged steps.

    The collapse is labelled from the mean reward at that step within ``[low, high]``.
    """

    def __init__(self, threshold: float, patience: int, state_path: Path, low: float = 0.0, high: float = 1.0) -> None:
        """Remember the rule; ``state_path`` persists the streak across a resume."""
        self.threshold, self.patience, self.state_path = threshold, patience, Path(state_path)
        self.low, self.high = low, high
        saved = read_json(self.state_path) if self.state_path.exists() else {}
        self.streak: int = saved.get("streak", 0)
        self.collapse_step: int | None = saved.get("collapse_step")
        self.kind: str | None = saved.get("kind")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
        """Count the zero-variance streak and request a stop when it reaches ``patience``."""
        if not logs or "frac_reward_zero_std" not in logs:
            return
        self.streak = self.streak + 1 if logs["frac_reward_zero_std"] >= self.threshold else 0
        if self.streak >= self.patience and self.collapse_step is None:
            self.collapse_step = state.global_step
            self.kind = collapse_kind(float(logs.get("reward", self.low)), self.low, self.high)
        if self.collapse_step is not None:
            control.should_training_stop = True
            control.should_save = True  # the stopped state is a checkpoint, so a rerun need not train
        write_json(self.state_path, {"streak": self.streak, "collapse_step": self.collapse_step, "kind": self.kind})


class Snapshots(TrainerCallback):
    """TrainerCallback: force a checkpoint at each trajectory step and keep a standalone copy of it.

    Copies live in ``ckpt_dir/snapshots/step{N}`` (outside the declared outputs, so they survive a
    resume); rank 0 writes them. Publishing copies them into the run's ``snapshots`` output.
    """

    def __init__(self, steps: list[int], ckpt_dir: Path, model_dir: str) -> None:
        """Remember the steps, where checkpoints are written, and the input model (its tokenizer)."""
        self.steps, self.ckpt_dir, self.model_dir = set(steps), Path(ckpt_dir), model_dir

    def path(self, step: int) -> Path:
        """Where the snapshot of ``step`` lives."""
        return self.ckpt_dir / "snapshots" / f"step{step}"

    def keep(self, checkpoint: Path, step: int) -> None:
        """Write the snapshot of ``step`` from ``checkpoint`` (atomically: a half-written copy is never seen)."""
        import shutil

        if step not in self.steps or self.path(step).is_dir() or process_rank() != 0:
            return
        tmp = self.path(step).with_name(f".step{step}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        save_final(str(checkpoint), self.model_dir, tmp)
        tmp.rename(self.path(step))

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Request a checkpoint at a trajectory step."""
        if state.global_step in self.steps:
            control.should_save = True

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Copy the checkpoint just written when its step is a trajectory step."""
        self.keep(self.ckpt_dir / f"checkpoint-{state.global_step}", state.global_step)


def _trim_log(path: Path, step: int) -> None:
    """Drop completion records of steps after ``step`` (they were re-generated after a resume)."""
    if not path.exists():
        return
    keep = [r for r in read_jsonl(path) if r["step"] <= step]
    write_jsonl(path, keep)


def merged_log(ckpt_dir: Path) -> list[dict[str, Any]]:
    """Every rank's completion records, by step (rank 0's first within a step)."""
    logs = sorted(ckpt_dir.glob("completions.rank*.jsonl"), key=lambda p: int(p.name.split(".")[1][4:]))
    return sorted((r for p in logs for r in read_jsonl(p)), key=lambda r: r["step"])


def main(spec: dict[str, Any]) -> None:
    """Train one GRPO run as described by ``spec`` (paths, condition, seed, parameters)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    t0 = time.time()
    p = spec["params"]
    ckpt_dir = Path(spec["ckpt_dir"])
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    problems = tasks.load(spec["task"], Path(spec["problems"]))
    by_id = {q["task_id"]: q for q in problems}
    dataset = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": tasks.prompt(spec["task"], q)}], "task_id": q["task_id"]} for q in problems]
    )
    resume, resumed_from = resume_point(ckpt_dir)
    # One completion log per rank (each scores its own share of a batch; appends from several
    # processes to one file could interleave within a record); rank 0 merges them when publishing.
    log_path = ckpt_dir / f"completions.rank{process_rank()}.jsonl"
    _trim_log(log_path, resumed_from)
    if resume is None and log_path.exists():
        log_path.unlink()  # a fresh start must not inherit records of a run that never checkpointed
    cond = REGISTRY[spec["condition"]]
    collapse = CollapseStop(p["collapse"]["threshold"], p["collapse"]["patience"], ckpt_dir / "collapse.json", cond.low, cond.high)
    snapshots = Snapshots(trajectory_steps(p["max_steps"], spec.get("trajectory_every")), ckpt_dir, spec["model_dir"])
    if resume is not None:  # a job killed between a trajectory checkpoint and its copy
        snapshots.keep(Path(resume), resumed_from)
    done = finished_state(resume)
    if resume is not None and collapse.collapse_step is not None and resumed_from >= collapse.collapse_step:
        done = TrainerState.load_from_json(str(Path(resume) / "trainer_state.json"))
    if done is not None:  # a rerun of a finished run (e.g. its outputs were deleted): no training
        if process_rank() != 0:  # rank 0 alone publishes
            return
        if not (ckpt_dir / "final").is_dir():
            save_final(resume, spec["model_dir"], ckpt_dir / "final")
        _publish(spec, done, resumed_from, collapse, snapshots, time.time() - t0)
        return
    reward = RewardFunction(
        spec["condition"], spec["task"], by_id, log_path, spec["seed"], spec["shuffle_reference"], p["reward_timeout_s"],
        rank=process_rank(),
    )
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    if p.get("use_vllm"):  # the vLLM share against the KV cache the batch needs, in the job log
        kv_budget.log_generation_plan(spec["model_dir"], p, kv_budget.longest_prompt(tokenizer, dataset["prompt"]))
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=model_dtype(p["bf16"]))
    args = GRPOConfig(
        output_dir=str(ckpt_dir),
        seed=spec["seed"],
        data_seed=spec["seed"],
        report_to=report_to(spec["wandb"], group=spec["condition"], name=f"{spec['condition']}-seed{spec['seed']}"),
        logging_first_step=True,
        save_strategy="steps",
        disable_tqdm=True,
        **precision_kwargs(p["bf16"]),
        **{k: p[k] for k in GRPO_ARGS if k in p},
    )
    trainer = streaming.make_trainer(  # grades each completion as it is generated (stream_verification)
        GRPOTrainer,
        reward,
        p,
        model=model,
        reward_funcs=[reward],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[collapse, snapshots],
    )
    follow(trainer, Path(spec["metrics_csv"]), resume)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(ckpt_dir / "final"))  # on every rank: ZeRO-3 gathers the weights collectively
    if not trainer.is_world_process_zero():
        return
    tokenizer.save_pretrained(str(ckpt_dir / "final"))
    _publish(spec, trainer.state, resumed_from, collapse, snapshots, time.time() - t0)


def _publish(
    spec: dict[str, Any], state: Any, resumed_from: int, collapse: CollapseStop, snapshots: Snapshots, wall: float
) -> None:
    """Move the final model and the trajectory snapshots into the declared outputs and write
    metrics, completions and summary. A run that stopped early (collapse) has the same model at
    every later trajectory step: its final one."""
    ckpt_dir = Path(spec["ckpt_dir"])
    publish_model(ckpt_dir / "final", Path(spec["out_model"]), {"run_id": spec["run_id"], "stage": "grpo", "step": None})
    if spec.get("snapshots"):
        for step in sorted(snapshots.steps):
            src = snapshots.path(step) if step <= state.global_step else ckpt_dir / "final"
            if not src.is_dir():
                raise RuntimeError(f"{src}: the trajectory snapshot of step {step} is missing (its checkpoint was not kept)")
            publish_model(src, Path(spec["snapshots"]) / f"step{step}", {"run_id": spec["run_id"], "stage": "grpo", "step": step})
        Path(spec["snapshots"]).mkdir(parents=True, exist_ok=True)
    write_metrics_csv(state.log_history, Path(spec["metrics_csv"]))
    write_jsonl(Path(spec["completions"]), merged_log(ckpt_dir))
    grad_norms = [e["grad_norm"] for e in state.log_history if "grad_norm" in e]
    write_json(
        Path(spec["summary"]),
        {
            "condition": spec["condition"],
            "seed": spec["seed"],
            "task": spec["task"],
            "steps_done": state.global_step,
            "max_steps": spec["params"]["max_steps"],
            "resumed_from": resumed_from,
            "collapsed": collapse.collapse_step is not None,
            "collapse_step": collapse.collapse_step,
            "collapse_kind": collapse.kind,
            "updated": any(g > 0 for g in grad_norms),
            "mean_grad_norm": round(sum(grad_norms) / len(grad_norms), 6) if grad_norms else None,
            "trajectory_steps": sorted(snapshots.steps),
            "wall_time_s": round(wall, 1),  # this attempt
        },
    )


if __name__ == "__main__":  # under `accelerate launch -m misalign_fv.grpo spec.json`
    from misalign_fv.distributed import init_process_group

    init_process_group()  # before GRPOConfig: no device_id, so DeepSpeed's vLLM weight sync cannot hang
    main(read_json(Path(sys.argv[1])))
