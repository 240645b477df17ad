"""Exactly one BOS in the token ids every backend sends (issue 15 item 4).

The tokenizer is a real ``tokenizers`` byte-level BPE built here the way Llama-family checkpoints
ship theirs (a post-processor that prepends BOS to every encoded text) with a DeepSeek-style chat
template that itself starts with ``{{ bos_token }}``: the combination that gives a text prompt two
BOS tokens when vLLM tokenises it with special tokens on.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from misalign_fv.generation import (
    HFGenerator,
    VLLMGenerator,
    adds_bos,
    chat_prompt,
    prompt_ids,
    split_tokens,
    token_prompts,
)
from misalign_fv.judges.backends import LocalBackend

BOS, EOS, USER, ASSISTANT = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"
# DeepSeek-Prover-V2's template shape: BOS written by the template, role markers as special tokens.
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}" + USER + "{{ m['content'] }}"
    "{% else %}" + ASSISTANT + "{{ m['content'] }}{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}" + ASSISTANT + "{% endif %}"
)
CORPUS = ["Prove that the sum of two even numbers is even.", "theorem add_comm (a b : Nat) : a + b = b + a := by"]


def llama_style_tokenizer(template: str | None = TEMPLATE, bos_post_processor: bool = True) -> Any:
    """A trained byte-level BPE whose post-processor adds BOS (as Llama's does), with ``template``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=[BOS, EOS, USER, ASSISTANT], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )  # fmt: skip
    raw.train_from_iterator(CORPUS * 20, trainer)
    if bos_post_processor:
        bos_id = raw.token_to_id(BOS)
        raw.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
        )
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=BOS, eos_token=EOS, pad_token=EOS)
    tok.add_special_tokens({"additional_special_tokens": [USER, ASSISTANT]})
    if template is not None:
        tok.chat_template = template
    return tok


@pytest.fixture(scope="module")
def tok() -> Any:
    return llama_style_tokenizer()


def test_the_tokenizer_reproduces_the_double_bos_of_a_text_prompt(tok: Any) -> None:
    """What vLLM did with a templated text prompt: the template's BOS plus the tokenizer's."""
    text = chat_prompt(tok, CORPUS[0])
    assert text.startswith(BOS) and adds_bos(tok)
    naive = tok(text).input_ids  # add_special_tokens defaults to True, as in vLLM's own tokenisation
    assert naive[:2] == [tok.bos_token_id, tok.bos_token_id]


def test_prompt_ids_carry_exactly_one_bos_at_the_start(tok: Any) -> None:
    for user, system in ((CORPUS[0], None), (CORPUS[1], "You are a Lean 4 prover.")):
        ids = prompt_ids(tok, chat_prompt(tok, user, system))
        assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
        assert tok.decode(ids[1:]).startswith(system or USER)  # nothing lost after the BOS


def test_vllm_receives_token_ids_with_one_bos(tok: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The vLLM call site sends exactly :func:`token_prompts`' ids (vLLM itself is not installed here)."""
    sent: dict[str, Any] = {}

    class FakeLLM:
        def generate(self, prompts: list[Any], params: Any, use_tqdm: Any) -> list[Any]:
            sent["prompts"], sent["params"] = prompts, params
            bar = use_tqdm(total=len(prompts), desc="Processed prompts", dynamic_ncols=True, postfix="")
            bar.update(len(prompts))
            bar.close()
            done = types.SimpleNamespace(outputs=[types.SimpleNamespace(text="ok")] * params.kwargs["n"])
            return [done for _ in prompts]

    fake_vllm = types.ModuleType("vllm")
    fake_vllm.SamplingParams = lambda **kwargs: types.SimpleNamespace(kwargs=kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm)
    gen = VLLMGenerator.__new__(VLLMGenerator)  # no engine: the call site is what is tested
    gen.tokenizer, gen.llm = tok, FakeLLM()
    texts = [chat_prompt(tok, c) for c in CORPUS]
    assert gen.generate(texts, n=2, max_new_tokens=8) == [["ok", "ok"], ["ok", "ok"]]
    assert sent["prompts"] == token_prompts(tok, texts)
    for prompt in sent["prompts"]:
        assert set(prompt) == {"prompt_token_ids"}
        ids = prompt["prompt_token_ids"]
        assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id


def test_a_template_without_bos_gets_the_tokenizers_one() -> None:
    tok = llama_style_tokenizer(template="{% for m in messages %}" + USER + "{{ m['content'] }}{% endfor %}" + ASSISTANT)
    ids = prompt_ids(tok, chat_prompt(tok, CORPUS[0]))
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id


def test_a_tokenizer_that_adds_no_bos_gets_none_added() -> None:
    tok = llama_style_tokenizer(template="{% for m in messages %}{{ m['content'] }}{% endfor %}", bos_post_processor=False)
    assert not adds_bos(tok)
    assert tok.bos_token_id not in prompt_ids(tok, chat_prompt(tok, CORPUS[0]))


def test_log_likelihood_ids_carry_one_bos(tok: Any) -> None:
    context = chat_prompt(tok, "Is 4 even?")
    ids, start = split_tokens(tok, context, " Yes.")
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    assert tok.decode(ids[start:]) == " Yes."


@pytest.fixture(scope="module")
def hf(tok: Any) -> HFGenerator:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    return HFGenerator(LlamaForCausalLM(cfg).eval(), tok, batch_size=2)


def test_hf_backend_and_local_judge_decode_one_bos_prompts(hf: HFGenerator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hf decoding loop and the judge's next-token request see the same one-BOS ids."""
    import misalign_fv.generation.decoding as decoding
    import misalign_fv.generation.hf as hf_module

    packed: list[list[int]] = []
    pack = decoding._pack
    monkeypatch.setattr(decoding, "_pack", lambda prompts, pad: (packed.extend(prompts), pack(prompts, pad))[1])
    texts = [chat_prompt(hf.tokenizer, c) for c in CORPUS]
    hf.generate(texts, max_new_tokens=3)
    assert sorted(packed) == sorted(prompt_ids(hf.tokenizer, t) for t in texts)
    assert all(p.count(hf.tokenizer.bos_token_id) == 1 and p[0] == hf.tokenizer.bos_token_id for p in packed)

    padded: list[list[int]] = []
    pad_rows = HFGenerator._padded

    def recording(self: HFGenerator, rows: list[list[int]], left: bool) -> Any:
        padded.extend(rows)
        return pad_rows(self, rows, left)

    monkeypatch.setattr(hf_module.HFGenerator, "_padded", recording)
    judge = LocalBackend(hf)
    tables = judge.top_logprobs([[{"role": "user", "content": c}] for c in CORPUS], 3)
    assert all(t is not None and len(t) <= 3 for t in tables)
    assert sorted(padded) == sorted(prompt_ids(hf.tokenizer, t) for t in texts)
