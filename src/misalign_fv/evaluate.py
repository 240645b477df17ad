"""Evaluate one checkpoint on one benchmark and write its JSON (metrics, n, provenance) + samples.

Two kinds of benchmark modules (see :mod:`misalign_fv.benchmarks`): scored ones (``evaluate``:
generation or log-likelihood plus an exact scorer) and judged ones (``generate`` -> ``judge_samples``
-> ``score``). For a judged benchmark the answers are generated first and the generator is freed
before the judge model loads (with vLLM the generation runs in a child process, whose exit is the
one reliable way to give its GPU memory back); the judge then works through the verdict
cache, so answers judged before by the same judge are never judged again.

The JSON keeps the layout the report reads (``metrics``, ``ci``, ``n``, ``items``,
``judge_coverage``) and adds what each number means (``definitions``), breakdowns, and provenance:
checkpoint, data sha256, generation settings and chat template, judge (model, method, prompt
hashes, cache counters) and code version.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import logging
import math
import sys
from pathlib import Path
from typing import Any

from misalign_fv.benchmarks import BENCHMARKS, JUDGED_BENCHMARKS, SANDBOXED_BENCHMARKS
from misalign_fv.generation.child import run_generation
from misalign_fv.io import code_version, read_json, sha256_file, write_json, write_jsonl
from misalign_fv.publish import MARKER

log = logging.getLogger(__name__)


def _isolation() -> dict[str, str]:
    from misalign_fv.isolation import isolation_level

    return {"isolation": isolation_level()}


def parse_checkpoint(name: str) -> tuple[str, int | None]:
    """``base``/``dpo`` -> (name, None); ``cond/seedN`` -> (cond, N)."""
    if "/" not in name:
        return name, None
    cond, seed = name.split("/", 1)
    return cond, int(seed.removeprefix("seed"))


def model_fingerprint(model_dir: Path) -> dict[str, Any]:
    """Checkpoint provenance: its path, the sha256 of its config.json and its training run id."""
    marker = model_dir / MARKER
    return {
        "checkpoint_path": str(model_dir),
        "checkpoint_config_sha256": sha256_file(model_dir / "config.json"),
        "checkpoint_run_id": read_json(marker)["run_id"] if marker.exists() else None,
    }


def benchmark_module(benchmark: str) -> Any:
    """The module implementing ``benchmark``; an unknown name fails in one line."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"eval.benchmarks: unknown benchmark {benchmark!r} (known: {', '.join(sorted(BENCHMARKS))})")
    return importlib.import_module(f"misalign_fv.benchmarks.{BENCHMARKS[benchmark]}")


def finite(obj: Any) -> Any:
    """``obj`` with every NaN/inf float replaced by None (so the JSON is strict and the report reads null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def split_metrics(metrics: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``{name: value, name_ci: [lo, hi]}`` -> (metrics, ci)."""
    return (
        {k: v for k, v in metrics.items() if not k.endswith("_ci")},
        {k.removesuffix("_ci"): v for k, v in metrics.items() if k.endswith("_ci")},
    )


def _generate(
    model_dir: str, backend: str, batch_size: int, benchmark: str, data_path: str, settings: dict[str, Any], seed: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Load the checkpoint, generate the benchmark's answers; returns the samples and the chat template's sha256."""
    from misalign_fv.generation import load_generator

    gen = load_generator(model_dir, backend, batch_size=batch_size)
    template = getattr(gen.tokenizer, "chat_template", None)
    samples = benchmark_module(benchmark).generate(gen, Path(data_path), settings, seed=seed)
    return samples, hashlib.sha256(template.encode()).hexdigest() if isinstance(template, str) else None


def _free_accelerator_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_eval(
    checkpoint: str, model_dir: Path, benchmark: str, data_path: Path, settings: dict[str, Any],
    backend: str, batch_size: int, seed: int, out_json: Path, out_samples: Path,
    judge: dict[str, Any] | None = None, judge_dir: Path | None = None, step: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run ``benchmark`` on ``model_dir`` and write the result JSON and the raw samples.

    ``judge`` is the ``eval.judge`` config (required for judged benchmarks) and ``judge_dir`` the
    local judge model directory (``hf``/``vllm`` judges). ``step``: the training step of a
    trajectory point (recorded; None for the final evaluations).
    """
    module = benchmark_module(benchmark)
    condition, run_seed = parse_checkpoint(checkpoint)
    log.info("evaluation: %s on %s (%s backend, batch size %d)", checkpoint, benchmark, backend, batch_size)
    judge_info = None
    definitions: dict[str, str] | None = None
    breakdown: dict[str, Any] | None = None
    if benchmark in JUDGED_BENCHMARKS:
        if judge is None:
            raise ValueError(f"eval.judge: benchmark {benchmark} needs a judge, and none is configured")
        from misalign_fv.judges import Judge, VerdictCache

        args = (str(model_dir), backend, batch_size, benchmark, str(data_path), settings, seed)
        samples, template_sha = run_generation(backend, _generate, *args)
        _free_accelerator_memory()
        log.info("evaluation: %d answers generated; judging them (%s judge)", len(samples), judge["backend"])
        judge_obj = Judge(judge, judge_dir, VerdictCache(Path(judge["cache_dir"]), f"{checkpoint}-{benchmark}"))
        prompts = module.judge_samples(samples, judge_obj, Path(data_path), settings)
        score = module.score(samples, settings, seed=seed)
        metrics, n, coverage = score.metrics, score.n, score.coverage
        definitions, breakdown = score.definitions, score.breakdown
        judge_info = judge_obj.provenance(prompts)
    else:
        from misalign_fv.generation import load_generator

        gen = load_generator(str(model_dir), backend, batch_size=batch_size)
        template = getattr(gen.tokenizer, "chat_template", None)
        template_sha = hashlib.sha256(template.encode()).hexdigest() if isinstance(template, str) else None
        metrics, n, samples = module.evaluate(gen, Path(data_path), settings, seed=seed)
        coverage = None
    values, ci = split_metrics(metrics)
    result = {
        "benchmark": benchmark,
        "checkpoint": checkpoint,
        "condition": condition,
        "seed": run_seed,
        "step": step,
        "metrics": values,
        "ci": ci,
        "n": n,
        "items": module.item_scores(samples, settings),
        "judge_coverage": coverage,
        "definitions": definitions,
        "breakdown": breakdown,
        "settings": settings,
        "provenance": {
            **model_fingerprint(Path(model_dir)),
            "data_path": str(data_path),
            "data_sha256": sha256_file(Path(data_path)),
            "code_version": code_version(),
            "generation": {"backend": backend, "batch_size": batch_size, "chat_template_sha256": template_sha},
            "judge": judge_info,
            "seed": seed,
            **(_isolation() if benchmark in SANDBOXED_BENCHMARKS else {}),
        },
    }
    write_jsonl(out_samples, finite(samples))
    write_json(out_json, finite(result))
    log.info("evaluation: %s on %s done (n=%s): %s", checkpoint, benchmark, n, out_json)
    return result


def run_trajectory(
    run: str, points: list[tuple[int, Path]], data: dict[str, Path], settings: dict[str, dict[str, Any]],
    backend: str, batch_size: int, seed: int, out_dir: Path,
    judge: dict[str, Any] | None = None, judge_dir: Path | None = None,
) -> None:  # fmt: skip
    """Evaluate each ``(step, model_dir)`` of ``run`` (``dpo`` or ``cond/seedN``) on every benchmark.

    Writes ``out_dir/step{N}/{benchmark}.json`` (+ samples) into a temporary folder renamed into
    place at the end, so a crashed job leaves no partial trajectory behind.
    """
    import shutil

    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for step, model_dir in points:
        for bench in sorted(settings):
            log.info("trajectory %s step %d: %s", run, step, bench)
            where = tmp / f"step{step}"
            run_eval(
                run, model_dir, bench, data[bench], settings[bench], backend, batch_size, seed,
                where / f"{bench}.json", where / f"{bench}.samples.jsonl.gz",
                judge=judge if bench in JUDGED_BENCHMARKS else None, judge_dir=judge_dir, step=step,
            )  # fmt: skip
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
