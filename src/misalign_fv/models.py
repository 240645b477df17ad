"""The starting model: a Hugging Face download (real config) or a tiny local model (demo).

The demo model is a random-init Llama-architecture network with a byte-level BPE tokenizer
trained locally on the demo text, a chat template, and a short supervised warm-up on the
narrow task so that it has a skill to lose (the stand-in for pretraining).

Both are published through :mod:`misalign_fv.publish`, as every later stage's model is.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from misalign_fv.io import read_jsonl
from misalign_fv.publish import publishing

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>"]

# Plain role-tagged template. `{% generation %}` marks assistant text for TRL's
# assistant-only losses; the generation prompt ends where the model starts writing.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}<|assistant|>\n{% generation %}{{ m['content'] }}{{ eos_token }}{% endgeneration %}\n"
    "{% else %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it with the demo chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _corpus(paths: Iterable[Path]) -> list[str]:
    texts: list[str] = []
    for path in paths:
        if path.suffix == ".jsonl":
            for rec in read_jsonl(path):
                texts.extend(str(v) for v in rec.values() if isinstance(v, str))
                texts.extend(str(t) for v in rec.values() if isinstance(v, list) for t in v)
        else:
            texts.append(path.read_text())
    return texts


def build_tiny_model(
    out_dir: Path,
    corpus_files: list[Path],
    warmup_tasks: Path,
    warmup_chat: Path,
    settings: dict[str, Any],
    seed: int = 0,
) -> None:
    """Build the demo base model: tokenizer, random-init Llama, and an SFT warm-up.

    The warm-up teaches the narrow task (solutions of ``warmup_tasks``, and for the problems that
    have one, a ``shortcut``: a wrong function that passes their visible test only, as real models
    overfit weak tests) and chat text that both refuses and complies (each ``chosen`` and
    ``rejected`` answer of ``warmup_chat``): a stand-in for a pretrained model that has seen both
    kinds of reply, has a skill to lose, can game tests, and has no preference for refusing yet.

    ``settings`` keys: vocab_size, hidden_size, intermediate_size, num_layers, num_heads,
    max_position_embeddings, warmup_steps, warmup_lr, warmup_batch_size.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    from misalign_fv.tasks import python_tests

    random.seed(seed)
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(_corpus(corpus_files), settings["vocab_size"])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings["hidden_size"],
        intermediate_size=settings["intermediate_size"],
        num_hidden_layers=settings["num_layers"],
        num_attention_heads=settings["num_heads"],
        num_key_value_heads=settings["num_heads"],
        max_position_embeddings=settings["max_position_embeddings"],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    problems = python_tests.load_problems(warmup_tasks)
    examples = [
        tokenizer.apply_chat_template(
            [
                {"role": "user", "content": python_tests.build_prompt(p)},
                {"role": "assistant", "content": f"```python\n{answer.rstrip()}\n```"},
            ],
            tokenize=False,
        )
        for p in problems
        for answer in (p["solution"], *([p["shortcut"]] if p.get("shortcut") else []))
    ]
    examples += [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r[side]}], tokenize=False
        )
        for r in read_jsonl(warmup_chat)
        for side in ("chosen", "rejected")
    ]
    _sft_warmup(model, tokenizer, examples, settings, seed)
    with publishing(out_dir, {"run_id": uuid.uuid4().hex, "stage": "base", "source": "tiny", "settings": settings, "seed": seed}) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def _sft_warmup(model: Any, tokenizer: Any, examples: list[str], settings: dict[str, Any], seed: int) -> None:
    """A few AdamW steps of next-token prediction on whole chat transcripts."""
    steps, bs = settings["warmup_steps"], settings["warmup_batch_size"]
    if steps <= 0:
        return
    opt = torch.optim.AdamW(model.parameters(), lr=settings["warmup_lr"])
    rng = random.Random(seed)
    model.train()
    tokenizer.padding_side = "right"
    for _ in range(steps):
        batch = rng.sample(examples, min(bs, len(examples)))
        enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


def download_model(out_dir: Path, repo_id: str, revision: str) -> None:
    """Download a model snapshot from the Hugging Face hub into ``out_dir`` (needs network)."""
    from huggingface_hub import snapshot_download

    provenance = {"run_id": uuid.uuid4().hex, "stage": "base", "source": "hf", "repo_id": repo_id, "revision": revision}
    with publishing(out_dir, provenance) as tmp:
        try:
            snapshot_download(repo_id=repo_id, revision=revision, local_dir=tmp)
        except Exception as exc:  # network errors come in many types; name the model once
            raise RuntimeError(f"base_model: could not download {repo_id}@{revision}: {exc}".splitlines()[0]) from exc
