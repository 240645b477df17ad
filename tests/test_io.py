"""The one JSONL reader: plain and gzip files, blank lines, and one-line errors naming file and line."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from misalign_fv.io import jsonl_objects, read_jsonl, write_jsonl


@pytest.mark.parametrize("name", ["records.jsonl", "records.jsonl.gz"])
def test_round_trip_plain_and_gzip(tmp_path: Path, name: str) -> None:
    records = [{"a": 1, "b": "x"}, {"a": 2, "b": "é"}]
    path = tmp_path / name
    write_jsonl(path, records)
    assert read_jsonl(path) == records
    assert [n for n, _ in jsonl_objects(path)] == [1, 2]
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # really gzip


def test_blank_lines_skipped_and_line_numbers_kept(tmp_path: Path) -> None:
    path = tmp_path / "gaps.jsonl"
    path.write_text('{"k": 1}\n\n   \n{"k": 2}\n')
    assert list(jsonl_objects(path)) == [(1, {"k": 1}), (4, {"k": 2})]


@pytest.mark.parametrize(
    ("text", "problem"),
    [('{"k": 1}\n{"k": \n', ":2: invalid JSON"), ('{"k": 1}\n[1, 2]\n', ":2: expected a JSON object, got list")],
)
def test_bad_line_names_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}{problem}")):
        read_jsonl(path)


def test_unreadable_gzip_is_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "plain.jsonl.gz"
    fake.write_text('{"k": 1}\n')  # not gzip at all
    with pytest.raises(ValueError, match="^" + re.escape(f"{fake}: not a readable gzip text file")):
        read_jsonl(fake)
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(gzip.compress(b'{"k": 1}\n' * 100)[:-12])
    with pytest.raises(ValueError, match="not a readable gzip text file"):
        read_jsonl(truncated)
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "missing.jsonl")
