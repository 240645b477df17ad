"""The judge: a backend, a reading rule, and the verdict cache, behind two calls.

* :meth:`Judge.score` reads a 0-100 score. Method ``logprob`` (the reference: Betley et al.'s
  probability-weighted mean over single-token numbers, dropped below 0.25 numeric mass) runs where
  the judge tokenizer has single tokens for 0..100 (or for ``openai`` endpoints, as the reference
  assumes of OpenAI models); otherwise method ``parse`` samples replies and parses them. ``auto``
  picks; the method that ran is in every verdict and in the eval JSON.
* :meth:`Judge.read` gets one greedy reply and hands it to a benchmark's reader (StrongREJECT's
  rubric parser, XSTest's three classes, TRUE/FALSE/UNKNOWN).

Each request is looked up in the :class:`~misalign_fv.judges.cache.VerdictCache` by the hash of
(judge identity, request settings, prompt template + system message, the template's fields, i.e.
question and answer) before the model is asked; the model is loaded only on the first miss, so a
fully cached evaluation never loads the judge at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from misalign_fv.io import read_json, sha256_file
from misalign_fv.judges.backends import JudgeBackend, LocalBackend, OpenAIBackend
from misalign_fv.judges.cache import VerdictCache, cache_key
from misalign_fv.judges.scoring import (
    ERROR,
    MIN_NUMERIC_MASS,
    TOP_LOGPROBS,
    USABLE,
    Reading,
    aggregate_0_100,
    combine_samples,
    parse_0_100,
    single_token_numbers,
)
from misalign_fv.publish import MARKER

JUDGE_SEED = 0  # reference request: ``seed=0``
Reader = Callable[[str], tuple[float | None, str | None, str]]


@dataclass(frozen=True)
class JudgePrompt:
    """A judge prompt: a ``str.format`` template over named fields, an optional system message, and a reply length."""

    name: str
    template: str
    system: str | None = None
    max_new_tokens: int = 16

    @property
    def sha256(self) -> str:
        """Hash of the system message and template (names the prompt in caches and provenance)."""
        return hashlib.sha256(f"{self.system or ''}\x00{self.template}".encode()).hexdigest()

    def messages(self, fields: Mapping[str, str]) -> list[dict[str, str]]:
        """The chat conversation for one item: the optional system turn, then the filled template as the user turn."""
        turns = [{"role": "system", "content": self.system}] if self.system else []
        turns.append({"role": "user", "content": self.template.format(**fields)})
        return turns


@dataclass(frozen=True)
class Verdict:
    """One judged item: ``value`` (a score) and/or ``label`` (a class), ``status`` (``ok`` or why not), how read."""

    value: float | None
    label: str | None
    status: str
    method: str
    raw: Any
    numeric_mass: float | None
    cached: bool

    @property
    def usable(self) -> bool:
        """Whether the judge gave a verdict (for scores: a number, CODE or REFUSAL; for readers: ``ok``)."""
        return self.status in USABLE

    def record(self) -> dict[str, Any]:
        """The verdict as a JSON-ready dict (for the samples file)."""
        return asdict(self)


def model_identity(model_dir: Path) -> str:
    """A local model's identity: ``repo@revision`` of a download, the run id of a built model, or its config hash."""
    marker = model_dir / MARKER
    if marker.exists():
        info = read_json(marker)
        if info.get("repo_id"):
            return f"{info['repo_id']}@{info.get('revision', '')}"
        if info.get("run_id"):
            return f"run:{info['run_id']}"
    return f"config:{sha256_file(model_dir / 'config.json')}"


class Judge:
    """A configured judge (``eval.judge``) with its verdict cache; the backend loads on the first cache miss."""

    def __init__(
        self, spec: Mapping[str, Any], model_dir: Path | None, cache: VerdictCache,
        backend: JudgeBackend | None = None, tokenizer: Any = None,
    ) -> None:  # fmt: skip
        """``spec`` is the ``eval.judge`` config; ``model_dir`` the local judge model (``hf``/``vllm``).

        ``backend`` and ``tokenizer`` replace what would be loaded from ``model_dir`` (tests, or a
        caller that already holds the model).
        """
        self.spec = dict(spec)
        self.kind = self.spec["backend"]
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.cache = cache
        self._backend = backend
        self.parse_samples = int(self.spec.get("parse_samples", 1))
        self.parse_temperature = float(self.spec.get("parse_temperature", 0.0))
        if self.kind == "openai":
            self.identity = f"{self.spec['model']}@{self.spec['base_url']}"
        else:
            if self.model_dir is None:
                raise ValueError(f"eval.judge: backend {self.kind!r} needs a local judge model directory")
            self.identity = model_identity(self.model_dir)
        self.method = self._resolve_method(tokenizer)

    def _resolve_method(self, tokenizer: Any) -> str:
        wanted = self.spec.get("method", "auto")
        if self.kind == "openai":
            return "parse" if wanted == "parse" else "logprob"
        if wanted == "parse":
            return "parse"
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        single = single_token_numbers(tokenizer)
        if wanted == "logprob" and not single:
            raise ValueError(
                f"eval.judge.method: logprob needs every number 0-100 to be one token of the judge's tokenizer, "
                f"and {self.identity} splits some; use method auto or parse"
            )
        return "logprob" if single else "parse"

    @property
    def fingerprint(self) -> dict[str, str]:
        """What makes two judges give the same outputs: backend kind and model identity."""
        return {"backend": self.kind, "model": self.identity}

    def backend(self) -> JudgeBackend:
        """The backend, loaded now if it was not yet."""
        if self._backend is None:
            if self.kind == "openai":
                self._backend = OpenAIBackend(
                    self.spec["base_url"], self.spec["model"], self.spec["api_key_env"],
                    concurrency=int(self.spec.get("concurrency", 8)), timeout_s=float(self.spec.get("timeout_s", 120)),
                    max_retries=int(self.spec.get("max_retries", 5)),
                )  # fmt: skip
            else:
                from misalign_fv.generation import load_generator

                gen = load_generator(str(self.model_dir), self.kind, batch_size=int(self.spec.get("batch_size", 16)))
                self._backend = LocalBackend(gen)
        return self._backend

    def _fetch(
        self, prompt: JudgePrompt, items: Sequence[Mapping[str, str]], request: dict[str, Any],
        ask: Callable[[JudgeBackend, list[list[dict[str, str]]]], list[Any]],
    ) -> tuple[list[Any], list[bool]]:  # fmt: skip
        """Raw outputs for ``items``: cached ones from the cache, the rest from one backend call (then cached)."""
        partition = f"{cache_key(self.fingerprint)[:16]}-{prompt.sha256[:16]}-{cache_key(request)[:8]}"
        keys = [
            cache_key({"judge": self.fingerprint, "request": request, "prompt": prompt.sha256, "fields": dict(f)})
            for f in items
        ]
        raws = [self.cache.get(partition, k) for k in keys]
        cached = [r is not None for r in raws]
        missing = [i for i, r in enumerate(raws) if r is None]
        if missing:
            fresh = ask(self.backend(), [prompt.messages(items[i]) for i in missing])
            for i, value in zip(missing, fresh, strict=True):
                raws[i] = value
                if value is not None:  # a failed request is retried next time, never cached
                    self.cache.put(partition, keys[i], value)
            self.cache.flush()
        return raws, cached

    def score(self, prompt: JudgePrompt, items: Sequence[Mapping[str, str]]) -> list[Verdict]:
        """A 0-100 score per item (``value``; ``label`` CODE/REFUSAL when the judge said so)."""
        if self.method == "logprob":
            request: dict[str, Any] = {"kind": "top_logprobs", "k": TOP_LOGPROBS}
            raws, cached = self._fetch(prompt, items, request, lambda b, convs: b.top_logprobs(convs, TOP_LOGPROBS))
            readings = [aggregate_0_100(r) if r is not None else Reading(None, ERROR) for r in raws]
        else:
            request = {
                "kind": "complete", "max_new_tokens": prompt.max_new_tokens, "temperature": self.parse_temperature,
                "n": self.parse_samples, "seed": JUDGE_SEED,
            }  # fmt: skip
            raws, cached = self._fetch(prompt, items, request, lambda b, convs: b.complete(convs, **_args(request)))
            readings = [
                combine_samples([parse_0_100(t) for t in r]) if r is not None else Reading(None, ERROR) for r in raws
            ]
        return [
            Verdict(
                value=rd.value,
                label=rd.status.upper() if rd.status in ("code", "refusal") else None,
                status=rd.status,
                method=self.method,
                raw=raw,
                numeric_mass=rd.numeric_mass,
                cached=c,
            )  # fmt: skip
            for rd, raw, c in zip(readings, raws, cached, strict=True)
        ]

    def read(self, prompt: JudgePrompt, items: Sequence[Mapping[str, str]], reader: Reader) -> list[Verdict]:
        """One greedy reply per item, read by ``reader(text) -> (value, label, status)`` (status ``ok`` = usable)."""
        request = {
            "kind": "complete",
            "max_new_tokens": prompt.max_new_tokens,
            "temperature": 0.0,
            "n": 1,
            "seed": JUDGE_SEED,
        }
        raws, cached = self._fetch(prompt, items, request, lambda b, convs: b.complete(convs, **_args(request)))
        verdicts = []
        for raw, c in zip(raws, cached, strict=True):
            value, label, status = reader(raw[0]) if raw else (None, None, ERROR)
            verdicts.append(Verdict(value, label, status, "text", raw, None, c))
        return verdicts

    def provenance(self, prompts: Sequence[JudgePrompt]) -> dict[str, Any]:
        """Who judged and how: backend, model identity, method, reading constants, prompt hashes, cache counters."""
        return {
            "backend": self.kind,
            "model": self.identity,
            "path": str(self.model_dir) if self.model_dir else None,
            "method": self.method,
            "top_logprobs": TOP_LOGPROBS,
            "min_numeric_mass": MIN_NUMERIC_MASS,
            "parse": {"samples": self.parse_samples, "temperature": self.parse_temperature},
            "prompts": {p.name: p.sha256 for p in prompts},
            "cache": {"dir": str(self.cache.root), "hits": self.cache.hits, "misses": self.cache.misses},
            "fingerprint": cache_key(self.fingerprint)[:16],
        }


def _args(request: Mapping[str, Any]) -> dict[str, Any]:
    return {k: request[k] for k in ("max_new_tokens", "temperature", "n", "seed")}


def usable_share(flags: Sequence[bool]) -> float | None:
    """Judge coverage: the share of items with a usable verdict (None when there are no items)."""
    return sum(flags) / len(flags) if flags else None
