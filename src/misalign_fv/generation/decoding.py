"""The ``hf`` backend's own decoding loop (used by :class:`~misalign_fv.generation.hf.HFGenerator`).

Prompts are sorted by length into left-padded batches; the KV cache is static (allocated once per
call shape) and attention reads only the filled part of it, rounded up to a multiple of
:data:`WINDOW` slots; on CUDA every decode step of a window width is captured once as a CUDA graph
and replayed, which removes the per-kernel launch cost without a ``torch.compile`` wait. Runs on
CPU (:class:`EagerDecoder`, the demo) and on any GPU machine without vLLM (:class:`GraphDecoder`).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Sequence
from typing import Any

import torch

log = logging.getLogger(__name__)

WINDOW = 128  # attention reads the cache in multiples of this many slots (one CUDA graph each)
PROMPT_ALIGN = 16  # padded prompt widths are multiples of this (aligned attention masks)
CHECK_EVERY = 16  # decode steps between host-side checks that every row has finished
KV_MEMORY_FRACTION = 0.8  # share of free GPU memory one call's cache and prefill may take
PREFILL_ROWS = 16  # distinct prompts prefilled together (bounds the prefill's scratch memory)


def round_up(n: int, m: int) -> int:
    """``n`` rounded up to a multiple of ``m``."""
    return -(-n // m) * m


def kv_bytes_per_token(config: Any, dtype: torch.dtype) -> int:
    """Bytes one token's keys and values take in the cache, summed over all layers."""
    c = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return 2 * c.num_hidden_layers * heads * head_dim * torch.finfo(dtype).bits // 8


def rows_that_fit(model: Any, batch_size: int, slots: int, width: int) -> int:
    """Rows per GPU batch: ``batch_size``, fewer where a ``slots``-long cache and the prefill of
    ``width``-token prompts would not fit in :data:`KV_MEMORY_FRACTION` of free GPU memory."""
    c = model.config.get_text_config()
    kv = kv_bytes_per_token(c, next(model.parameters()).dtype)
    per_row = slots * kv + 16 * c.vocab_size  # its cache, fp32 logits, sort keys and indices of the sampler
    prefill = PREFILL_ROWS * width * (kv + 2 * (4 * c.hidden_size + 3 * c.intermediate_size))
    free = torch.cuda.mem_get_info(next(model.parameters()).device)[0]
    fit = max(1, int((KV_MEMORY_FRACTION * free - prefill) // per_row))
    if fit < batch_size:
        log.warning(
            "generation: %d rows of %d cache slots fit in GPU memory; batch_size %d lowered", fit, slots, batch_size
        )
    return min(batch_size, fit)


def sample_next(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Next-token ids from ``(rows, vocab)`` logits: argmax at temperature 0, else nucleus sampling.

    Sampling keeps the smallest set of tokens whose probability reaches ``top_p`` and draws
    from it by an exponential race (``argmax p / E``, ``E ~ Exp(1)``), which is the categorical
    distribution and needs no host synchronisation (so it can sit inside a CUDA graph).
    """
    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    scaled = logits.float() / temperature
    if top_p < 1.0:
        ordered, index = scaled.sort(dim=-1, descending=True)
        probs = ordered.softmax(dim=-1)
        outside = probs.cumsum(dim=-1) - probs >= top_p  # mass before this token already reaches top_p
        scaled = torch.full_like(scaled, float("-inf")).scatter(-1, index, ordered.masked_fill(outside, float("-inf")))
    probs = scaled.softmax(dim=-1)
    if probs.device.type == "cpu":  # same distribution by inverting the CDF: the faster sampler on CPU
        cdf = probs.cumsum(dim=-1)
        u = torch.rand((probs.shape[0], 1), dtype=cdf.dtype) * cdf[:, -1:]
        return torch.searchsorted(cdf, u)[:, 0].clamp_(max=probs.shape[-1] - 1)
    return (probs / torch.empty_like(probs).exponential_()).argmax(dim=-1)


@functools.cache
def _window_cache_class() -> type:
    """A transformers ``StaticCache`` whose attention reads only its first ``window`` slots."""
    from transformers import StaticCache

    class WindowCache(StaticCache):  # type: ignore[misc, valid-type]
        window = 0

        def update(self, key_states: Any, value_states: Any, layer_idx: int, *args: Any, **kwargs: Any) -> Any:
            keys, values = super().update(key_states, value_states, layer_idx, *args, **kwargs)
            return keys[:, :, : self.window], values[:, :, : self.window]

        def fill_rows(self, scratch: Any, rows: torch.Tensor, src: torch.Tensor, batch: int) -> None:
            """Copy the prefill in ``scratch`` (a dynamic cache), its row ``src[j]`` into row ``rows[j]``.

            The cache (``batch`` rows) then continues after the prefilled slots; slots past them
            may hold an earlier batch's keys, which the decode masks never let attention read.
            """
            width = scratch.get_seq_length()
            for i, layer in enumerate(scratch.layers):
                dst = self.layers[i]
                if not dst.is_initialized:  # allocate the full-size tensors from the prefill's shapes
                    shape = (batch, *layer.keys.shape[1:])
                    dst.lazy_initialization(layer.keys[:1].expand(shape), layer.values[:1].expand(shape))
                dst.keys[rows, :, :width] = layer.keys[src]
                dst.values[rows, :, :width] = layer.values[src]
                dst.cumulative_length.fill_(width)

        def keep_rows(self, index: torch.Tensor) -> None:
            """Drop every row not in ``index`` (new, smaller tensors: not for a captured graph)."""
            for layer in self.layers:
                layer.keys, layer.values = layer.keys[index], layer.values[index]

    return WindowCache


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean "may attend" to an additive mask (0 or the dtype's minimum), for any attention kernel."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, torch.finfo(dtype).min)


def _pack(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Left-pad the distinct prompts; return their ids, their padding and each prompt's distinct row."""
    distinct = list(dict.fromkeys(map(tuple, prompts)))
    where = {p: i for i, p in enumerate(distinct)}
    width = round_up(max(len(p) for p in distinct), PROMPT_ALIGN)
    ids = torch.full((len(distinct), width), pad_id, dtype=torch.long)
    for r, p in enumerate(distinct):
        ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
    lead = torch.tensor([width - len(p) for p in distinct])
    return ids, lead, [where[tuple(p)] for p in prompts]


class Decoder:
    """Decodes batches of tokenised prompts with one sampling setting; subclasses own the KV cache.

    A batch's distinct prompts are prefilled once (samples of one prompt share the prefill) into
    a scratch dynamic cache, with an explicit 4D mask and positions so left padding is exact.
    """

    def __init__(self, model: Any, rows: int, temperature: float, top_p: float, eos: Sequence[int], pad_id: int) -> None:
        self.model, self.rows = model, rows
        self.temperature, self.top_p, self.pad_id = temperature, top_p, pad_id
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.eos = torch.tensor(sorted(eos), dtype=torch.long, device=self.device)
        # transformers >= 5.24 names the cache argument `cache` (`past_key_values` is deprecated there).
        self.cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def _forward(self, ids: torch.Tensor, allowed: torch.Tensor, positions: torch.Tensor, cache: Any) -> torch.Tensor:
        """Last-position logits of ``ids`` attending where ``allowed`` (rows x queries x keys)."""
        out = self.model(
            input_ids=ids,
            attention_mask=_additive(allowed, self.dtype)[:, None],
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self.cache_arg: cache},
        )
        return out.logits[:, -1]

    def _prefill(self, prompts: list[list[int]], cache: Any, batch: int) -> tuple[torch.Tensor, int]:
        """Prefill ``cache`` (``batch`` rows; rows past the prompts repeat the first) and return each row's logits.

        A prompt sampled several times runs once: distinct prompts go through the model
        :data:`PREFILL_ROWS` at a time into a scratch dynamic cache, whose keys and values are
        copied into every row that asked for the prompt. Returns the logits and the padded width.
        """
        from transformers import DynamicCache

        ids, lead, src = _pack(prompts, self.pad_id)
        src_rows = torch.tensor(src + [0] * (batch - len(prompts)), device=self.device)
        ids, lead = ids.to(self.device), lead.to(self.device)
        width = ids.shape[1]
        q = torch.arange(width, device=self.device)
        logits = torch.empty((batch, self.model.config.get_text_config().vocab_size), dtype=self.dtype, device=self.device)
        for first in range(0, ids.shape[0], PREFILL_ROWS):
            part = slice(first, first + PREFILL_ROWS)
            allowed = (q[None, None, :] >= lead[part, None, None]) & (q[None, None, :] <= q[None, :, None])
            allowed |= torch.eye(width, dtype=torch.bool, device=self.device)  # a padding row attends to itself
            scratch = DynamicCache(config=self.model.config)
            positions = (q[None, :] - lead[part, None]).clamp(min=0)
            out = self._forward(ids[part], allowed, positions, scratch)
            rows = ((src_rows >= first) & (src_rows < first + out.shape[0])).nonzero()[:, 0]
            cache.fill_rows(scratch, rows, src_rows[rows] - first, batch)
            logits[rows] = out[src_rows[rows] - first].to(self.dtype)
        return logits, width

    def _sample(self, logits: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        return torch.where(done, self.pad_id, sample_next(logits, self.temperature, self.top_p))

    def _trim(self, rows: list[list[int]]) -> list[list[int]]:
        eos = set(self.eos.tolist())
        return [next((row[:i] for i, t in enumerate(row) if t in eos), row) for row in rows]


class EagerDecoder(Decoder):
    """CPU decoding: a static cache read to its exact length, finished rows dropped as they pile up."""

    def run(self, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        """New token ids for each prompt, each cut before its first end-of-sequence token."""
        dev, n = self.device, len(prompts)
        width = round_up(max(len(p) for p in prompts), PROMPT_ALIGN)
        cache = _window_cache_class()(config=self.model.config, max_cache_len=width + max_new_tokens)
        logits, width = self._prefill(prompts, cache, n)
        rows = torch.arange(n, device=dev)
        lead = torch.tensor([width - len(p) for p in prompts], device=dev)
        done = torch.zeros(n, dtype=torch.bool, device=dev)
        tok = self._sample(logits, done)
        out = torch.full((n, max_new_tokens), self.pad_id, dtype=torch.long, device=dev)
        out[:, 0] = tok
        pos = width  # cache slot of `tok`
        for step in range(1, max_new_tokens):
            done |= (tok[:, None] == self.eos).any(dim=-1)
            if bool(done.all()):
                break
            if int(done.sum()) * 4 >= len(rows):  # a quarter finished: stop computing them
                keep = (~done).nonzero()[:, 0]
                cache.keep_rows(keep)
                rows, lead, tok, done = rows[keep], lead[keep], tok[keep], done[keep]
            keys = torch.arange(pos + 1, device=dev)
            allowed = (keys[None, :] >= lead[:, None]) & (keys[None, :] <= pos)
            cache.window = pos + 1
            tok = self._sample(self._forward(tok[:, None], allowed[:, None, :], (pos - lead)[:, None], cache), done)
            out[rows, step] = tok
            pos += 1
        return self._trim(out.tolist())


def capture(step: Any, pool: Any, stream: Any) -> Any:
    """Run ``step`` once for real on ``stream`` (its warm-up), then capture it as a CUDA graph."""
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool, stream=stream):
        step()
    return graph


class GraphDecoder(Decoder):
    """GPU decoding of fixed-shape batches (``rows`` x ``slots`` static cache), steps replayed as CUDA graphs.

    State lives in fixed device tensors (the token just produced, its cache slot, each row's left
    padding, finished rows, the output buffer), so a decode step has no host inputs: the step of
    each attention width runs once eagerly (warm-up), is then captured once and replayed.
    """

    def __init__(
        self, model: Any, rows: int, slots: int, temperature: float, top_p: float, eos: Sequence[int], pad_id: int
    ) -> None:
        super().__init__(model, rows, temperature, top_p, eos, pad_id)
        dev = self.device
        self.slots = slots
        self.cache = _window_cache_class()(config=model.config, max_cache_len=slots)
        self.cols = torch.arange(slots, device=dev)
        self.tok = torch.zeros(rows, dtype=torch.long, device=dev)
        self.pos = torch.zeros((), dtype=torch.long, device=dev)  # cache slot of `tok`
        self.lead = torch.zeros(rows, dtype=torch.long, device=dev)  # left padding per row
        self.done = torch.zeros(rows, dtype=torch.bool, device=dev)
        self.step = torch.zeros(1, dtype=torch.long, device=dev)
        self.out = torch.zeros((rows, slots), dtype=torch.long, device=dev)
        self.pool = torch.cuda.graph_pool_handle()
        self.stream = torch.cuda.Stream(dev)  # warm-up and capture run here, replays on the caller's stream
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}

    def _emit(self, logits: torch.Tensor) -> None:
        self.tok.copy_(self._sample(logits, self.done))
        self.out.index_copy_(1, self.step, self.tok[:, None])
        self.done |= (self.tok[:, None] == self.eos).any(dim=-1)
        self.step += 1

    def _decode(self, width: int) -> None:
        keys = self.cols[:width]
        allowed = (keys[None, :] >= self.lead[:, None]) & (keys[None, :] <= self.pos)
        self.cache.window = width
        self._emit(self._forward(self.tok[:, None], allowed[:, None, :], (self.pos - self.lead)[:, None], self.cache))
        self.pos += 1

    def _step(self, width: int) -> None:
        graph = self.graphs.get(width)
        if graph is None:
            self.graphs[width] = capture(lambda: self._decode(width), self.pool, self.stream)
        else:
            graph.replay()

    def run(self, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        """New token ids for up to ``rows`` prompts, each cut before its first end-of-sequence token."""
        n = len(prompts)
        logits, width = self._prefill(prompts, self.cache, self.rows)
        filled = prompts + [prompts[0]] * (self.rows - n)  # unused rows repeat the first prompt
        self.lead.copy_(torch.tensor([width - len(p) for p in filled], device=self.device))
        self.done.zero_()
        self.step.zero_()
        self.pos.fill_(width)
        self._emit(logits)
        produced = 1
        while produced < max_new_tokens:
            if produced % CHECK_EVERY == 0 and bool(self.done[:n].all()):
                break
            self._step(min(self.slots, round_up(width + produced, WINDOW)))
            produced += 1
        return self._trim(self.out[:n, :produced].tolist())
