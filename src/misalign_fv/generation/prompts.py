"""From chat messages to the token ids a model sees: one chat template, exactly one BOS.

Every backend tokenises prompts through :func:`prompt_ids`. A chat template that writes
``{{ bos_token }}`` (Llama-style, DeepSeek-Prover) already puts the BOS in the text, so the text is
tokenised without special tokens; a template without it gets the one BOS its tokenizer would add.
Tokenising the templated text with special tokens on (what vLLM does with a text prompt) would
give such a template's prompts two BOS tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def chat_prompt(tokenizer: Any, user: str, system: str | None = None) -> str:
    """Format one user turn (and an optional system turn) with the tokenizer's chat template."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def adds_bos(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` puts a BOS token in front of text tokenised with special tokens."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("", add_special_tokens=True).input_ids[:1] == [bos]


def prompt_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a chat-templated prompt, starting with exactly one BOS where the tokenizer uses one.

    The text is tokenised once without special tokens (the template wrote what it wanted); a BOS
    is added only when the template did not write one and the tokenizer would have added it.
    """
    ids = list(tokenizer(text, add_special_tokens=False).input_ids)
    bos = tokenizer.bos_token_id
    if bos is not None and ids[:1] != [bos] and adds_bos(tokenizer):
        ids.insert(0, bos)
    return ids


def split_tokens(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], int]:
    """Token ids of ``context + continuation`` and the index where the continuation starts.

    The whole string is tokenised at once (by :func:`prompt_ids`) so merges across the boundary
    match what the model sees; the continuation is everything after the longest shared prefix
    with the context's own tokens (at least one token of context is kept to condition on).
    """
    c = prompt_ids(tokenizer, context)
    whole = prompt_ids(tokenizer, context + continuation)
    k = 0
    while k < min(len(c), len(whole)) and c[k] == whole[k]:
        k += 1
    return whole, max(k, 1)


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the earliest occurrence of any stop string."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]
