"""Evaluate one checkpoint on one benchmark and write its JSON (metrics, n, provenance) + samples."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from misalign_fv.benchmarks import BENCHMARKS
from misalign_fv.generation import load_generator
from misalign_fv.io import code_version, read_json, sha256_file, write_json, write_jsonl


def parse_checkpoint(name: str) -> tuple[str, int | None]:
    """``base``/``dpo`` -> (name, None); ``cond/seedN`` -> (cond, N)."""
    if "/" not in name:
        return name, None
    cond, seed = name.split("/", 1)
    return cond, int(seed.removeprefix("seed"))


def model_fingerprint(model_dir: Path) -> dict[str, Any]:
    """Checkpoint provenance: its path, the sha256 of its config.json and its training run id."""
    marker = model_dir / "misalign_fv_model.json"
    return {
        "checkpoint_path": str(model_dir),
        "checkpoint_config_sha256": sha256_file(model_dir / "config.json"),
        "checkpoint_run_id": read_json(marker)["run_id"] if marker.exists() else None,
    }


def run_eval(
    checkpoint: str, model_dir: Path, benchmark: str, data_path: Path, settings: dict[str, Any],
    backend: str, batch_size: int, seed: int, out_json: Path, out_samples: Path,
) -> dict[str, Any]:  # fmt: skip
    """Run ``benchmark`` on ``model_dir`` and write the result JSON and the raw samples."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"eval.benchmarks: unknown benchmark {benchmark!r} (known: {', '.join(sorted(BENCHMARKS))})")
    module = importlib.import_module(f"misalign_fv.benchmarks.{BENCHMARKS[benchmark]}")
    gen = load_generator(str(model_dir), backend, batch_size=batch_size)
    metrics, n, samples = module.evaluate(gen, Path(data_path), settings, seed=seed)
    condition, run_seed = parse_checkpoint(checkpoint)
    result = {
        "benchmark": benchmark,
        "checkpoint": checkpoint,
        "condition": condition,
        "seed": run_seed,
        "metrics": {k: v for k, v in metrics.items() if not k.endswith("_ci")},
        "ci": {k.removesuffix("_ci"): v for k, v in metrics.items() if k.endswith("_ci")},
        "n": n,
        "items": module.item_scores(samples, settings),
        "judge_coverage": None,
        "settings": settings,
        "provenance": {
            **model_fingerprint(Path(model_dir)),
            "data_path": str(data_path),
            "data_sha256": sha256_file(Path(data_path)),
            "code_version": code_version(),
            "generation_backend": backend,
            "seed": seed,
        },
    }
    write_jsonl(out_samples, samples)
    write_json(out_json, result)
    return result
