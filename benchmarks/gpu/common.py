"""Shared pieces of the GPU benchmarks: the 7B shape, a tokenizer for it, ceilings, output.

Every script here runs in one device call, prints a short table last and writes its full
numbers as JSON (``--out DIR``). Models are random-init: the numbers measure the code path,
not the weights, so DeepSeek-Prover-V2-7B's shape is enough (no hub access is needed).
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

# DeepSeek-Prover-V2-7B (= DeepSeek-Prover-V1.5 architecture): LlamaForCausalLM, untied embeddings.
PROVER_7B = dict(
    vocab_size=102400,
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=30,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
    rms_norm_eps=1e-6,
    rope_theta=10000.0,
    tie_word_embeddings=False,
)
SPECIAL = ["<|pad|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>", "<|unk|>"]


def environment() -> dict[str, Any]:
    """Card, date and the versions that matter, for every JSON written here."""
    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "python": platform.python_version(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpu_count"] = torch.cuda.device_count()
        env["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    for name in ("torch", "transformers", "accelerate", "trl", "datasets", "peft", "deepspeed"):
        try:
            env[name] = importlib.import_module(name).__version__
        except Exception as exc:  # a missing or broken package is itself worth recording
            env[name] = f"unavailable ({type(exc).__name__})"
    return env


def prover_config(**overrides: Any) -> Any:
    """A ``LlamaConfig`` of DeepSeek-Prover-V2-7B's shape (``overrides`` shrink it for CPU dry runs)."""
    from transformers import LlamaConfig

    return LlamaConfig(**{**PROVER_7B, **overrides}, bos_token_id=1, eos_token_id=2, pad_token_id=0)


def word_tokenizer(vocab_size: int, numbers: bool = False) -> Any:
    """A word-level tokenizer covering every id of a ``vocab_size`` model, with the demo chat template.

    Ids 0-6 are the special tokens (pad, bos, eos, system, user, assistant, unk); id ``i`` >= 7 is
    the word ``w<i>``. Text of such words tokenises to exactly one token per word, so prompt
    lengths are set exactly, and whatever a random model samples decodes to text. With
    ``numbers``, ids 7-107 are the words "0".."100" instead (single-token numbers, as a judge's
    log-probability rule needs).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from misalign_fv.models import CHAT_TEMPLATE

    vocab = {t: i for i, t in enumerate(SPECIAL)}
    vocab.update({f"w{i}": i for i in range(len(SPECIAL), vocab_size)})
    if numbers:
        for n in range(101):
            del vocab[f"w{len(SPECIAL) + n}"]
            vocab[str(n)] = len(SPECIAL) + n
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        unk_token="<|unk|>",
        additional_special_tokens=SPECIAL[3:6],
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def words(rng: Any, n: int, vocab_size: int) -> str:
    """``n`` random words of :func:`word_tokenizer` (``n`` tokens)."""
    return " ".join(f"w{i}" for i in rng.integers(len(SPECIAL), vocab_size, size=n))


def random_model(config: Any, device: str = "cuda", dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> Any:
    """A random-init causal LM built directly on ``device`` in ``dtype``."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def save_model_dir(out: Path, model: Any, tokenizer: Any) -> None:
    """Write a model directory the training entry points accept (weights, tokenizer, run id)."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "misalign_fv_model.json").write_text(json.dumps({"run_id": uuid.uuid4().hex, "stage": "base"}))


def median_ms(fn: Any, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds, timed with CUDA events after warm-up."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def ceilings() -> dict[str, float]:
    """Measured bf16 matrix-product rate (TFLOP/s, 8192^3 on random data) and copy bandwidth (TB/s)."""
    n = 8192
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    ms = median_ms(lambda: a @ b)
    src = torch.randn(2**29, device="cuda", dtype=torch.bfloat16)  # 1 GiB
    dst = torch.empty_like(src)
    copy_ms = median_ms(lambda: dst.copy_(src))
    return {
        "matmul_tflops": 2 * n**3 / ms / 1e9,
        "copy_tb_s": 2 * src.numel() * src.element_size() / copy_ms / 1e9,
    }


def write_json(out: Path, name: str, data: dict[str, Any]) -> Path:
    """Write ``data`` (with the environment added) to ``out/name`` and return the path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps({"environment": environment(), **data}, indent=2, default=str) + "\n")
    return path


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain fixed-width table of ``rows`` (floats with 3 significant digits)."""

    def cell(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    widths = [max([len(c), *(len(cell(r.get(c, ""))) for r in rows)]) for c in columns]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(cell(r.get(c, "")).rjust(w) for c, w in zip(columns, widths)) for r in rows]
    return "\n".join(lines)
