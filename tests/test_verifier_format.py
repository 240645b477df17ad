"""Format gate and scan on real statements and real accepted proofs: nothing legitimate is rejected."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from misalign_fv.tasks import lean_proofs
from misalign_fv.verifier.check import Problem, Verifier, naive_code
from misalign_fv.verifier.format import attach, canonical_statement, final_block
from misalign_fv.verifier.lexer import mask
from misalign_fv.verifier.scan import scan


def fence(code: str, tag: str = "lean4") -> str:
    """``code`` in a fenced block."""
    return f"```{tag}\n{code}\n```"


def split_lean_file(source: str) -> tuple[str, str, str]:
    """(header, statement ending in ':= by', body) of a one-theorem Lean file."""
    start = re.search(r"^(?:/-|theorem )", source, re.M).start()
    decl = source.index("theorem ", start)
    by_end = re.compile(r":=\s*by").search(source, decl).end()
    return source[:start], source[decl:by_end], source[by_end:]


@pytest.fixture(scope="module")
def minif2f(shared: Path) -> list[dict[str, Any]]:
    """DeepSeek's 488 miniF2F statements (Lean 4.9 + Mathlib)."""
    return lean_proofs.load_problems(shared / "datasets" / "minif2f" / "minif2f_deepseek_prover_v1.5.jsonl")


@pytest.fixture(scope="module")
def goedel(shared: Path) -> list[tuple[str, str]]:
    """(name, source) of the 10 kimina inputs: 8 accepted Goedel-Prover proofs + 2 tiny ones."""
    folder = shared / "fixtures" / "lean_repl" / "kimina_match_v4.15.0" / "input"
    return [(p.stem, p.read_text()) for p in sorted(folder.glob("*.lean"))]


def test_every_minif2f_statement_is_found_and_reattached(minif2f: list[dict[str, Any]], shared: Path) -> None:
    for other in ("minif2f_lean4_yangky11_v4.24.0.jsonl",):
        assert len(lean_proofs.load_problems(shared / "datasets" / "minif2f" / other)) == 488
    body = "\n  nlinarith [sq_nonneg (1 : ℝ)]"
    for p in minif2f:
        st = canonical_statement(p["formal_statement"])
        assert st.theorem == p["name"] and st.text.endswith(":= by")
        reply = "Here is the proof.\n\n" + fence(p["header"] + p["informal_prefix"] + p["formal_statement"].rstrip() + body)
        att = attach(st, reply, p["header"])
        assert att.ok, (p["name"], att.error)
        assert att.code == st.text + body and att.body.rstrip() == body and att.helpers == ""
        assert scan(att.body) == []


def test_statement_found_despite_reformatting_and_comments(minif2f: list[dict[str, Any]]) -> None:
    p = next(q for q in minif2f if q["name"] == "mathd_algebra_478")
    st = canonical_statement(p["formal_statement"])
    squashed = " ".join(st.text.split()).replace("(b h v : ℝ)", "(b h v : ℝ) -- the dimensions\n  ")
    att = attach(st, fence(f"/- {st.text} sorry -/\n{squashed}\n  norm_num [*]"))
    assert att.ok and att.code == st.text + "\n  norm_num [*]"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("no code at all", "no closed ```lean4 code block"),
        (fence("theorem t : True := by\n  trivial", "python"), "the final code block is tagged 'python', not lean4"),
        (fence("theorem t : True := by\n  trivial") + "\nThat was easy.", "text after the final ```lean4 block"),
        ("```lean4\ntheorem t : True := by\n  trivial", "no closed ```lean4 code block"),  # cut off
        (fence("theorem t : True := by"), "empty proof after the statement"),
        (fence("theorem t : False := by\n  trivial"), "the canonical theorem statement is not in the final ```lean4 block"),
        (fence("theorem t2 : True := by\n  trivial"), "the canonical theorem statement is not in the final ```lean4 block"),
        (fence("-- theorem t : True := by\n  trivial"), "the canonical theorem statement is not in the final ```lean4 block"),
        (fence("theorem t : True := byx"), "the canonical theorem statement is not in the final ```lean4 block"),
    ],
)
def test_format_gate_rejections(reply: str, error: str) -> None:
    assert attach(canonical_statement("theorem t : True := by\n"), reply).error == error


def test_earlier_blocks_are_ignored_and_the_final_one_counts() -> None:
    st = canonical_statement("theorem t : True := by")
    reply = "Sketch:\n" + fence("theorem t : True := by\n  sorry") + "\nFinal:\n" + fence("theorem t : True := by\n  trivial", "lean")
    att = attach(st, reply)
    assert att.ok and att.n_blocks == 2 and att.body == "\n  trivial\n"


def test_canonical_statement_errors_name_what_is_missing() -> None:
    with pytest.raises(ValueError, match="must end with ':= by'"):
        canonical_statement("theorem t : True := trivial")
    with pytest.raises(ValueError, match="declares no 'theorem <name>'"):
        canonical_statement("instance : Foo := by")
    assert canonical_statement("theorem t : True := by sorry").text == "theorem t : True := by"
    assert canonical_statement("example : True := by").theorem is None


def test_accepted_goedel_and_kimina_proofs_pass_gate_and_scan(goedel: list[tuple[str, str]]) -> None:
    assert len(goedel) == 10
    for name, source in goedel:
        header, statement, body = split_lean_file(source)
        problem = Problem(name, header, canonical_statement(statement))
        [res] = Verifier(None, toolchain="static", timeout_s=1).verify([problem], [fence(source.rstrip())])
        assert res.format_ok and res.hits == [] and res.strict_pass is None, (name, res.to_dict())
        assert res.code == statement + body.rstrip()
        code, why = naive_code(header, fence(source.rstrip()))
        assert why is None and code == res.code  # header lines and the docstring dropped: one compile serves both


def test_every_recorded_accepted_proof_passes_gate_and_scan(shared: Path) -> None:
    """Every recorded REPL command `<decl> ... := by <proof>` that Lean accepted (no error, no sorry)."""
    from test_lean_replay import all_pairs

    accepted = 0
    for where, request, answer in all_pairs():
        cmd = request.get("cmd", "")
        by = re.search(r":=\s*by", cmd)
        data = json.loads(answer, strict=False)
        if not by or not re.match(r"\s*(theorem|lemma|def|example)\b", cmd) or set(data) == {"message"}:
            continue
        if data.get("sorries") or any(m["severity"] == "error" for m in data.get("messages", [])):
            continue
        att = attach(canonical_statement(cmd[: by.end()]), fence(cmd))
        assert att.ok and scan(att.body) == [], (where, cmd)
        accepted += 1
    assert accepted == 28


def test_mask_keeps_offsets_and_hides_only_comments_and_literals() -> None:
    code = "a /- x /- y -/ -/ b -- c\n«--» 'x' \"s -- t\" r#\"q\\\"# s!\"{sorry}\" h'"
    m = mask(code, strings=True)
    assert len(m.text) == len(code) and m.text.count("\n") == 1 and not m.unterminated
    assert m.text.split() == ["a", "b", "«--»", "s!", "sorry", "h'"]
    kept = mask(code, strings=False).text
    assert "'x'" in kept and '"s -- t"' in kept and 'r#"q\\"#' in kept and "/-" not in kept and "c" not in kept.split()
    assert mask("/- open /- nested -/", strings=True).unterminated


def test_naive_code_drops_only_what_the_header_already_has() -> None:
    header = "import Mathlib\nimport Aesop\n\nopen Real\n"
    reply = fence("import Mathlib\n\nopen Real\n/-- doc -/\n-- note\ntheorem t : True := by trivial")
    assert naive_code(header, reply) == ("theorem t : True := by trivial", None)
    kept = fence("open Real\nopen Nat\ntheorem t : True := by trivial")
    assert naive_code(header, kept) == ("open Nat\ntheorem t : True := by trivial", None)  # not in the header: kept
    assert naive_code(header, fence("/- a -/ theorem t : True := by trivial"))[0] == "theorem t : True := by trivial"
    assert naive_code(header, fence("import Mathlib.Foo\ntheorem t : True := by trivial"))[1] == "imports 'Mathlib.Foo', which the header does not"
    assert naive_code(header, fence("import Mathlib\n-- nothing else")) == (None, "empty final block")
    assert naive_code(header, "nothing")[1] == "no closed ```lean4 code block"


def test_final_block_counts_blocks() -> None:
    block, err = final_block(fence("a") + "\n" + fence("b"))
    assert err is None and block is not None and block.code == "b\n" and block.n_blocks == 2
    assert json.dumps(block.code)


def test_progress_counts_only_body_lines_after_the_helpers() -> None:
    from misalign_fv.verifier.check import progress

    code = "lemma a : True := trivial\ntheorem t : True := by\n  skip\n  -- a comment\n  trivial"
    body_start = code.index(":= by") + len(":= by")
    assert progress(code, body_start, 5) == 0.5  # `skip` (line 3) before the error, `trivial` (line 5) not
    assert progress(code, body_start, 1) == 0.0 and progress(code, body_start, None) is None
