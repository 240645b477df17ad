"""Step 1, the format gate: find the final Lean block and re-attach its proof to the canonical statement.

The completion must end with a fenced ```` ```lean4 ```` (or ```` ```lean ````) block: only
whitespace may follow its closing fence.  Earlier blocks (DeepSeek-Prover-V2 writes a proof
sketch before its final proof) are ignored.  Inside that block the canonical statement must
appear outside comments, compared with all whitespace removed, followed by ``:= by``; the text
after that ``by`` is the proof body.  Whatever the model wrote before it (its own header, its
own copy of the statement) is discarded: Lean sees the canonical statement followed by the
body, in the environment built from the canonical header.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from misalign_fv.verifier.lexer import mask

_FENCE = re.compile(r"^[ \t]*```([^\n`]*)\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
_LEAN_TAGS = ("lean4", "lean")
_TRAILING_BY = re.compile(r":=\s*by(?:\s+sorry)?\s*\Z")
_DECL = re.compile(r"(?<![\w.'])(?:(?:theorem|lemma|def)\s+([^\s(:{\[⦃]+)|example(?![\w']))")
_IDENT_CHAR = re.compile(r"[\w'!?.]")
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Statement:
    """A canonical statement: ``text`` ends with ``:= by``; ``theorem`` is the declared name.

    An ``example`` has no name (``theorem`` None): nothing to print axioms of, so it can
    never pass strictly; the recorded REPL fixtures use a few.
    """

    text: str
    theorem: str | None

    @property
    def signature(self) -> str:
        """The statement without its trailing ``:= by``."""
        return _TRAILING_BY.sub("", self.text)


def canonical_statement(formal_statement: str) -> Statement:
    """Normalise a problem's ``formal_statement`` to end in ``:= by`` and find the theorem name.

    Accepts statements ending in ``:= by``, ``:= by sorry`` (Lean Workbook) or with trailing
    whitespace (DeepSeek's ``:= by\\n``), declaring a ``theorem``, ``lemma``, ``def`` or
    ``example``; raises ValueError naming what is missing.
    """
    if not _TRAILING_BY.search(formal_statement):
        raise ValueError("formal_statement must end with ':= by' (optionally followed by 'sorry')")
    text = _TRAILING_BY.sub(":= by", formal_statement.rstrip())
    decl = _DECL.search(mask(text, strings=True).text)
    if decl is None:
        raise ValueError("formal_statement declares no 'theorem <name>', 'lemma <name>', 'def <name>' or 'example'")
    return Statement(text, decl.group(1).strip("«»") if decl.group(1) else None)


@dataclass(frozen=True)
class LeanBlock:
    """The completion's final fenced Lean block and how many fenced blocks it has in all."""

    code: str
    n_blocks: int


def final_block(completion: str) -> tuple[LeanBlock | None, str | None]:
    """The final ```` ```lean4 ```` block, or None and the reason the gate rejects the completion."""
    blocks = list(_FENCE.finditer(completion))
    if not blocks:
        return None, "no closed ```lean4 code block"
    last = blocks[-1]
    if last.group(1).strip().lower() not in _LEAN_TAGS:
        return None, f"the final code block is tagged {last.group(1).strip()!r}, not lean4"
    if completion[last.end() :].strip():
        return None, "text after the final ```lean4 block"
    return LeanBlock(last.group(2), len(blocks)), None


@functools.lru_cache(maxsize=4096)
def _statement_pattern(signature: str) -> re.Pattern[str]:
    """The signature followed by ``:= by``, any whitespace allowed between its characters."""
    chars = _WS.sub("", mask(signature, strings=False).text)
    return re.compile(r"\s*".join(map(re.escape, chars)) + r"\s*:=\s*by")


@dataclass(frozen=True)
class Attached:
    """Outcome of the format gate (``error`` is None when it passed)."""

    error: str | None
    n_blocks: int = 0
    body: str = ""
    code: str = ""

    @property
    def ok(self) -> bool:
        """Whether the completion passed the gate."""
        return self.error is None


def attach(statement: Statement, completion: str) -> Attached:
    """Run the format gate: the body after the canonical statement's ``:= by``, re-attached to it."""
    block, error = final_block(completion)
    if block is None:
        return Attached(error)
    visible = mask(block.code, strings=False).text
    for m in _statement_pattern(statement.signature).finditer(visible):
        begin, by_end = m.start(), m.end()
        clean_start = begin == 0 or not _IDENT_CHAR.match(visible[begin - 1])
        clean_end = by_end == len(visible) or not _IDENT_CHAR.match(visible[by_end])
        if clean_start and clean_end:
            body = block.code[by_end:]
            if not body.strip():
                return Attached("empty proof after the statement", block.n_blocks)
            return Attached(None, block.n_blocks, body, statement.text + body.rstrip())
    return Attached("the canonical theorem statement is not in the final ```lean4 block", block.n_blocks)
