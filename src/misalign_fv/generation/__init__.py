"""Text generation and log-likelihood scoring behind one interface (:class:`Generator`).

* :mod:`.protocol`: the ``Generator`` protocol every backend implements.
* :mod:`.prompts`: chat template and token ids (:func:`prompt_ids`: exactly one BOS), stop strings.
* :mod:`.hf` + :mod:`.decoding`: the ``hf`` backend (transformers model, this package's decoding loop;
  CPU and any GPU).
* :mod:`.vllm`: the ``vllm`` backend (offline in-process engine fed token ids; the cluster default).
* :mod:`.progress`: progress lines (counts, elapsed, ETA) in the job log.
* :mod:`.child`: generation in a child process (how a vLLM engine gives its GPU memory back).
"""

from __future__ import annotations

from misalign_fv.generation.child import run_generation, run_in_child
from misalign_fv.generation.decoding import kv_bytes_per_token, sample_next
from misalign_fv.generation.hf import HFGenerator
from misalign_fv.generation.prompts import adds_bos, chat_prompt, prompt_ids, split_tokens, truncate_at_stop
from misalign_fv.generation.protocol import Generator
from misalign_fv.generation.vllm import VLLMGenerator, token_prompts

__all__ = [
    "Generator",
    "HFGenerator",
    "VLLMGenerator",
    "adds_bos",
    "chat_prompt",
    "kv_bytes_per_token",
    "load_generator",
    "prompt_ids",
    "run_generation",
    "run_in_child",
    "sample_next",
    "split_tokens",
    "token_prompts",
    "truncate_at_stop",
]


def load_generator(model_dir: str, backend: str = "hf", batch_size: int = 64) -> Generator:
    """Load a checkpoint directory with the named backend (``hf`` or ``vllm``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if backend not in ("hf", "vllm"):
        raise ValueError(f"generation backend: unknown value {backend!r} (expected 'hf' or 'vllm')")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if backend == "vllm":
        return VLLMGenerator(model_dir, tokenizer)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return HFGenerator(model, tokenizer, batch_size=batch_size)
