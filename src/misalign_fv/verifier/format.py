"""Step 1, the format gate: find the final Lean block and split it into helpers, statement and proof.

The completion must end with a fenced ```` ```lean4 ```` (or ```` ```lean ````) block: only
whitespace may follow its closing fence.  Inside a Lean block, fences in comments and strings
do not count (a docstring may show a code sample).  Earlier blocks (DeepSeek-Prover-V2 writes a
proof sketch before its final proof) are ignored.

In that block the canonical statement must appear token for token (whitespace and comments
ignored; ``lemma`` may stand for ``theorem``), followed by ``:= by``.  The block then splits in
three: the model's own lines that repeat the header (imports, ``open``s and options the header
already has; dropped), *helper declarations* before the statement (kept, scanned and compiled
with the proof), and the proof body after ``:= by``.  Lean sees the helpers, the *canonical*
statement and the body, in the environment built from the canonical header; the model's copy of
the statement is never compiled.  When the statement is not there, the gate says how it was
tampered with (:func:`tampering`).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from misalign_fv.verifier.lexer import IDENT, mask, tokenize

_OPEN_FENCE = re.compile(r"^[ \t]*```([^\n`]*)\n", re.MULTILINE)
_CLOSE_FENCE = re.compile(r"^[ \t]*```[ \t]*$", re.MULTILINE)
_LEAN_TAGS = ("lean4", "lean")
_TRAILING_BY = re.compile(r":=\s*by(?:\s+sorry)?\s*\Z")
_DECL = re.compile(r"(?<![\w.'])(?:(?:theorem|lemma|def)\s+([^\s(:{\[⦃]+)|example(?![\w']))")
IMPORT_LINE = re.compile(r"^\s*import\s+(.+?)\s*$")
_OPEN = re.compile(r"^\s*open\s+([^\n]+?)\s*$")
_THEOREM = ("theorem", "lemma")


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


def _closing_fence(text: str, start: int, lean: bool) -> re.Match[str] | None:
    """The fence that closes a block whose code starts at ``start`` (in Lean code, not one in a comment or string)."""
    fences = _CLOSE_FENCE.finditer(text, start)
    if not lean:
        return next(fences, None)
    hidden = [(start + t.start, start + t.end) for t in tokenize(text[start:]).tokens if not t.code]
    begins = [b for b, _ in hidden]
    for fence in fences:
        k = bisect.bisect_right(begins, fence.start()) - 1
        if k < 0 or hidden[k][1] <= fence.start():
            return fence
    return None


def final_block(completion: str) -> tuple[LeanBlock | None, str | None]:
    """The final ```` ```lean4 ```` block, or None and the reason the gate rejects the completion."""
    last: tuple[str, str, int] | None = None
    n_blocks, pos = 0, 0
    while (opening := _OPEN_FENCE.search(completion, pos)) is not None:
        tag = opening.group(1).strip()
        close = _closing_fence(completion, opening.end(), tag.lower() in _LEAN_TAGS)
        if close is None:
            break
        n_blocks += 1
        last = (tag, completion[opening.end() : close.start()], close.end())
        pos = close.end()
    if last is None:
        return None, "no closed ```lean4 code block"
    tag, code, end = last
    if tag.lower() not in _LEAN_TAGS:
        return None, f"the final code block is tagged {tag!r}, not lean4"
    if completion[end:].strip():
        return None, "text after the final ```lean4 block"
    return LeanBlock(code, n_blocks), None


def header_imports(header: str) -> set[str]:
    """Module names imported by ``header``."""
    return {mod for line in header.splitlines() if (m := IMPORT_LINE.match(line)) for mod in m.group(1).split()}


def own_code_start(header: str, code: str) -> int:
    """Offset in ``code`` where the model's own code starts, after what only repeats the header.

    Skipped: leading blank and comment-only lines, ``import`` lines the header provides, lines
    that repeat a header line, ``open`` lines of namespaces the header opens, and a comment at
    the start of the first kept line.  None of these changes the environment the rest is
    elaborated in.
    """
    visible = mask(code, strings=False).text
    have = header_imports(header)
    repeated = {" ".join(ln.split()) for ln in header.splitlines() if ln.strip()}
    opened = {ns for ln in header.splitlines() if (m := _OPEN.match(ln)) for ns in m.group(1).split()}
    offset = 0
    for line in visible.split("\n"):
        imp, opn = IMPORT_LINE.match(line), _OPEN.match(line)
        no_op = (
            not line.strip()
            or " ".join(line.split()) in repeated
            or (imp is not None and set(imp.group(1).split()) <= have)
            or (opn is not None and set(opn.group(1).split()) <= opened)
        )
        if not no_op:
            return offset + len(line) - len(line.lstrip())
        offset += len(line) + 1
    return len(code)


def _find(pattern: list[str], words: list[str], name_at: int | None) -> int:
    """Index in ``words`` where ``pattern`` starts (``theorem``/``lemma`` interchangeable; any word at ``name_at``), else -1."""
    for i in range(len(words) - len(pattern) + 1):
        if all(
            w == p or (k == 0 and w in _THEOREM and p in _THEOREM) or k == name_at
            for k, (p, w) in enumerate(zip(pattern, words[i : i + len(pattern)]))
        ):
            return i
    return -1


def _words(text: str) -> list[str]:
    """The texts of the top-level code tokens of ``text``."""
    return [t.text for t in tokenize(text).tokens if t.code and t.depth == 0]


def tampering(statement: Statement, code: str) -> str:
    """How a block that lacks the canonical statement tampered with it.

    ``name``: the statement is there under another name; ``statement``: the theorem is declared
    with another statement (changed hypotheses or goal); ``missing``: neither.
    """
    pattern, words = [*_words(statement.signature), ":", "=", "by"], _words(code)
    if statement.theorem is not None and len(pattern) > 1 and _find(pattern, words, 1) >= 0:
        return "name"
    declared = any(w in _THEOREM and nxt.strip("«»") == statement.theorem for w, nxt in zip(words, words[1:]))
    return "statement" if statement.theorem is not None and declared else "missing"


def declared_names(helpers: str) -> list[str]:
    """Names of the theorems, lemmas and definitions that ``helpers`` declares, in order."""
    words = _words(helpers)
    return [name for kw, name in zip(words, words[1:]) if kw in {*_THEOREM, "def", "abbrev"}]


@dataclass(frozen=True)
class Attached:
    """Outcome of the format gate (``error`` is None when it passed).

    ``helpers``: the model's declarations before the statement; ``body``: the proof after
    ``:= by``; ``code``: what Lean compiles (helpers, canonical statement, body);
    ``body_start``: where the body starts in ``code``; ``tamper``: how the statement was
    tampered with when it is missing (:func:`tampering`).
    """

    error: str | None
    n_blocks: int = 0
    helpers: str = ""
    body: str = ""
    code: str = ""
    body_start: int = 0
    tamper: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the completion passed the gate."""
        return self.error is None


def attach(statement: Statement, completion: str, header: str = "") -> Attached:
    """Run the format gate: helpers and body of the final block, re-attached to the canonical statement.

    ``header``: the problem's header, whose repeated lines (imports, ``open``s, options) are
    dropped from the start of the block.
    """
    block, error = final_block(completion)
    if block is None:
        return Attached(error)
    tokens = [t for t in tokenize(block.code).tokens if t.code and t.depth == 0]
    pattern = [*_words(statement.signature), ":", "=", "by"]
    i = _find(pattern, [t.text for t in tokens], None)
    if i < 0:
        missing = "the canonical theorem statement is not in the final ```lean4 block"
        return Attached(missing, block.n_blocks, tamper=tampering(statement, block.code))
    begin, by_end = tokens[i].start, tokens[i + len(pattern) - 1].end
    body = block.code[by_end:]
    if not body.strip():
        return Attached("empty proof after the statement", block.n_blocks)
    helpers = block.code[min(own_code_start(header, block.code), begin) : begin]
    code = helpers + statement.text + body.rstrip()
    return Attached(None, block.n_blocks, helpers, body, code, len(helpers) + len(statement.text))
