"""The ``vllm`` backend: an offline in-process vLLM engine (the cluster default), fed token ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from misalign_fv.generation.progress import LogProgress
from misalign_fv.generation.prompts import prompt_ids, split_tokens

PROGRESS_EVERY_S = 30.0  # at most one progress line this often (vLLM updates its bar per finished request)


def token_prompts(tokenizer: Any, prompts: Sequence[str]) -> list[dict[str, list[int]]]:
    """vLLM prompts (``TokensPrompt`` dicts) of chat-templated texts, tokenised by :func:`prompt_ids`.

    Token ids, not text: vLLM would tokenise a text prompt with special tokens and prepend a
    second BOS to a template that already wrote one.
    """
    return [{"prompt_token_ids": prompt_ids(tokenizer, p)} for p in prompts]


def _progress(label: str) -> Any:
    """A bar factory for vLLM's ``use_tqdm``: its bars ("Processed prompts", ...) as progress lines in the log."""

    def bar(*args: Any, **kwargs: Any) -> LogProgress:
        desc = f"{label}, {kwargs.get('desc', 'vLLM').lower()}"
        return LogProgress(*args, **{**kwargs, "desc": desc, "unit": "requests", "mininterval": PROGRESS_EVERY_S})

    return bar


class VLLMGenerator:
    """Offline vLLM engine: all prompts of a call in one ``generate`` request."""

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
        """Sample ``n`` completions per prompt with vLLM ``SamplingParams`` (progress in the log)."""
        from vllm import SamplingParams

        params = SamplingParams(
            n=n, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed, stop=list(stop) or None
        )
        outs = self.llm.generate(token_prompts(self.tokenizer, prompts), params, use_tqdm=_progress("generation"))
        return [[c.text for c in o.outputs] for o in outs]

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[float]:
        """Sum of continuation log-probs from vLLM ``prompt_logprobs`` (the ids the ``hf`` backend scores)."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, prompt_logprobs=0)
        encoded = [split_tokens(self.tokenizer, ctx, cont) for ctx, cont in requests]
        prompts = [{"prompt_token_ids": ids} for ids, _ in encoded]
        outs = self.llm.generate(prompts, params, use_tqdm=_progress("log-likelihood"))
        return [
            float(sum(o.prompt_logprobs[t][ids[t]].logprob for t in range(k, len(ids))))
            for o, (ids, k) in zip(outs, encoded)
        ]

    def next_token_logprobs(self, prompts: Sequence[str], k: int) -> list[dict[int, float]]:
        """Top-``k`` log-probs of the first generated token (greedy, seed 0)."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=k, seed=0)
        prompt_list = token_prompts(self.tokenizer, prompts)
        outs = self.llm.generate(prompt_list, params, use_tqdm=_progress("next-token log-probs"))
        result = []
        for o in outs:
            ranked = sorted(o.outputs[0].logprobs[0].items(), key=lambda item: -item[1].logprob)[:k]
            result.append({int(tid): float(entry.logprob) for tid, entry in ranked})
        return result
