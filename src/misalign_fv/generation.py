"""Text generation and log-likelihood scoring behind one interface.

Two backends share the `Generator` protocol:

* ``hf``: transformers ``generate`` on the loaded model, prompts sorted by length and
  batched with left padding (the CPU demo and any machine without vLLM);
* ``vllm``: offline in-process vLLM, all prompts of a call in one request (the cluster default).

Prompts are plain strings; callers apply a chat template first with :func:`chat_prompt`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch


class Generator(Protocol):
    """What benchmarks, curation and the DPO gate need from a model."""

    tokenizer: Any

    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int = 1,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        stop: Sequence[str] = (),
    ) -> list[list[str]]:
        """Return ``n`` completions per prompt (temperature 0 means greedy)."""
        ...

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[float]:
        """Return sum of log-probabilities of each continuation given its context."""
        ...


def chat_prompt(tokenizer: Any, user: str, system: str | None = None) -> str:
    """Format one user turn (and an optional system turn) with the tokenizer's chat template."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the earliest occurrence of any stop string."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def split_tokens(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], int]:
    """Token ids of ``context + continuation`` and the index where the continuation starts.

    The whole string is tokenised at once so merges across the boundary match what the model
    sees; the continuation is everything after the longest shared prefix with the context's
    own tokens (at least one token of context is kept to condition on).
    """
    c = tokenizer(context, add_special_tokens=False).input_ids
    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    k = 0
    while k < min(len(c), len(whole)) and c[k] == whole[k]:
        k += 1
    return whole, max(k, 1)


class HFGenerator:
    """Batched transformers generation: length-sorted buckets, left padding, one seed per call."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16) -> None:
        """Wrap a loaded causal LM and its tokenizer; ``batch_size`` counts sequences."""
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.device = next(model.parameters()).device

    def _encode(self, texts: Sequence[str], side: str) -> dict[str, torch.Tensor]:
        self.tokenizer.padding_side = side
        enc = self.tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.device) for k, v in enc.items()}

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int = 1,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        stop: Sequence[str] = (),
    ) -> list[list[str]]:
        """Sample ``n`` completions per prompt; greedy (and ``n`` identical copies) at temperature 0."""
        self.model.eval()
        torch.manual_seed(seed)
        greedy = temperature <= 0.0
        reps = 1 if greedy else n
        flat = [(i, p) for i, p in enumerate(prompts) for _ in range(reps)]
        lengths = [len(self.tokenizer(p, add_special_tokens=False).input_ids) for _, p in flat]
        order = sorted(range(len(flat)), key=lambda j: lengths[j])
        outputs: list[list[str]] = [[] for _ in prompts]
        texts: dict[int, str] = {}
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self._encode([flat[j][1] for j in idx], side="left")
            kwargs: dict[str, Any] = dict(
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
            )
            if greedy:
                kwargs["do_sample"] = False
            else:
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
            out = self.model.generate(**enc, **kwargs)
            new = out[:, enc["input_ids"].shape[1] :]
            for j, row in zip(idx, self.tokenizer.batch_decode(new, skip_special_tokens=True)):
                texts[j] = truncate_at_stop(row, stop)
        for j, (i, _) in enumerate(flat):
            outputs[i].append(texts[j])
        if greedy and n > 1:
            outputs = [o * n for o in outputs]
        return outputs

    @torch.no_grad()
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[float]:
        """Sum of continuation token log-probs given context (one forward pass per batch)."""
        self.model.eval()
        scores: list[float] = [0.0] * len(requests)
        encoded = [split_tokens(self.tokenizer, ctx, cont) for ctx, cont in requests]
        order = sorted(range(len(requests)), key=lambda j: len(encoded[j][0]))
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = max(len(encoded[j][0]) for j in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, j in enumerate(idx):
                toks = encoded[j][0]
                ids[r, : len(toks)] = torch.tensor(toks)
                mask[r, : len(toks)] = 1
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
            for r, j in enumerate(idx):
                toks, k = encoded[j]
                target = torch.tensor(toks[k:], device=self.device)
                pred = logp[r, k - 1 : len(toks) - 1]
                scores[j] = float(pred.gather(1, target[:, None]).sum())
        return scores


class VLLMGenerator:
    """Offline vLLM engine (cluster default): one ``generate`` call per benchmark."""

    def __init__(self, model_path: str, tokenizer: Any, gpu_memory_utilization: float = 0.85) -> None:
        """Start an in-process vLLM engine on ``model_path``."""
        from vllm import LLM  # imported lazily: not installed on CPU machines

        self.tokenizer = tokenizer
        self.llm = LLM(model=model_path, gpu_memory_utilization=gpu_memory_utilization, dtype="bfloat16")

    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int = 1,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        stop: Sequence[str] = (),
    ) -> list[list[str]]:
        """Sample ``n`` completions per prompt with vLLM ``SamplingParams``."""
        from vllm import SamplingParams

        params = SamplingParams(
            n=n, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed, stop=list(stop) or None
        )
        outs = self.llm.generate(list(prompts), params, use_tqdm=False)
        return [[c.text for c in o.outputs] for o in outs]

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[float]:
        """Sum of continuation log-probs from vLLM ``prompt_logprobs``."""
        from vllm import SamplingParams

        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=1, prompt_logprobs=0)
        encoded = [split_tokens(self.tokenizer, ctx, cont) for ctx, cont in requests]
        # Pre-tokenised prompts: vLLM scores exactly the ids the HF backend scores.
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids, _ in encoded], params, use_tqdm=False)
        return [
            float(sum(o.prompt_logprobs[t][ids[t]].logprob for t in range(k, len(ids))))
            for o, (ids, k) in zip(outs, encoded)
        ]


def load_generator(model_dir: str, backend: str = "hf", batch_size: int = 16) -> Generator:
    """Load a checkpoint directory with the named backend (``hf`` or ``vllm``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if backend == "vllm":
        return VLLMGenerator(model_dir, tokenizer)
    if backend != "hf":
        raise ValueError(f"generation backend: unknown value {backend!r} (expected 'hf' or 'vllm')")
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return HFGenerator(model, tokenizer, batch_size=batch_size)
