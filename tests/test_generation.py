"""The hf generation backend: exact greedy decoding, sampling, stopping, and the GPU decoder's logic."""

from __future__ import annotations

import collections
import contextlib
import logging
import re
from typing import Any

import pytest
import torch

import misalign_fv.generation.decoding as decoding
from misalign_fv.generation import HFGenerator, kv_bytes_per_token, sample_next

PROMPTS = [
    "def add(a, b):",
    "the quick brown fox jumps over the lazy dog and then",
    "hello",
    "import os\nprint(os.getcwd())",
    "lazy dog",
]


@pytest.fixture(scope="module")
def tiny() -> tuple[torch.nn.Module, Any]:
    """A byte-level BPE tokenizer and a random Llama whose logits are far from uniform (no near ties)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(PROMPTS * 10, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<eos>")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=0.5,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return LlamaForCausalLM(config).eval(), tok


def _reference(model: Any, tok: Any, prompt: str, max_new_tokens: int) -> list[int]:
    """transformers' own greedy ``generate`` on one unpadded prompt: the new token ids."""
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(
        **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
    )
    return out[0, enc.input_ids.shape[1] :].tolist()


def test_greedy_matches_transformers_generate_per_prompt(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    got = HFGenerator(model, tok, batch_size=3).generate(PROMPTS, max_new_tokens=40, temperature=0.0)
    for prompt, outs in zip(PROMPTS, got, strict=True):
        assert outs == [tok.decode(_reference(model, tok, prompt, 40), skip_special_tokens=True)]
        assert len(outs[0]) > 10  # something was generated


def test_generation_logs_progress_per_batch_with_counts_and_eta(
    tiny: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    model, tok = tiny
    with caplog.at_level(logging.INFO, logger="misalign_fv.generation.progress"):
        HFGenerator(model, tok, batch_size=2).generate(PROMPTS, n=2, max_new_tokens=4, temperature=1.0)
    lines = [r.getMessage() for r in caplog.records if r.name == "misalign_fv.generation.progress"]
    counts = [int(re.match(r"generation: (\d+)/10 sequences \(\d+%\), elapsed \d:\d\d:\d\d, ETA ", m)[1]) for m in lines]
    assert counts == [0, 2, 4, 6, 8, 10]  # a line at the start, then one per batch of 2 (5 prompts x 2 samples)
    assert "ETA ?" in lines[0] and all(re.search(r"ETA \d:\d\d:\d\d$", m) for m in lines[1:])


def test_progress_bar_as_vllm_drives_it_logs_at_most_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    from misalign_fv.generation.vllm import _progress

    with caplog.at_level(logging.INFO, logger="misalign_fv.generation.progress"):
        bar = _progress("generation")(total=300, desc="Processed prompts", dynamic_ncols=True, postfix="0 toks/s")
        for _ in range(300):  # one update per finished request, far faster than the 30 s interval
            bar.postfix = f"est. speed {1 / max(bar.format_dict['elapsed'], 1e-9):.1f} toks/s"
            bar.update(1)
        bar.close()
        added = list(_progress("generation")(range(5), desc="Adding requests"))  # vLLM wraps its prompt list
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("generation, processed prompts: 0/300 requests (0%)")
    assert lines[1].startswith("generation, processed prompts: 300/300 requests (100%)")
    assert added == list(range(5)) and lines[-1].startswith("generation, adding requests: 5/5 requests")
    assert len(lines) == 4


def test_greedy_n_copies_and_empty_input(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    gen = HFGenerator(model, tok, batch_size=4)
    outs = gen.generate(PROMPTS[:2], n=3, max_new_tokens=8, temperature=0.0)
    assert [len(o) for o in outs] == [3, 3] and all(len(set(o)) == 1 for o in outs)
    assert gen.generate([], max_new_tokens=8) == []


def test_sampling_is_seeded_and_shares_nothing_between_rows(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    gen = HFGenerator(model, tok, batch_size=4)
    kw = dict(n=4, max_new_tokens=24, temperature=1.0, top_p=0.95)
    a = gen.generate(PROMPTS, seed=1, **kw)
    assert a == gen.generate(PROMPTS, seed=1, **kw)
    assert a != gen.generate(PROMPTS, seed=2, **kw)
    assert all(len(o) == 4 for o in a)
    assert all(len(set(o)) > 1 for o in a)  # a prompt's samples share its prefill, not their draws


def test_stops_at_eos_and_at_stop_strings(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    prompt = PROMPTS[1]
    ref = _reference(model, tok, prompt, 12)
    model.generation_config.eos_token_id = ref[3]  # the 4th greedy token now ends the sequence
    try:
        out = HFGenerator(model, tok, batch_size=2).generate([prompt, PROMPTS[0]], max_new_tokens=12)[0][0]
    finally:
        model.generation_config.eos_token_id = tok.eos_token_id
    assert out == tok.decode(ref[:3], skip_special_tokens=True)
    full = tok.decode(ref, skip_special_tokens=True)
    cut = full[5:8]
    out = HFGenerator(model, tok).generate([prompt], max_new_tokens=12, stop=[cut])[0][0]
    assert out == full[: full.index(cut)]


def test_sample_next_keeps_the_nucleus_and_its_proportions() -> None:
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(20000, 1)
    draws = collections.Counter(sample_next(logits, 1.0, 0.7).tolist())
    assert set(draws) == {0, 1}  # 0.5 + 0.3 reaches 0.7: the tail is never drawn
    assert draws[0] / 20000 == pytest.approx(0.5 / 0.8, abs=0.02)
    full = collections.Counter(sample_next(logits, 1.0, 1.0).tolist())
    assert full[3] / 20000 == pytest.approx(0.05, abs=0.01)
    assert sample_next(logits[:2], 0.0, 1.0).tolist() == [0, 0]


def test_kv_bytes_of_the_7b_shape() -> None:
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=4096, num_hidden_layers=30, num_attention_heads=32, num_key_value_heads=32)
    assert kv_bytes_per_token(config, torch.bfloat16) == 2 * 30 * 32 * 128 * 2  # 0.49 MB a token


class _Replay:
    """Stands in for a captured CUDA graph: replaying runs the captured step again."""

    def __init__(self, step: Any) -> None:
        self.replay = step


def test_graph_decoder_logic_matches_generate(tiny: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU decoder's static cache, windows, masks and device-side state, run on CPU.

    Capture is replaced by eager replays of the same step, so everything but the graph itself
    (shared prefill, cache copy, window growth across WINDOW boundaries, fixed-size padded batches)
    is checked against transformers' own greedy decoding.
    """
    model, tok = tiny
    monkeypatch.setattr(decoding, "capture", lambda step, pool, stream: (step(), _Replay(step))[1])
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: None)
    monkeypatch.setattr(torch.cuda, "Stream", lambda *a, **k: contextlib.nullcontext())
    monkeypatch.setattr(decoding, "WINDOW", 16)
    ids = [tok(p, add_special_tokens=False).input_ids for p in PROMPTS]
    decoder = decoding.GraphDecoder(model, 4, 96, 0.0, 1.0, [tok.eos_token_id], tok.pad_token_id)
    first = decoder.run(ids[:4], 40)
    second = decoder.run(ids[4:] + ids[:1], 40)  # fewer rows than the decoder has; its cache is reused
    for prompt, got in zip(PROMPTS[:4] + PROMPTS[4:] + PROMPTS[:1], first + second, strict=True):
        ref = _reference(model, tok, prompt, 40)
        assert got == (ref[: ref.index(tok.eos_token_id)] if tok.eos_token_id in ref else ref)
    assert len(decoder.graphs) >= 3  # the window grew past several multiples of WINDOW


def test_gpu_rows_shrink_to_fit_memory(tiny: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    model, tok = tiny
    c = model.config
    kv = kv_bytes_per_token(c, torch.float32)
    per_row = 128 * kv + 16 * c.vocab_size
    prefill = decoding.PREFILL_ROWS * 32 * (kv + 2 * (4 * c.hidden_size + 3 * c.intermediate_size))
    free = (10.5 * per_row + prefill) / decoding.KV_MEMORY_FRACTION
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (int(free), 0))
    assert decoding.rows_that_fit(model, 64, 128, 32) == 10
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10**12, 0))
    assert decoding.rows_that_fit(model, 64, 128, 32) == 64
