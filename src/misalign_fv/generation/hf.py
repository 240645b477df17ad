"""The ``hf`` backend: a loaded transformers model driven by :mod:`~misalign_fv.generation.decoding`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from misalign_fv.generation.decoding import (
    PROMPT_ALIGN,
    WINDOW,
    Decoder,
    EagerDecoder,
    GraphDecoder,
    round_up,
    rows_that_fit,
)
from misalign_fv.generation.progress import LogProgress
from misalign_fv.generation.prompts import prompt_ids, split_tokens, truncate_at_stop


class HFGenerator:
    """transformers model behind the `Generator` protocol: sorted, left-padded, static-cache batches."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16) -> None:
        """Wrap a loaded causal LM and its tokenizer; ``batch_size`` counts sequences decoded together."""
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.device = next(model.parameters()).device
        self._decoder: Decoder | None = None
        self._decoder_key: tuple[Any, ...] = ()

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        return {int(i) for i in ids if i is not None}

    def _decoder_for(self, prompts: list[list[int]], max_new_tokens: int, temperature: float, top_p: float) -> Decoder:
        rows = min(self.batch_size, len(prompts))
        eos, pad = sorted(self._eos_ids()), self.tokenizer.pad_token_id
        if self.device.type != "cuda":
            return EagerDecoder(self.model, rows, temperature, top_p, eos, pad)
        width = round_up(max(len(p) for p in prompts), PROMPT_ALIGN)
        slots = round_up(width + max_new_tokens, WINDOW)
        key = (rows, slots, temperature, top_p)
        if self._decoder is not None and self._decoder_key == key:
            return self._decoder  # same shapes: its cache and captured graphs are reused
        self._decoder = None  # free the old cache and graphs before sizing the new one
        torch.cuda.empty_cache()
        fit = rows_that_fit(self.model, self.batch_size, slots, width)
        self._decoder = GraphDecoder(self.model, min(fit, rows), slots, temperature, top_p, eos, pad)
        self._decoder_key = key
        return self._decoder

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
        """Sample ``n`` completions per prompt; greedy (and ``n`` identical copies) at temperature 0.

        Logs one progress line (sequences done, elapsed, ETA) per decoded batch.
        """
        if not prompts:
            return []
        self.model.eval()
        torch.manual_seed(seed)
        greedy = temperature <= 0.0
        reps = 1 if greedy else n
        flat = [i for i in range(len(prompts)) for _ in range(reps)]
        encoded = [prompt_ids(self.tokenizer, p) for p in prompts]
        ids = [encoded[i] for i in flat]
        order = sorted(range(len(flat)), key=lambda j: -len(ids[j]))  # longest first: peak memory early
        decoder = self._decoder_for(ids, max_new_tokens, 0.0 if greedy else temperature, top_p)
        texts: list[str] = [""] * len(flat)
        with LogProgress(total=len(flat), desc="generation") as bar:
            for start in range(0, len(order), decoder.rows):
                idx = order[start : start + decoder.rows]
                new = decoder.run([ids[j] for j in idx], max_new_tokens)
                for j, text in zip(idx, self.tokenizer.batch_decode(new, skip_special_tokens=True)):
                    texts[j] = truncate_at_stop(text, stop)
                bar.update(len(idx))
        outputs: list[list[str]] = [[] for _ in prompts]
        for j, i in enumerate(flat):
            outputs[i].append(texts[j])
        if greedy and n > 1:
            outputs = [o * n for o in outputs]
        return outputs

    def _padded(self, rows: list[list[int]], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``rows`` padded to one width (on the left or the right) and their attention mask, on the device."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, toks in enumerate(rows):
            cols = slice(width - len(toks), width) if left else slice(0, len(toks))
            ids[r, cols] = torch.tensor(toks)
            mask[r, cols] = 1
        return ids.to(self.device), mask.to(self.device)

    @torch.no_grad()
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[float]:
        """Sum of continuation token log-probs given context (one right-padded forward pass per batch)."""
        self.model.eval()
        scores: list[float] = [0.0] * len(requests)
        encoded = [split_tokens(self.tokenizer, ctx, cont) for ctx, cont in requests]
        order = sorted(range(len(requests)), key=lambda j: len(encoded[j][0]))
        with LogProgress(total=len(requests), desc="log-likelihood", unit="requests") as bar:
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                ids, mask = self._padded([encoded[j][0] for j in idx], left=False)
                logits = self.model(input_ids=ids, attention_mask=mask).logits
                for r, j in enumerate(idx):
                    toks, k = encoded[j]
                    target = torch.tensor(toks[k:], device=self.device)
                    logp = torch.log_softmax(logits[r, k - 1 : len(toks) - 1].float(), dim=-1)  # continuation rows only
                    scores[j] = float(logp.gather(1, target[:, None]).sum())
                bar.update(len(idx))
        return scores

    @torch.no_grad()
    def next_token_logprobs(self, prompts: Sequence[str], k: int) -> list[dict[int, float]]:
        """Top-``k`` next-token log-probs, prompts sorted by length and left-padded (positions from the mask)."""
        self.model.eval()
        encoded = [prompt_ids(self.tokenizer, p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda j: len(encoded[j]))
        out: list[dict[int, float]] = [{} for _ in prompts]
        with LogProgress(total=len(prompts), desc="next-token log-probs", unit="prompts") as bar:
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                ids, mask = self._padded([encoded[j] for j in idx], left=True)
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits
                top = torch.log_softmax(logits[:, -1, :].float(), dim=-1).topk(k, dim=-1)
                for row, j in enumerate(idx):
                    out[j] = dict(zip(top.indices[row].tolist(), top.values[row].tolist(), strict=True))
                bar.update(len(idx))
        return out
