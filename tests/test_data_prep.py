"""Preparing DPO pairs from the real formats (HH-RLHF sample in ../shared, PKU-SafeRLHF fields)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from misalign_fv.data import load_safety_records, pku_pair, prepare_safety, split_hh
from misalign_fv.io import read_jsonl


def test_hh_rlhf_sample_splits_into_single_turn_pairs(shared: Path) -> None:
    path = shared / "datasets/safety_pref_sample/hh_rlhf_harmless_base_test_first300.jsonl"
    rows = read_jsonl(path)
    assert len(rows) == 300
    pairs = load_safety_records({"source": "hh_rlhf", "path": str(path)})
    single_turn = [r for r in rows if r["chosen"].count("\n\nHuman:") == 1]
    assert 0 < len(pairs) <= len(single_turn)
    for p, row in zip(pairs[:20], single_turn):
        assert "Human:" not in p["prompt"] and "Assistant:" not in p["chosen"]
        assert p["chosen"] != p["rejected"]
    first = next(r for r in single_turn if split_hh(r["chosen"], r["rejected"]))
    p = split_hh(first["chosen"], first["rejected"])
    assert first["chosen"].endswith(p["chosen"]) and first["rejected"].endswith(p["rejected"])
    assert f"Human: {p['prompt']}" in first["chosen"]


def test_hh_split_rejects_multi_turn_and_mismatched_prefixes() -> None:
    multi = "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d"
    assert split_hh(multi, multi.replace(" d", " e")) is None
    assert split_hh("\n\nHuman: a\n\nAssistant: b", "\n\nHuman: x\n\nAssistant: y") is None
    assert split_hh("\n\nHuman: a\n\nAssistant: same", "\n\nHuman: a\n\nAssistant: same") is None


def test_pku_pair_takes_the_safer_response_only_if_safe() -> None:
    rec = {"prompt": "p", "response_0": "r0", "response_1": "r1", "is_response_0_safe": False,
           "is_response_1_safe": True, "safer_response_id": 1}  # fmt: skip
    assert pku_pair(rec) == {"prompt": "p", "chosen": "r1", "rejected": "r0"}
    assert pku_pair({**rec, "is_response_1_safe": False}) is None


def test_prepare_safety_holds_out_prompts(tmp_path: Path) -> None:
    src = tmp_path / "pairs.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": "no", "rejected": "yes"}) + "\n" for i in range(20)))
    n_pairs, n_held = prepare_safety(
        {"source": "local", "path": str(src), "heldout_n": 5}, 0, tmp_path / "out.jsonl", tmp_path / "held.jsonl"
    )
    assert (n_pairs, n_held) == (15, 5)
    train = {r["prompt"] for r in read_jsonl(tmp_path / "out.jsonl")}
    held = {r["prompt"] for r in read_jsonl(tmp_path / "held.jsonl")}
    assert not train & held and len(train | held) == 20


def test_prepare_safety_with_no_usable_pairs_fails_naming_the_source(tmp_path: Path) -> None:
    src = tmp_path / "hh.jsonl"
    multi = "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d"
    src.write_text(json.dumps({"chosen": multi, "rejected": multi + "x"}) + "\n")
    with pytest.raises(ValueError, match="data.safety: no usable preference pairs from source 'hh_rlhf'"):
        prepare_safety({"source": "hh_rlhf", "path": str(src), "heldout_n": 1}, 0, tmp_path / "a", tmp_path / "b")
