"""The one model publish step: atomic, with a provenance marker, never a half-written model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from misalign_fv.publish import MARKER, publish_model, publishing


def _model(path: Path, tag: str) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"tag": tag}))
    (path / "model.safetensors").write_bytes(tag.encode() * 10)
    return path


def test_publish_copies_the_model_and_writes_provenance(tmp_path: Path) -> None:
    src = _model(tmp_path / "final", "new")
    out = tmp_path / "results" / "dpo" / "model"
    publish_model(src, out, {"run_id": "r1", "stage": "dpo", "resumed_from": 4})
    assert json.loads((out / "config.json").read_text()) == {"tag": "new"}
    assert (out / "model.safetensors").read_bytes() == b"new" * 10
    assert json.loads((out / MARKER).read_text()) == {"resumed_from": 4, "run_id": "r1", "stage": "dpo"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]  # no temporary folder left behind
    assert (src / "config.json").is_file() and not (src / MARKER).exists()  # the source is untouched


def test_a_republish_replaces_the_old_model_whole(tmp_path: Path) -> None:
    out = tmp_path / "model"
    publish_model(_model(tmp_path / "a", "old"), out, {"run_id": "r1", "stage": "grpo"})
    (out / "stale.bin").write_bytes(b"x")
    publish_model(_model(tmp_path / "b", "new"), out, {"run_id": "r2", "stage": "grpo", "step": 8})
    assert not (out / "stale.bin").exists()
    assert json.loads((out / MARKER).read_text())["run_id"] == "r2"


def test_a_failed_publish_keeps_the_previous_model(tmp_path: Path) -> None:
    out = tmp_path / "model"
    publish_model(_model(tmp_path / "a", "old"), out, {"run_id": "r1", "stage": "base"})
    with pytest.raises(RuntimeError, match="disk full"), publishing(out, {"run_id": "r2", "stage": "base"}) as tmp:
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("disk full")
    assert json.loads((out / MARKER).read_text())["run_id"] == "r1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "model"]


def test_bad_inputs_fail_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="provenance lacks run_id"):
        publish_model(_model(tmp_path / "a", "x"), tmp_path / "out", {"stage": "dpo"})
    with pytest.raises(FileNotFoundError, match="not a saved model"):
        publish_model(tmp_path / "missing", tmp_path / "out", {"run_id": "r", "stage": "dpo"})
    assert not (tmp_path / "out").exists()
