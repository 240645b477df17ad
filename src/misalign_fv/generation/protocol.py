"""What benchmarks, curation, the DPO gate and the judges need from a model: the `Generator` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Generator(Protocol):
    """A loaded model behind one interface (``hf``: :class:`~misalign_fv.generation.hf.HFGenerator`,
    ``vllm``: :class:`~misalign_fv.generation.vllm.VLLMGenerator`).

    Prompts are chat-templated strings (see :func:`~misalign_fv.generation.prompts.chat_prompt`);
    every backend turns them into token ids with
    :func:`~misalign_fv.generation.prompts.prompt_ids` (exactly one BOS).
    """

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

    def next_token_logprobs(self, prompts: Sequence[str], k: int) -> list[dict[int, float]]:
        """The ``k`` most probable next tokens after each prompt, ``{token id: log-prob}``."""
        ...
