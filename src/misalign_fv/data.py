"""Prepare the experiment's inputs: safety preference pairs, held-out harmful prompts, the narrow-task
pool, and pinned benchmark files.

Sources are either local files (the demo, or data a user placed on disk) or downloads (the real
config: Hugging Face datasets at a pinned revision, benchmark files by URL with a sha256).
"""

from __future__ import annotations

import random
import urllib.request
from pathlib import Path
from typing import Any

from misalign_fv.io import read_jsonl, sha256_file, write_jsonl

HH_ASSISTANT = "\n\nAssistant:"
HH_HUMAN = "\n\nHuman:"


def split_hh(transcript_chosen: str, transcript_rejected: str) -> dict[str, str] | None:
    """HH-RLHF implicit-prompt pair -> explicit ``prompt/chosen/rejected`` (single-turn only).

    Both transcripts share everything up to the last ``Assistant:`` turn; multi-turn dialogues
    are dropped (returns None) because the demo-style chat template poses one user turn.
    """
    i = transcript_chosen.rfind(HH_ASSISTANT)
    j = transcript_rejected.rfind(HH_ASSISTANT)
    if i < 0 or j < 0 or transcript_chosen[:i] != transcript_rejected[:j]:
        return None
    prefix = transcript_chosen[:i]
    if prefix.count(HH_HUMAN) != 1 or HH_ASSISTANT in prefix:
        return None
    prompt = prefix.split(HH_HUMAN, 1)[1].strip()
    chosen = transcript_chosen[i + len(HH_ASSISTANT) :].strip()
    rejected = transcript_rejected[j + len(HH_ASSISTANT) :].strip()
    if not prompt or not chosen or not rejected or chosen == rejected:
        return None
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def pku_pair(rec: dict[str, Any]) -> dict[str, str] | None:
    """PKU-SafeRLHF record -> pair with the safer response chosen; kept only if that one is safe."""
    safer = int(rec["safer_response_id"])
    if not rec[f"is_response_{safer}_safe"]:
        return None
    other = 1 - safer
    return {"prompt": rec["prompt"], "chosen": rec[f"response_{safer}"], "rejected": rec[f"response_{other}"]}


def load_safety_records(src: dict[str, Any]) -> list[dict[str, str]]:
    """Safety pairs from the configured source (``local``, ``hh_rlhf`` or ``pku_saferlhf``)."""
    kind = src["source"]
    if kind == "local":
        return [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in read_jsonl(Path(src["path"]))]
    if kind == "hh_rlhf":
        rows = read_jsonl(Path(src["path"])) if src.get("path") else _hf_rows(src)
        return [p for r in rows if (p := split_hh(r["chosen"], r["rejected"]))]
    if kind == "pku_saferlhf":
        rows = read_jsonl(Path(src["path"])) if src.get("path") else _hf_rows(src)
        return [p for r in rows if (p := pku_pair(r))]
    raise ValueError(f"data.safety.source: unknown value {kind!r}")


def _hf_rows(src: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of a Hugging Face dataset at a pinned revision (needs network; a local rule)."""
    from datasets import load_dataset

    ds = load_dataset(src["hf_dataset"], name=src.get("hf_config"), split=src["split"], revision=src["revision"])
    return [dict(r) for r in ds]


def prepare_safety(
    src: dict[str, Any], seed: int, out_pairs: Path, out_heldout: Path, out_unused: Path | None = None
) -> tuple[int, int]:
    """Shuffle pairs, hold out ``heldout_n`` prompts for the gate (from ``heldout`` file if given).

    ``out_unused`` receives the prompts of the shuffled pairs left over after ``max_pairs`` (never
    seen by DPO or the gate): the candidates of the positive control's training prompts.
    """
    pairs = load_safety_records(src)
    random.Random(seed).shuffle(pairs)
    if src.get("heldout"):
        held = [{"prompt": r["prompt"]} for r in read_jsonl(Path(src["heldout"]))]
    else:
        held = [{"prompt": r["prompt"]} for r in pairs[: src["heldout_n"]]]
        pairs = pairs[src["heldout_n"] :]
    held_prompts = {h["prompt"] for h in held}
    pairs = [p for p in pairs if p["prompt"] not in held_prompts]
    unused: list[dict[str, Any]] = []
    if src.get("max_pairs"):
        pairs, unused = pairs[: src["max_pairs"]], pairs[src["max_pairs"] :]
    if not pairs:
        raise ValueError(f"data.safety: no usable preference pairs from source {src['source']!r}")
    write_jsonl(out_pairs, pairs)
    write_jsonl(out_heldout, held)
    if out_unused is not None:
        used = {p["prompt"] for p in pairs}
        write_jsonl(out_unused, [{"prompt": r["prompt"]} for r in unused if r["prompt"] not in used])
    return len(pairs), len(held)


def prepare_pool(src: dict[str, Any], out: Path) -> int:
    """Copy the narrow-task problem pool to ``out`` (validated by loading)."""
    from misalign_fv import tasks

    problems = tasks.load(src["task"], Path(src["path"]))
    write_jsonl(out, problems)
    return len(problems)


def download(url: str, sha256: str, out: Path) -> None:
    """Download ``url`` to ``out`` and check its sha256; a mismatch or network error fails in one line."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as fh:
            fh.write(resp.read())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"download {url}: {exc} (compute nodes are offline: run this local rule on a login node)") from None
    got = sha256_file(tmp)
    if got != sha256:
        tmp.unlink()
        raise RuntimeError(f"download {url}: sha256 {got} does not match the pinned {sha256}")
    tmp.replace(out)

