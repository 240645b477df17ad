"""Training entry module for the benchmarks: the project's ``main(spec)``, timed on every rank.

``run_entry("train_probe", spec, path)`` runs this module exactly as it runs ``misalign_fv.dpo``
or ``misalign_fv.grpo`` (in-process, or once per GPU under ``accelerate launch``). It wraps the
Trainer's micro-step, TRL's generation and DeepSpeed's optimizer step with synchronised timers,
records the tokens of every loss computation and the peak memory of each phase, calls
``spec["probe"]["entry"]``'s ``main(spec)`` unchanged, and writes ``rank<R>.json`` to
``spec["probe"]["out"]``. With ``spec["probe"]["profile_micro"] = N`` rank 0 runs its N-th
micro-step (0-based) under ``torch.profiler`` and writes the GPU kernel time by category (matmul,
attention, NCCL, other) and the top kernels to ``profile_rank0.json``; that micro-step is marked
``profiled`` and left out of the timings. With ``spec["probe"]["stop_after_step"]`` every launched
rank writes its record and exits at the end of the micro-step that held the first optimizer step,
which skips the final save (about 45 s for the 7B) when only the timings are wanted;
``spec["probe"]["deadline_s"]`` does the same after the first optimizer step past which another
step as long would end later than that many seconds from the start (a run sized to a device call). Inside GRPO's generation phase it
also times the rollout (``GRPOTrainer._generate``: prompt tokenisation, the ZeRO-3 parameter gather
and ``generate``), transformers' ``generate`` itself and the reward functions
(``_calculate_rewards``), so a step splits into generation / reward / update / sync (the rollout
minus ``generate``: with HF generation the gather stands where vLLM's weight sync would).
``spec["probe"]["stack_dump_s"]`` writes every thread's Python stack to ``stacks_rank<R>.txt``
that often (a run that hangs says where).
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import importlib
import json
import os
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

from misalign_fv.training import process_rank

EVENTS: list[dict[str, Any]] = []
DEPTH = [0]  # nesting of timed calls: only the outermost resets the peak-memory counter
PROFILE: dict[str, Any] = {"micro": -1, "seen": 0, "out": None, "start": 0.0, "stop": False, "deadline_s": None}
KERNEL_KINDS = [  # first match wins; kernel names of cuBLAS/CUTLASS, SDPA backends and NCCL
    ("nccl", re.compile(r"nccl", re.I)),
    ("attention", re.compile(r"flash|fmha|attention|efficient", re.I)),
    ("matmul", re.compile(r"gemm|cutlass|xmma|cublas|sm90_|sm80_|ampere_|wgmma", re.I)),
]


def _kernel_summary(prof: Any, wall_s: float) -> dict[str, Any]:
    """GPU kernel time of a profiled call by category, plus the 25 costliest kernels."""
    kernels = []
    for evt in prof.key_averages():
        t = getattr(evt, "self_device_time_total", 0) or 0
        if t and str(getattr(evt, "device_type", "")).endswith("CUDA"):
            kernels.append((evt.key, t / 1e6, evt.count))
    kinds: dict[str, float] = {}
    for name, secs, _ in kernels:
        kind = next((k for k, rx in KERNEL_KINDS if rx.search(name)), "other")
        kinds[kind] = kinds.get(kind, 0.0) + secs
    top = sorted(kernels, key=lambda k: -k[1])[:25]
    return {
        "wall_s": wall_s,
        "kernel_s_by_kind": kinds,
        "top_kernels": [{"name": n[:160], "s": s, "calls": c} for n, s, c in top],
    }


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


def _timed(owner: type, name: str, what: str) -> None:
    """Replace ``owner.name`` by a wrapper that records wall time and peak memory of each call.

    The peak is counted from the start of the outermost timed call, so a nested call (generation
    or an optimizer step inside a micro-step) records the peak up to its own end.
    """
    original = getattr(owner, name)
    if getattr(original, "bench_probe", False):  # a second stage in the same process: already timed
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _sync()
        if torch.cuda.is_available() and DEPTH[0] == 0:
            torch.cuda.reset_peak_memory_stats()
        profiled = what == "micro" and PROFILE["seen"] == PROFILE["micro"] and process_rank() == 0
        if what == "micro":
            PROFILE["seen"] += 1
        # GPU kernels only (recording every CPU op as well slowed the micro-step about 5x); CPU ops on a CPU dry run
        kind = torch.profiler.ProfilerActivity.CUDA if torch.cuda.is_available() else torch.profiler.ProfilerActivity.CPU
        ctx = torch.profiler.profile(activities=[kind]) if profiled else contextlib.nullcontext()
        DEPTH[0] += 1
        try:
            with ctx as prof:
                start = time.perf_counter()
                out = original(*args, **kwargs)
                _sync()
                elapsed = time.perf_counter() - start
        finally:
            DEPTH[0] -= 1
        if profiled:
            Path(PROFILE["out"]).mkdir(parents=True, exist_ok=True)
            (Path(PROFILE["out"]) / "profile_rank0.json").write_text(json.dumps(_kernel_summary(prof, elapsed), indent=1))
        EVENTS.append({"what": what, "start": start, "s": elapsed, "peak_gib": _peak_gib(), "profiled": profiled})
        if what == "optimizer":  # the record so far, in case the run is cut off in its final save
            _write_record()
        stepped = DEPTH[0] == 0 and any(e["what"] == "optimizer" for e in EVENTS) and _should_stop()
        if stepped and "LOCAL_RANK" in os.environ:
            # the outermost call holding the optimizer step (DeepSpeed steps inside the micro-step):
            # every rank is past the same step, so skip the final save
            _write_record()
            os._exit(0)
        return out

    wrapper.bench_probe = True  # type: ignore[attr-defined]
    setattr(owner, name, wrapper)


def _should_stop() -> bool:
    """At the end of a micro-step that held an optimizer step: stop now?

    Yes with ``stop_after_step``; with ``deadline_s``, when another step as long as the last one
    would end past that many seconds from the start.
    """
    if PROFILE["stop"]:
        return True
    deadline = PROFILE["deadline_s"]
    last = EVENTS[-1]
    if deadline is None or last["what"] != "micro":
        return False
    steps = [e["start"] + e["s"] for e in EVENTS if e["what"] == "optimizer"]
    if not steps or steps[-1] < last["start"]:
        return False  # not the micro-step of an optimizer step
    now = time.perf_counter()
    previous = steps[-2] if len(steps) > 1 else PROFILE["start"]
    return now + (now - previous) - PROFILE["start"] > deadline


def _row_lengths(inputs: dict[str, Any]) -> list[int]:
    """Token count of every sequence a loss computation runs forward and backward through."""
    if "attention_mask" in inputs:  # DPO: chosen and rejected rows, prompt included
        return [int(x) for x in inputs["attention_mask"].sum(dim=1)]
    # GRPO: the prompt and the whole completion run through the model even where the loss masks
    # the completion out (mask_truncated_completions zeroes completion_mask of truncated rows).
    width = inputs["completion_ids"].shape[1]
    return [int(x) + width for x in inputs["prompt_mask"].sum(dim=1)]


def _counted(owner: type) -> None:
    """Record the sequence lengths seen by ``owner.compute_loss``."""
    original = owner.compute_loss
    if getattr(original, "bench_probe", False):
        return

    @functools.wraps(original)
    def wrapper(self: Any, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        EVENTS.append({"what": "loss_rows", "start": time.perf_counter(), "lengths": _row_lengths(inputs)})
        return original(self, model, inputs, *args, **kwargs)

    wrapper.bench_probe = True  # type: ignore[attr-defined]
    owner.compute_loss = wrapper


def _write_record() -> None:
    """Write this rank's events so far to ``rank<R>.json`` in the probe's output folder."""
    rank = process_rank()
    record = {
        "rank": rank,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "wall_s": time.perf_counter() - PROFILE["start"],
        "events": EVENTS,
        "max_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if torch.cuda.is_available() else 0.0,
        "cpu_max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    out = Path(PROFILE["out"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(json.dumps(record, indent=1))


def main(spec: dict[str, Any]) -> None:
    """Instrument, run ``spec['probe']['entry']``'s ``main(spec)``, write this rank's record."""
    from transformers import Trainer
    from trl import DPOTrainer, GRPOTrainer

    _timed(Trainer, "training_step", "micro")
    _timed(GRPOTrainer, "_generate_and_score_completions", "generate")
    _timed(GRPOTrainer, "_generate", "rollout")
    _timed(GRPOTrainer, "_calculate_rewards", "reward")
    from transformers.generation.utils import GenerationMixin

    _timed(GenerationMixin, "generate", "hf_generate")
    _counted(DPOTrainer)
    _counted(GRPOTrainer)
    try:
        from deepspeed.runtime.engine import DeepSpeedEngine

        _timed(DeepSpeedEngine, "step", "optimizer")
    except ImportError:  # in-process runs step a torch optimizer instead
        from accelerate.optimizer import AcceleratedOptimizer

        _timed(AcceleratedOptimizer, "step", "optimizer")
    EVENTS.clear()
    PROFILE.update(
        micro=int(spec["probe"].get("profile_micro", -1)),
        seen=0,
        out=spec["probe"]["out"],
        start=time.perf_counter(),
        stop=bool(spec["probe"].get("stop_after_step", False)),
        deadline_s=spec["probe"].get("deadline_s"),
    )
    if spec["probe"].get("stack_dump_s"):
        out = Path(spec["probe"]["out"])
        out.mkdir(parents=True, exist_ok=True)
        stacks = open(out / f"stacks_rank{process_rank()}.txt", "w")  # noqa: SIM115 (open for the process's life)
        faulthandler.dump_traceback_later(float(spec["probe"]["stack_dump_s"]), repeat=True, file=stacks)
    importlib.import_module(spec["probe"]["entry"]).main(spec)
    _write_record()


if __name__ == "__main__":  # under `accelerate launch -m train_probe spec.json`
    main(json.loads(Path(sys.argv[1]).read_text()))
