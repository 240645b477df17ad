"""Where a judge's replies come from: a local model (``hf`` or ``vllm``, loaded in the eval job)
or an OpenAI-compatible endpoint (``openai``).

Every backend answers two requests for a batch of conversations (lists of chat messages):
``top_logprobs`` (the next token's ``k`` most probable tokens as ``{text: log-prob}``, as the
OpenAI API's ``top_logprobs``) and ``complete`` (``n`` sampled or greedy replies). A reply that
could not be obtained (an endpoint that keeps failing) is ``None``, never an exception, so one bad
request costs one verdict, not the job.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # torch is imported only where a model is loaded
    from misalign_fv.generation import Generator

Conversation = list[dict[str, str]]
log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class JudgeBackend(Protocol):
    """The two requests a judge makes of a model."""

    def top_logprobs(self, conversations: Sequence[Conversation], k: int) -> list[dict[str, float] | None]:
        """The next token's ``k`` most probable tokens after each conversation, ``{text: log-prob}``."""
        ...

    def complete(
        self, conversations: Sequence[Conversation], *, max_new_tokens: int, temperature: float, n: int, seed: int
    ) -> list[list[str] | None]:
        """``n`` replies to each conversation (greedy at temperature 0)."""
        ...


def _add_logprob(table: dict[str, float], text: str, logprob: float) -> None:
    """Add a token's probability under its text (two token ids that decode alike share one entry)."""
    table[text] = math.log(math.exp(table[text]) + math.exp(logprob)) if text in table else logprob


class LocalBackend:
    """A judge model loaded in this process behind the :class:`~misalign_fv.generation.Generator` interface."""

    def __init__(self, generator: Generator) -> None:
        """Wrap a loaded generator (its tokenizer's chat template formats the judge's conversations)."""
        self.generator = generator
        self.tokenizer = generator.tokenizer
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                "eval.judge: the judge model's tokenizer has no chat template; use an instruction-tuned model"
            )

    def render(self, conversation: Conversation) -> str:
        """The prompt text of one conversation, ending where the judge's reply starts."""
        return self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)

    def complete(
        self, conversations: Sequence[Conversation], *, max_new_tokens: int, temperature: float, n: int, seed: int
    ) -> list[list[str] | None]:
        """Replies through the generator (batched; all conversations in one call)."""
        prompts = [self.render(c) for c in conversations]
        return list(
            self.generator.generate(prompts, n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        )


class HFBackend(LocalBackend):
    """Judge on a transformers model: one forward pass per batch gives the next-token distribution."""

    def top_logprobs(self, conversations: Sequence[Conversation], k: int) -> list[dict[str, float] | None]:
        """Top-``k`` next-token log-probs, prompts sorted by length and left-padded (positions from the mask)."""
        import torch

        gen: Any = self.generator
        tok = self.tokenizer
        prompts = [self.render(c) for c in conversations]
        lengths = [len(tok(p, add_special_tokens=False).input_ids) for p in prompts]
        order = sorted(range(len(prompts)), key=lengths.__getitem__)
        out: list[dict[str, float] | None] = [None] * len(prompts)
        gen.model.eval()
        tok.padding_side = "left"
        with torch.no_grad():
            for start in range(0, len(order), gen.batch_size):
                idx = order[start : start + gen.batch_size]
                enc = tok([prompts[j] for j in idx], return_tensors="pt", padding=True, add_special_tokens=False)
                ids, mask = enc.input_ids.to(gen.device), enc.attention_mask.to(gen.device)
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = gen.model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits
                top = torch.log_softmax(logits[:, -1, :].float(), dim=-1).topk(k, dim=-1)
                for row, j in enumerate(idx):
                    table: dict[str, float] = {}
                    for lp, tid in zip(top.values[row].tolist(), top.indices[row].tolist(), strict=True):
                        _add_logprob(table, tok.decode([tid]), lp)
                    out[j] = table
        return out


class VLLMBackend(LocalBackend):
    """Judge on an in-process vLLM engine, all conversations of a request in one ``generate`` call.

    Prompts go in as token ids of the rendered chat template (``add_special_tokens=False``): a text
    prompt would get a second BOS from vLLM's tokenizer call on top of the template's own.
    """

    def _token_prompts(self, conversations: Sequence[Conversation]) -> list[Any]:
        from vllm.inputs import TokensPrompt

        return [
            TokensPrompt(prompt_token_ids=self.tokenizer(self.render(c), add_special_tokens=False).input_ids)
            for c in conversations
        ]

    def complete(
        self, conversations: Sequence[Conversation], *, max_new_tokens: int, temperature: float, n: int, seed: int
    ) -> list[list[str] | None]:
        """``n`` replies per conversation with vLLM ``SamplingParams``."""
        from vllm import SamplingParams

        llm: Any = self.generator.llm  # type: ignore[attr-defined]
        params = SamplingParams(n=n, temperature=temperature, max_tokens=max_new_tokens, seed=seed)
        outs = llm.generate(self._token_prompts(conversations), params, use_tqdm=False)
        return [[c.text for c in o.outputs] for o in outs]

    def top_logprobs(self, conversations: Sequence[Conversation], k: int) -> list[dict[str, float] | None]:
        """Top-``k`` log-probs of the first generated token (greedy, seed 0, as the reference request)."""
        from vllm import SamplingParams

        llm: Any = self.generator.llm  # type: ignore[attr-defined]
        params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=k, seed=0)
        outs = llm.generate(self._token_prompts(conversations), params, use_tqdm=False)
        result: list[dict[str, float] | None] = []
        for o in outs:
            first = o.outputs[0].logprobs[0]
            ranked = sorted(first.items(), key=lambda item: -item[1].logprob)[:k]
            table: dict[str, float] = {}
            for tid, entry in ranked:
                text = entry.decoded_token if entry.decoded_token is not None else self.tokenizer.decode([tid])
                _add_logprob(table, text, entry.logprob)
            result.append(table)
        return result


class OpenAIBackend:
    """Any OpenAI-compatible ``/chat/completions`` endpoint; the key is read from the environment and never logged."""

    def __init__(
        self, base_url: str, model: str, api_key_env: str, *, concurrency: int = 8, timeout_s: float = 120.0,
        max_retries: int = 5,
    ) -> None:  # fmt: skip
        """Check that the key variable is set; requests go to ``{base_url}/chat/completions``."""
        key = os.environ.get(api_key_env)
        if not key:
            raise RuntimeError(f"eval.judge.api_key_env: environment variable {api_key_env} is not set")
        self._key = key
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries

    def _post(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """POST with retries on rate limits, server errors and timeouts; None when every try failed."""
        body = json.dumps({"model": self.model, **payload}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self._key}"}
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(2.0 ** (attempt - 1), 30.0))
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
                if exc.code not in RETRY_STATUS:
                    break
            except (
                urllib.error.URLError,
                TimeoutError,
                ConnectionError,
                json.JSONDecodeError,
                UnicodeDecodeError,
            ) as exc:
                problem = type(exc).__name__
        log.warning("judge endpoint %s: giving up on one request (%s)", self.url, problem)
        return None

    def _map(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._post, payloads))

    def top_logprobs(self, conversations: Sequence[Conversation], k: int) -> list[dict[str, float] | None]:
        """The reference request: ``max_tokens=1, temperature=0, logprobs=True, top_logprobs=k, seed=0``."""
        payloads = [
            {"messages": c, "max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": k, "seed": 0}
            for c in conversations
        ]
        result: list[dict[str, float] | None] = []
        for data in self._map(payloads):
            try:
                entries = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]  # type: ignore[index]
                table: dict[str, float] = {}
                for entry in entries:
                    _add_logprob(table, str(entry["token"]), float(entry["logprob"]))
                result.append(table)
            except (TypeError, KeyError, IndexError, ValueError):
                result.append(None)
        return result

    def complete(
        self, conversations: Sequence[Conversation], *, max_new_tokens: int, temperature: float, n: int, seed: int
    ) -> list[list[str] | None]:
        """``n`` replies per conversation from one request each."""
        payloads = [
            {"messages": c, "max_tokens": max_new_tokens, "temperature": temperature, "n": n, "seed": seed}
            for c in conversations
        ]
        result: list[list[str] | None] = []
        for data in self._map(payloads):
            try:
                texts = [str(choice["message"]["content"] or "") for choice in data["choices"]]  # type: ignore[index]
                result.append(texts if len(texts) == n else None)
            except (TypeError, KeyError, IndexError):
                result.append(None)
        return result
