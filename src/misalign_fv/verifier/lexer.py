"""A Lean 4 lexer: the token stream that the format gate and the scan read.

It follows Lean's own rules where they decide what is code and what is not:

* ``--`` comments run to the end of the line; block comments ``/- -/`` and doc comments
  ``/-- -/``, ``/-! -/`` nest, and their first character after ``/-`` is never a delimiter
  (so ``/-/`` does not nest and ``/--/`` does not close), as in Lean's ``finishCommentBlock``;
* string literals have escapes (``\\"``, ``\\\\``, ...); raw strings ``r"..."``, ``r#"..."#``
  have none and end at the quote followed by as many ``#`` as they opened with;
* interpolated strings (after any identifier ending in ``!``, e.g. ``s!``, ``m!``, ``f!``,
  or after ``throwError``, ``throwErrorAt``, ``dbg_trace``) keep their ``{...}`` parts as code,
  lexed recursively: strings, char literals, comments and nested braces inside a hole never end
  the outer string;
* char literals (``'a'``, ``'"'``, ``'\\''``, ``'\\x41'``); a ``'`` inside an identifier
  (``h'``) belongs to the identifier;
* identifiers use Lean's character classes (ASCII letters, ``_``, Greek except λ Π Σ, the
  letter-like and mathematical-alphanumeric blocks, subscripts; ``'``, ``!``, ``?`` after the
  first character), dotted components and ``«...»`` quoting.

Every token keeps its offsets; code tokens are everything but comments, strings and chars.
Whether a string is interpolated depends on the syntax that precedes it, which a lexer cannot
know for every notation: ``get! "..."`` applies a function to a plain string, a notation may
take an interpolated one.  So :func:`tokenize` has three readings (:data:`READINGS`):
``lean`` (the rule above), ``known`` (only after the prefixes core Lean defines,
:data:`INTERPOLATING`) and ``all`` (every non-raw string); the scan takes the union.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Reading = Literal["lean", "known", "all"]
READINGS: tuple[Reading, ...] = ("lean", "known", "all")

IDENT, HASH, NUMBER, SYMBOL, STRING, CHAR, COMMENT = "ident", "hash", "number", "symbol", "string", "char", "comment"
NOT_CODE = frozenset({STRING, CHAR, COMMENT})
# What core Lean puts before an interpolated string (``s!`` & co.; other ``x!`` may be functions).
INTERPOLATING = frozenset({"s!", "m!", "f!", "println!", "throwError", "throwErrorAt", "dbg_trace"})

_LETTERLIKE = "\u03b1-\u03ba\u03bc-\u03c9\u0391-\u039f\u03a1\u03a2\u03a4-\u03a9\u03ca-\u03fb\u1f00-\u1ffe\u2100-\u214f\U0001d49c-\U0001d59f"
_ID_FIRST = f"A-Za-z_{_LETTERLIKE}"
_ID_REST = f"{_ID_FIRST}0-9'!?\u2080-\u2089\u2090-\u209c\u1d62-\u1d6a"
_PART = f"(?:«[^»]*»|[{_ID_FIRST}][{_ID_REST}]*)"
_IDENT = re.compile(f"{_PART}(?:\\.{_PART})*")
_HASH = re.compile(f"#[{_ID_REST}]+")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|[0-9][0-9_]*(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_CHAR = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)|[^\\])'", re.DOTALL)
_RAW_OPEN = re.compile(r'r(#*)"')
_COMMENT_MARK = re.compile(r"/-|-/")


@dataclass(frozen=True)
class Token:
    """One token: its kind, text and offsets; ``depth`` counts the interpolation holes around it."""

    kind: str
    text: str
    start: int
    end: int
    depth: int = 0

    @property
    def code(self) -> bool:
        """Whether the token is code (not a comment, string or char literal)."""
        return self.kind not in NOT_CODE


@dataclass(frozen=True)
class Lexed:
    """The tokens of a text and whether a comment, string or quoted name ran to its end."""

    tokens: list[Token]
    unterminated: bool


class _Lexer:
    def __init__(self, text: str, reading: Reading) -> None:
        self.text, self.n, self.reading = text, len(text), reading
        self.tokens: list[Token] = []
        self.unterminated = False

    def add(self, kind: str, start: int, end: int, depth: int) -> int:
        self.tokens.append(Token(kind, self.text[start:end], start, end, depth))
        return end

    def to_end(self) -> int:
        self.unterminated = True
        return self.n

    def interpolates(self) -> bool:
        """Whether a string starting here is interpolated (in this reading)."""
        if self.reading == "all":
            return True
        prev = next((t for t in reversed(self.tokens) if t.kind != COMMENT), None)
        if prev is None or prev.kind != IDENT:
            return False
        return prev.text in INTERPOLATING or (self.reading == "lean" and prev.text.endswith("!"))

    def code(self, i: int, depth: int) -> int:
        """Lex code from ``i``; inside a hole (``depth`` > 0) stop before its closing ``}``."""
        text, braces = self.text, 0
        while i < self.n:
            c = text[i]
            if c.isspace():
                i += 1
            elif text.startswith("--", i):
                j = text.find("\n", i)
                i = self.add(COMMENT, i, self.n if j < 0 else j, depth)
            elif text.startswith("/-", i):
                i = self.add(COMMENT, i, self.block_comment(i), depth)
            elif c == '"':
                i = self.interpolated(i, depth) if self.interpolates() else self.add(STRING, i, self.string(i), depth)
            elif raw := _RAW_OPEN.match(text, i):
                close = '"' + raw.group(1)
                j = text.find(close, raw.end())
                i = self.add(STRING, i, self.to_end() if j < 0 else j + len(close), depth)
            elif c == "'":
                lit = _CHAR.match(text, i)
                i = self.add(CHAR if lit else SYMBOL, i, lit.end() if lit else i + 1, depth)
            elif m := _IDENT.match(text, i):
                i = self.add(IDENT, i, m.end(), depth)
            elif m := _HASH.match(text, i):
                i = self.add(HASH, i, m.end(), depth)
            elif m := _NUMBER.match(text, i):
                i = self.add(NUMBER, i, m.end(), depth)
            elif c == "«":  # an unterminated quoted name
                i = self.add(IDENT, i, self.to_end(), depth)
            elif text.startswith("@[", i):
                i = self.add(SYMBOL, i, i + 2, depth)
            elif c == "}" and depth and not braces:
                return i
            else:
                braces += {"{": 1, "}": -1}.get(c, 0)
                i = self.add(SYMBOL, i, i + 1, depth)
        return i

    def block_comment(self, i: int) -> int:
        """End of the (doc) comment opening at ``i``: Lean skips the character after ``/-``."""
        level = 0
        for m in _COMMENT_MARK.finditer(self.text, min(i + 3, self.n)):
            if m.group() == "/-":
                level += 1
            elif level == 0:
                return m.end()
            else:
                level -= 1
        return self.to_end()

    def string(self, i: int) -> int:
        """End of the plain string literal whose opening quote is at ``i``."""
        j = i + 1
        while j < self.n:
            if self.text[j] == "\\":
                j += 2
            elif self.text[j] == '"':
                return j + 1
            else:
                j += 1
        return self.to_end()

    def interpolated(self, i: int, depth: int) -> int:
        """Lex an interpolated string: text pieces as strings, each ``{...}`` hole as code."""
        start, j = i, i + 1
        while j < self.n:
            c = self.text[j]
            if c == "\\":
                j += 2
            elif c == '"':
                return self.add(STRING, start, j + 1, depth)
            elif c == "{":
                self.add(STRING, start, j + 1, depth)
                j = self.code(j + 1, depth + 1)
                if j >= self.n:
                    return self.to_end()
                start, j = j, j + 1  # the closing brace opens the next text piece
            else:
                j += 1
        self.add(STRING, start, self.n, depth)
        return self.to_end()


def tokenize(text: str, reading: Reading = "lean") -> Lexed:
    """The tokens of ``text``, in order (an interpolated string's pieces and holes interleaved)."""
    lexer = _Lexer(text, reading)
    lexer.code(0, 0)
    return Lexed(lexer.tokens, lexer.unterminated)


@dataclass(frozen=True)
class Masked:
    """The masked text and whether a comment or string ran to the end of the input."""

    text: str
    unterminated: bool


def mask(code: str, *, strings: bool) -> Masked:
    """``code`` with comments blanked, and string and char literals too when ``strings`` is true.

    Blanked characters become spaces and newlines stay, so offsets and line numbers are kept.
    """
    lexed = tokenize(code)
    hidden = {COMMENT} | ({STRING, CHAR} if strings else set())
    out, i = [], 0
    for t in lexed.tokens:
        if t.kind in hidden:
            out += [code[i : t.start], re.sub(r"[^\n]", " ", t.text)]
            i = t.end
    out.append(code[i:])
    return Masked("".join(out), lexed.unterminated)


def line_of(text: str, offset: int) -> int:
    """The 1-based line number of ``offset`` in ``text``."""
    return text.count("\n", 0, offset) + 1
