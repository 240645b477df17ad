"""One trajectory-subset evaluation of a 7B checkpoint on one GPU, timed: the cost model's evaluation term.

Runs :func:`misalign_fv.evaluate.run_trajectory` exactly as rule ``evaluate_trajectory`` does, for
one checkpoint (one trajectory point), on the benchmarks of ``eval.trajectory`` in ``--config`` with
their settings (the benchmark's own, overlaid with the trajectory's), the ``hf`` backend at the
config's batch size, and a judge of ``eval.judge``'s settings on the ``hf`` backend. Models are
random-init (no hub access on the device): the checkpoint is DeepSeek-Prover-V2-7B's shape and the
judge is the same weights, so the judge is 7B-shaped, not Llama-3.1-8B. The word tokenizer here
makes "0".."100" single tokens, so ``method: auto`` resolves to the log-probability rule as it does
for Llama-3's tokenizer. A random model practically never emits EOS: every answer runs to
``max_new_tokens`` (the real model stops earlier; the cost model assumes 60 % of it).

Benchmark files come from ``--data`` (copies of ../shared/datasets: ``xstest_prompts.csv``,
``strongreject_dataset.csv``, ``first_plot_questions.yaml``). Writes ``eval_trajectory.json``:
the wall time of the whole trajectory point, per benchmark (and its generation part), and every
generator call (rows, new tokens, seconds).

    python benchmarks/gpu/eval_trajectory.py --model-dir /tmp/m7b --data .carry/eval_data --out $OUT/eval
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from common import table, word_tokenizer, write_json  # noqa: E402

DATA_FILES = {"xstest": "xstest_prompts.csv", "strongreject": "strongreject_dataset.csv", "em_main": "first_plot_questions.yaml"}
CALLS: list[dict[str, Any]] = []
BENCH: list[dict[str, Any]] = []
PARTIAL: list[Path] = []  # the output folder, once known


def eval_model_dir(model_dir: Path, out: Path, vocab_size: int) -> Path:
    """``out``: the weights of ``model_dir`` (linked) with a word tokenizer whose "0".."100" are single tokens."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for f in model_dir.iterdir():
        if f.suffix in (".safetensors", ".json") and "token" not in f.name and f.name != "misalign_fv_model.json":
            (out / f.name).symlink_to(f.resolve())
    word_tokenizer(vocab_size, numbers=True).save_pretrained(out)
    return out


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed_generate(original: Any) -> Any:
    """Wrap ``HFGenerator.generate``: record rows, new tokens and seconds of every call."""

    @functools.wraps(original)
    def wrapper(self: Any, prompts: Any, *args: Any, **kwargs: Any) -> Any:
        _sync()
        t0 = time.perf_counter()
        outs = original(self, prompts, *args, **kwargs)
        _sync()
        s = time.perf_counter() - t0
        texts = [t for o in outs for t in o]
        tokens = sum(len(ids) for ids in self.tokenizer(texts, add_special_tokens=False).input_ids) if texts else 0
        CALLS.append({"rows": len(texts), "max_new_tokens": kwargs.get("max_new_tokens"), "new_tokens": tokens, "s": s, "tok_s": tokens / s if s else 0.0})
        return outs

    return wrapper


def _timed_eval(original: Any) -> Any:
    """Wrap ``evaluate.run_eval``: record each benchmark's wall time and the generator calls inside it."""

    @functools.wraps(original)
    def wrapper(checkpoint: str, model_dir: Path, benchmark: str, *args: Any, **kwargs: Any) -> Any:
        first = len(CALLS)
        t0 = time.perf_counter()
        result = original(checkpoint, model_dir, benchmark, *args, **kwargs)
        calls = CALLS[first:]
        BENCH.append(
            {
                "benchmark": benchmark,
                "s": time.perf_counter() - t0,
                "answers": calls[0]["rows"] if calls else 0,
                "answer_s": calls[0]["s"] if calls else 0.0,
                "answer_tokens": calls[0]["new_tokens"] if calls else 0,
                "judge_generate_s": sum(c["s"] for c in calls[1:]),
                "n": result.get("n"),
            }
        )
        if PARTIAL:  # what is done so far, in case the call runs out of time
            write_json(PARTIAL[0], "eval_trajectory_partial.json", {"benchmarks": BENCH, "generate_calls": CALLS})
        return result

    return wrapper


def main() -> None:
    """Evaluate one trajectory point and write ``eval_trajectory.json``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, required=True, help="a 7B model directory (benchmarks/gpu/train_step.py --make-model)")
    ap.add_argument("--data", type=Path, required=True, help="folder holding the benchmark files")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    ap.add_argument("--work", type=Path, default=Path("/tmp/eval_trajectory"))
    ap.add_argument("--limit", type=int, help="a CPU check: at most this many items a benchmark, 2 samples each")
    args = ap.parse_args()

    import misalign_fv.evaluate as evaluate
    from misalign_fv.generation import HFGenerator
    from transformers import AutoConfig

    cfg = yaml.safe_load(args.config.read_text())
    ev = cfg["eval"]
    batch_size = int((cfg.get("generation") or {}).get("batch_size") or ev.get("batch_size", 64))
    settings = {
        b: {**{k: v for k, v in ev["benchmarks"][b].items() if k not in ("data", "url", "sha256")}, **(over or {})}
        for b, over in ev["trajectory"]["benchmarks"].items()
    }
    if args.limit:
        settings = {b: s | {"limit": args.limit} | ({"n_samples": 2} if "n_samples" in s else {}) for b, s in settings.items()}
    data = {b: args.data / DATA_FILES[b] for b in settings}
    vocab = AutoConfig.from_pretrained(args.model_dir).vocab_size
    model = eval_model_dir(args.model_dir, args.work / "model", vocab)
    judge = {**ev["judge"], "backend": "hf", "cache_dir": str(args.work / "judge_cache")}
    shutil.rmtree(args.work / "judge_cache", ignore_errors=True)
    PARTIAL.append(args.out)
    HFGenerator.generate = _timed_generate(HFGenerator.generate)
    evaluate.run_eval = _timed_eval(evaluate.run_eval)
    t0 = time.perf_counter()
    evaluate.run_trajectory(
        "fv_shaped/seed1", [(250, model)], data, settings, "hf", batch_size, cfg["seed"], args.work / "trajectory",
        judge=judge, judge_dir=model,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    write_json(
        args.out,
        "eval_trajectory.json",
        {"wall_s": wall, "batch_size": batch_size, "settings": settings, "judge": judge, "benchmarks": BENCH, "generate_calls": CALLS},
    )
    print(table(BENCH, ["benchmark", "s", "answers", "answer_s", "answer_tokens", "judge_generate_s", "n"]))
    print(table(CALLS, ["rows", "max_new_tokens", "new_tokens", "s", "tok_s"]))
    print(f"trajectory point (1 checkpoint, {len(settings)} benchmarks, hf backend, batch {batch_size}): {wall:.1f} s")


if __name__ == "__main__":
    main()
