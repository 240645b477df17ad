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
    """A judge model loaded in this job (``hf`` or ``vllm``) behind the
    :class:`~misalign_fv.generation.Generator` interface; prompts are the judge tokenizer's chat template."""

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

    def top_logprobs(self, conversations: Sequence[Conversation], k: int) -> list[dict[str, float] | None]:
        """Top-``k`` next-token log-probs through the generator, keyed by each token's text."""
        tables = self.generator.next_token_logprobs([self.render(c) for c in conversations], k)
        result: list[dict[str, float] | None] = []
        for by_id in tables:
            table: dict[str, float] = {}
            for tid, logprob in by_id.items():
                _add_logprob(table, self.tokenizer.decode([tid]), logprob)
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
