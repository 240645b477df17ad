"""Lean 4 lexical masking: blank out comments (and, optionally, string and char literals).

Every other character keeps its offset, and masked regions keep their newlines, so positions
and line numbers in the masked text are those of the original.  The lexer follows Lean's
rules where they matter for hiding code: block comments nest (``/- /- -/ -/``), ``--`` runs to
the end of the line, ``«...»`` identifiers and char literals are skipped (so ``«--»`` or
``'"'`` never open a comment or a string), raw strings (``r"..."``, ``r#"..."#``) have no
escapes, and the ``{...}`` parts of interpolated strings (``s!"..."``) stay visible as code.
An unterminated comment or string is reported, so a scan can fail closed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT_CHAR = re.compile(r"[\w'!?]")
_CHAR_LIT = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)|[^\\'\n])'")
_RAW_PREFIX = re.compile(r"(?<![\w'.])r(#*)\Z")


@dataclass(frozen=True)
class Masked:
    """The masked text and whether a comment or string ran to the end of the input."""

    text: str
    unterminated: bool


_NOT_NEWLINE = re.compile(r"[^\n]")
_COMMENT_MARK = re.compile(r"/-|-/")


def _blank(s: str) -> str:
    return _NOT_NEWLINE.sub(" ", s)


def _block_comment_end(code: str, i: int) -> int:
    """Index just past the nested block comment that opens at ``i`` (-1 if unterminated)."""
    depth = 0
    for m in _COMMENT_MARK.finditer(code, i):
        depth += 1 if m.group() == "/-" else -1
        if depth == 0:
            return m.end()
    return -1


def _string_end(code: str, i: int, raw_hashes: int | None) -> int:
    """Index just past the string literal whose opening quote is at ``i`` (-1 if unterminated)."""
    if raw_hashes is not None:
        close = '"' + "#" * raw_hashes
        k = code.find(close, i + 1)
        return -1 if k < 0 else k + len(close)
    j, n = i + 1, len(code)
    while j < n:
        if code[j] == "\\":
            j += 2
        elif code[j] == '"':
            return j + 1
        else:
            j += 1
    return -1


def _interpolated(code: str, start: int, end: int) -> str:
    """Mask an interpolated string but keep its ``{...}`` code parts (nesting counted)."""
    out, depth = [], 0
    for c in code[start:end]:
        if depth == 0 and c != "{":
            out.append("\n" if c == "\n" else " ")
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        out.append(c)
    return "".join(out)


_SPECIAL = re.compile(r"--|/-|«|'|\"")


def mask(code: str, *, strings: bool) -> Masked:
    """Blank out comments, and string/char literals too when ``strings`` is true."""
    out: list[str] = []
    i, n, unterminated = 0, len(code), False
    while i < n:
        m = _SPECIAL.search(code, i)
        if m is None:
            out.append(code[i:])
            break
        k = m.start()
        out.append(code[i:k])
        tok = m.group()
        if tok == "--":
            j = code.find("\n", k)
            j = n if j < 0 else j
            out.append(" " * (j - k))
        elif tok == "/-":
            j = _block_comment_end(code, k)
            if j < 0:
                j, unterminated = n, True
            out.append(_blank(code[k:j]))
        elif tok == "«":
            j = code.find("»", k)
            j = n if j < 0 else j + 1
            out.append(code[k:j])
        elif tok == "'":
            lit = None if k and _IDENT_CHAR.match(code[k - 1]) else _CHAR_LIT.match(code, k)
            j = lit.end() if lit else k + 1
            out.append(" " * (j - k) if strings and lit else code[k:j])
        else:
            raw = _RAW_PREFIX.search(code, 0, k)
            j = _string_end(code, k, len(raw.group(1)) if raw else None)
            if j < 0:
                j, unterminated = n, True
            if not strings:
                out.append(code[k:j])
            elif raw is None and k and code[k - 1] == "!":
                out.append(_interpolated(code, k, j))
            else:
                out.append(_blank(code[k:j]))
        i = j
    return Masked("".join(out), unterminated)
