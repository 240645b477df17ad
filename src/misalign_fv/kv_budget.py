"""Generation sized from the KV cache: the memory split of a GRPO job with colocated vLLM.

Pure arithmetic from a Hugging Face ``config.json`` and the GRPO parameters; nothing here touches
a GPU. In TRL 1.16's colocate mode every rank runs its own vLLM engine (tensor parallel 1) on its
own GPU, beside that rank's share of the training states:

* **vLLM's budget** is ``vllm_gpu_memory_utilization`` x the card (a per-instance limit): the full
  bf16 weights, :data:`VLLM_OVERHEAD_BYTES` (activations of TRL's ``max_num_batched_tokens=4096``
  profile run, CUDA graphs, sampler) and the KV cache, which takes the rest. TRL asks for
  ``max_num_seqs = per_device_train_batch_size x steps_per_generation`` (= ``gradient_accumulation_steps``)
  sequences at once, each up to prompt + ``max_completion_length`` tokens; vLLM also refuses to
  start unless one ``max_model_len`` sequence fits (TRL passes the model's ``max_position_embeddings``
  when ``vllm_max_model_length`` is unset).
* **During generation** the trainer keeps its states (ZeRO-3: 16 bytes a parameter / GPUs) and its
  CUDA context; TRL empties PyTorch's cache before it wakes vLLM.
* **During the update**, with ``vllm_enable_sleep_mode`` TRL puts vLLM to sleep at level 2 (weights
  and KV cache released, :data:`VLLM_ASLEEP_BYTES` left); without it vLLM keeps its whole budget.
  The update's peak is the states plus activations, calibrated on the reserved peaks measured for
  the 7B on 4 H100s under ZeRO-3 (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 2**30
MIB = 2**20
# An 80 GB card as torch and vLLM see it (the H100 80GB measured 79.2 GiB; the A100-80GB reports the same).
GPU_80GB_BYTES = int(79.2 * GIB)
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# Full fine-tuning with AdamW in bf16 mixed precision (= training.STATE_BYTES_PER_PARAM): bf16
# weights and gradients, fp32 master weights, two fp32 moments. ZeRO-3 with the optimizer in CPU
# memory keeps only the bf16 weights and gradients on the GPUs.
STATE_BYTES_PER_PARAM = 16
OFFLOAD_STATE_BYTES_PER_PARAM = 4
# Assumptions (not measured: vLLM could not be carried to the device machine).
VLLM_OVERHEAD_BYTES = 2 * GIB  # vLLM's non-KV use beside the weights (profile-run activations, CUDA graphs)
VLLM_ASLEEP_BYTES = 1 * GIB  # what a level-2-asleep engine keeps (context, graph pools)
TRAINER_CONTEXT_BYTES = int(1.5 * GIB)  # the trainer's CUDA context, NCCL and cuBLAS buffers
HEADROOM_BYTES = 2 * GIB  # slack kept free between two allocators sharing one card
# Activation bytes a token a (layer x hidden) in the update, calibrated on reserved peaks (GiB)
# measured on 4 H100s under ZeRO-3 (benchmarks/RESULTS.md): no checkpointing + Liger, GRPO
# 8 x 1,311 tokens a micro-step: 62.7 reserved; with checkpointing, DPO 8,192 tokens: 44.5 reserved
# (the GRPO step with checkpointing has no clean peak: generation shared its trace). Each minus
# the 25.74 GiB of ZeRO-3 states, over the tokens and 30 x 4096.
ACTIVATION_BYTES = {False: (62.7 - 25.74) * GIB / (10_488 * 30 * 4096), True: (44.5 - 25.74) * GIB / (8_192 * 30 * 4096)}
SHARE_STEP = 0.05  # shares are proposed on this grid, rounded down


@dataclass(frozen=True)
class ModelShape:
    """The parts of a decoder-only (Llama-family) ``config.json`` that size memory."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool
    dtype_bytes: int
    max_positions: int

    @classmethod
    def from_hf_config(cls, cfg: Mapping[str, Any]) -> ModelShape:
        """Read a Hugging Face config dict (``num_key_value_heads`` and ``head_dim`` default as in transformers)."""
        heads = int(cfg["num_attention_heads"])
        return cls(
            layers=int(cfg["num_hidden_layers"]),
            hidden=int(cfg["hidden_size"]),
            intermediate=int(cfg["intermediate_size"]),
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or cfg["hidden_size"] // heads),
            vocab=int(cfg["vocab_size"]),
            tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            dtype_bytes=DTYPE_BYTES[str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16")],
            max_positions=int(cfg["max_position_embeddings"]),
        )

    @property
    def kv_bytes_per_token(self) -> int:
        """Keys and values of one token over all layers: 2 x layers x kv_heads x head_dim x dtype bytes."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes

    @property
    def params(self) -> int:
        """Parameters: embeddings (twice when untied) + per layer attention, SwiGLU MLP and two norms + final norm."""
        attention = self.hidden * self.heads * self.head_dim * 2 + self.hidden * self.kv_heads * self.head_dim * 2
        layer = attention + 3 * self.hidden * self.intermediate + 2 * self.hidden
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return embeddings + self.layers * layer + self.hidden

    @property
    def weight_bytes(self) -> int:
        """The weights in the checkpoint's dtype (what vLLM loads on every GPU at tensor parallel 1)."""
        return self.params * self.dtype_bytes


def read_shape(model_dir: str | Path) -> ModelShape:
    """The shape of the checkpoint in ``model_dir`` (its ``config.json``)."""
    return ModelShape.from_hf_config(json.loads((Path(model_dir) / "config.json").read_text()))


def kv_cache_tokens(shape: ModelShape, share: float, gpu_bytes: int) -> int:
    """Tokens the KV cache holds when vLLM may use ``share`` of a ``gpu_bytes`` card (0 when the weights do not fit)."""
    free = share * gpu_bytes - shape.weight_bytes - VLLM_OVERHEAD_BYTES
    return max(0, int(free // shape.kv_bytes_per_token))


def concurrency(shape: ModelShape, share: float, seq_len: int, gpu_bytes: int) -> int:
    """Sequences of ``seq_len`` tokens that run at once, none ever preempted, at vLLM share ``share``."""
    return kv_cache_tokens(shape, share, gpu_bytes) // seq_len


def share_needed(shape: ModelShape, seqs: int, seq_len: int, gpu_bytes: int) -> float:
    """The ``vllm_gpu_memory_utilization`` that holds ``seqs`` sequences of ``seq_len`` tokens at once."""
    return (shape.weight_bytes + VLLM_OVERHEAD_BYTES + seqs * seq_len * shape.kv_bytes_per_token) / gpu_bytes


def trainer_state_bytes(shape: ModelShape, n_gpus: int, gpu_bytes: int) -> int:
    """Training states a GPU keeps through generation, for the launch ``training.launch_plan`` picks."""
    full = STATE_BYTES_PER_PARAM * shape.params
    if full / max(n_gpus, 1) > 0.5 * gpu_bytes:  # training.launch_plan: zero3_offload
        return OFFLOAD_STATE_BYTES_PER_PARAM * shape.params // max(n_gpus, 1)
    return full // max(n_gpus, 1)


def update_peak_bytes(shape: ModelShape, micro_batch_tokens: int, checkpointing: bool, n_gpus: int, gpu_bytes: int) -> int:
    """Peak reserved memory of a GPU in the policy update (states + context + calibrated activations)."""
    activations = ACTIVATION_BYTES[checkpointing] * micro_batch_tokens * shape.layers * shape.hidden
    return int(trainer_state_bytes(shape, n_gpus, gpu_bytes) + TRAINER_CONTEXT_BYTES + activations)


@dataclass(frozen=True)
class GrpoMemoryPlan:
    """One GRPO memory split and what it gives: vLLM share, sleep mode, checkpointing, concurrency."""

    share: float
    sleep: bool
    checkpointing: bool
    seqs: int  # max_num_seqs: completions a GPU generates in one call
    seq_len: int  # prompt + max_completion_length
    max_model_len: int
    kv_tokens: int
    concurrency: int  # full-length sequences at once, none preempted
    share_for_all: float  # the share that holds every sequence at full length
    generation_bytes: int  # trainer states + context + vLLM while generating
    update_bytes: int  # update peak + vLLM's residue (asleep, or its whole budget)
    gpu_bytes: int

    @property
    def starts(self) -> bool:
        """vLLM starts only when one ``max_model_len`` sequence fits its KV cache."""
        return self.kv_tokens >= self.max_model_len

    @property
    def fits(self) -> bool:
        """Both phases leave :data:`HEADROOM_BYTES` free and vLLM can start."""
        limit = self.gpu_bytes - HEADROOM_BYTES
        return self.starts and self.generation_bytes <= limit and self.update_bytes <= limit

    def describe(self) -> str:
        """The plan in a few lines for the job log."""
        gib = lambda b: f"{b / GIB:.1f} GiB"  # noqa: E731
        return "\n".join([
            f"generation plan: vllm_gpu_memory_utilization {self.share:.2f} of {gib(self.gpu_bytes)}, sleep mode {'on' if self.sleep else 'off'},"
            f" gradient checkpointing {'on' if self.checkpointing else 'off'}",
            f"  KV cache {self.kv_tokens:,} tokens: {self.concurrency} of {self.seqs} sequences of {self.seq_len} tokens at once"
            f" ({'all' if self.concurrency >= self.seqs else 'the rest wait or are preempted'});"
            f" all {self.seqs} need a share of {self.share_for_all:.2f}",
            f"  max_model_len {self.max_model_len}: {'fits' if self.starts else 'does NOT fit the KV cache, vLLM will refuse to start'}",
            f"  per GPU: generation {gib(self.generation_bytes)}, update {gib(self.update_bytes)}"
            f" -> {'fits' if self.fits else 'does NOT fit'} (headroom {gib(HEADROOM_BYTES)})",
        ])


def grpo_memory_plan(
    shape: ModelShape, params: Mapping[str, Any], prompt_tokens: int, n_gpus: int, gpu_bytes: int,
    share: float | None = None, sleep: bool | None = None, checkpointing: bool | None = None,
) -> GrpoMemoryPlan:
    """The memory of a colocated GRPO job: ``params`` (the merged GRPO slice) or the given overrides."""
    share = params.get("vllm_gpu_memory_utilization", 0.3) if share is None else share
    sleep = bool(params.get("vllm_enable_sleep_mode", False)) if sleep is None else sleep
    checkpointing = bool(params.get("gradient_checkpointing", False)) if checkpointing is None else checkpointing
    seqs = int(params["per_device_train_batch_size"]) * int(params.get("gradient_accumulation_steps", 1))
    seq_len = prompt_tokens + int(params["max_completion_length"])
    vllm_bytes = share * gpu_bytes
    resident = trainer_state_bytes(shape, n_gpus, gpu_bytes) + TRAINER_CONTEXT_BYTES
    update = update_peak_bytes(shape, int(params["per_device_train_batch_size"]) * seq_len, checkpointing, n_gpus, gpu_bytes)
    return GrpoMemoryPlan(
        share=share, sleep=sleep, checkpointing=checkpointing, seqs=seqs, seq_len=seq_len,
        max_model_len=int(params.get("vllm_max_model_length") or shape.max_positions),
        kv_tokens=kv_cache_tokens(shape, share, gpu_bytes),
        concurrency=concurrency(shape, share, seq_len, gpu_bytes),
        share_for_all=share_needed(shape, seqs, seq_len, gpu_bytes),
        generation_bytes=int(resident + vllm_bytes),
        update_bytes=int(update + (VLLM_ASLEEP_BYTES if sleep else vllm_bytes)),
        gpu_bytes=gpu_bytes,
    )  # fmt: skip


def recommended_plan(shape: ModelShape, params: Mapping[str, Any], prompt_tokens: int, n_gpus: int, gpu_bytes: int) -> GrpoMemoryPlan | None:
    """The fastest split that fits: no checkpointing before checkpointing, sleep before none, then the
    smallest share holding every sequence at full length, else the largest share that fits (grid
    :data:`SHARE_STEP`). None when nothing fits."""
    for checkpointing in (False, True):
        for sleep in (True, False):
            base = grpo_memory_plan(shape, params, prompt_tokens, n_gpus, gpu_bytes, share=SHARE_STEP, sleep=sleep, checkpointing=checkpointing)
            want = math.ceil(base.share_for_all / SHARE_STEP - 1e-9) * SHARE_STEP
            shares = [want] + [k * SHARE_STEP for k in range(int(want / SHARE_STEP + 1e-9) - 1, 0, -1)]
            for share in shares:
                plan = grpo_memory_plan(shape, params, prompt_tokens, n_gpus, gpu_bytes, share=round(share, 2), sleep=sleep, checkpointing=checkpointing)
                if plan.fits:
                    return plan
    return None


def longest_prompt(tokenizer: Any, prompts: Iterable[list[dict[str, str]]]) -> int:
    """Tokens of the longest chat prompt, as the trainer renders it (generation prompt added)."""
    return max(
        len(tokenizer(tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False), add_special_tokens=False)["input_ids"])
        for p in prompts
    )


def log_generation_plan(model_dir: str | Path, params: Mapping[str, Any], prompt_tokens: int, gpu_bytes: int | None = None) -> GrpoMemoryPlan | None:
    """Print the configured split, and the recommended one when they differ, in the job log (rank 0).

    ``gpu_bytes`` defaults to the first visible GPU's memory; ranks come from ``WORLD_SIZE``.
    Returns the configured plan (None when GRPO generates without vLLM).
    """
    if os.environ.get("RANK", "0") != "0":
        return None
    if not params.get("use_vllm"):
        print("generation plan: transformers generation (use_vllm false), no vLLM share to size", flush=True)
        return None
    if gpu_bytes is None:
        import torch

        gpu_bytes = torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else GPU_80GB_BYTES
    shape = read_shape(model_dir)
    n_gpus = int(os.environ.get("WORLD_SIZE", "1"))
    plan = grpo_memory_plan(shape, params, prompt_tokens, n_gpus, gpu_bytes)
    print(f"model: {shape.params / 1e9:.2f} B parameters, KV {shape.kv_bytes_per_token / MIB:.3f} MiB a token; {n_gpus} GPU(s)", flush=True)
    print(plan.describe(), flush=True)
    best = recommended_plan(shape, params, prompt_tokens, n_gpus, gpu_bytes)
    if best is None:
        print("recommended: no split fits this card", flush=True)
    elif (best.share, best.sleep, best.checkpointing) != (plan.share, plan.sleep, plan.checkpointing):
        print("recommended " + best.describe(), flush=True)
    return plan
