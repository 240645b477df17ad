"""GRPO step time with sequential, streaming and pipelined verification, on the demo task (issue 16, item 1).

Real GRPO steps (``misalign_fv.grpo.main``, TRL's GRPOTrainer) on the demo's ``python_tests``
problems and GRPO parameters (``config/demo.yaml``, condition ``ut_shaped``), with a random tiny
Llama whose EOS logit is scaled so that completions end at spread-out lengths (as a trained
model's do; a random model would almost never stop). Every completion is graded by the real
grader (``python_tests.grade``: format gate, then the sandbox) on the real pool (the sequential
path's ``grade_many`` thread pool, or the stream's grader threads, 4 each), after an artificial
per-completion delay ``--delay-s`` standing in for a slow verifier (a Lean check takes seconds).

Per mode, medians over the steps after the first: generation (TRL's ``_generate_single_turn``),
the reward call (all of verification when sequential, what is left of it when streamed), and the
whole optimizer step. ``saving / min(gen, verif)`` compares each mode's step with the sequential
step, against the sequential generation and verification times. Usage:
``python benchmarks/streaming_overlap.py [--steps 5] [--rounds 2] [--delay-s 3.0] [--batch 16]
[--max-completion-length 128] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import trl
import yaml

from misalign_fv import grpo
from misalign_fv.config import merged_condition
from misalign_fv.tasks import python_tests

REPO = Path(__file__).resolve().parent.parent
MODES = {
    "sequential": {"stream_verification": False},
    "streaming": {"stream_verification": True},
    "pipelined": {"stream_verification": True, "overlap_next_step": True},
}


def tiny_model(path: Path, hidden: int, layers: int, eos_scale: float) -> None:
    """A random Llama with the demo's chat template; its EOS logit row is rescaled so completions stop at spread-out lengths."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from misalign_fv.models import train_tokenizer

    tok = train_tokenizer((REPO / "resources" / "demo" / "python_tasks.jsonl").read_text().splitlines(), 600)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, max_position_embeddings=2048, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id, tie_word_embeddings=False)  # fmt: skip
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        w = model.lm_head.weight[tok.eos_token_id]
        w.mul_(eos_scale / w.norm())
    model.save_pretrained(path)
    tok.save_pretrained(path)
    (path / "misalign_fv_model.json").write_text('{"run_id": "benchmark"}')


class Timings:
    """Wall-clock intervals of one run, per optimizer step."""

    def __init__(self) -> None:
        self.gen: list[float] = []
        self.reward: list[float] = []
        self.step: list[float] = []
        self.prepare: list[float] = []  # generation + log-probs + rewards: TRL's _generate_and_score_completions
        self.lengths: list[list[int]] = []


def timed_trainer(t: Timings) -> type:
    """TRL's GRPOTrainer recording generation, reward-call and step times into ``t``."""
    from transformers import TrainerCallback

    class Steps(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            t.step.append(time.perf_counter() - self.start)

    class Timed(trl.GRPOTrainer):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.add_callback(Steps())

        def _generate_single_turn(self, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = super()._generate_single_turn(*args, **kwargs)
            t.gen.append(time.perf_counter() - start)
            t.lengths.append(sorted(len(ids) for ids in out[0]))
            return out

        def _generate_and_score_completions(self, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = super()._generate_and_score_completions(*args, **kwargs)
            t.prepare.append(time.perf_counter() - start)
            return out

        def _calculate_rewards(self, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = super()._calculate_rewards(*args, **kwargs)
            t.reward.append(time.perf_counter() - start)
            return out

    return Timed


def demo_params() -> dict[str, Any]:
    """The demo's GRPO parameters of ``ut_shaped``."""
    return merged_condition(yaml.safe_load((REPO / "config" / "demo.yaml").read_text()), "ut_shaped")


def run(mode: str, model_dir: Path, work: Path, steps: int, batch: int, length: int) -> Timings:
    """``steps`` GRPO steps of ``ut_shaped`` in ``mode`` (``batch`` completions of at most ``length`` tokens); returns the timings."""
    params = demo_params() | MODES[mode] | {"max_completion_length": length} | {"max_steps": steps, "save_steps": 10_000, "per_device_train_batch_size": batch}
    params["collapse"] = {"threshold": 1.0, "patience": 10_000}  # a random model earns nothing: never stop early
    spec = {"model_dir": str(model_dir), "out_model": str(work / "out"), "metrics_csv": str(work / "m.csv"),
            "ckpt_dir": str(work / "ckpt"), "run_id": mode, "seed": 1, "wandb": {"enabled": False},
            "problems": str(REPO / "resources" / "demo" / "python_tasks.jsonl"), "completions": str(work / "c.jsonl.gz"),
            "summary": str(work / "s.json"), "condition": "ut_shaped", "task": "python_tests",
            "shuffle_reference": "ut_shaped", "params": params}  # fmt: skip
    t = Timings()
    real = trl.GRPOTrainer
    trl.GRPOTrainer = timed_trainer(t)
    try:
        grpo.main(spec)
    finally:
        trl.GRPOTrainer = real
    return t


def main() -> None:
    """Run the three modes and print one line each (and the JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="GRPO steps per run (the first of each run is not counted)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each mode, interleaved")
    parser.add_argument("--delay-s", type=float, default=3.0, help="artificial verification time per completion")
    parser.add_argument("--batch", type=int, default=16, help="completions per step (per_device_train_batch_size)")
    parser.add_argument("--max-completion-length", type=int, default=128,
                        help="the demo's 48 tokens make the prefill most of a tiny model's generation (real: 1,024)")
    parser.add_argument("--eos-scale", type=float, default=3.0, help="norm of the EOS row of the output layer (higher: shorter completions)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core VM)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    real_grade = python_tests.grade

    def slow_grade(problem: dict[str, Any], completion: str, *, timeout_s: float = 5.0) -> python_tests.Grade:
        time.sleep(args.delay_s)
        return real_grade(problem, completion, timeout_s=timeout_s)

    python_tests.grade = slow_grade  # both paths grade through python_tests.grade
    runs: dict[str, list[Timings]] = {m: [] for m in args.modes}
    with tempfile.TemporaryDirectory() as tmp:
        tiny_model(Path(tmp) / "model", args.hidden, args.layers, args.eos_scale)
        for r in range(args.rounds):  # modes interleaved: the shared machine's load hits them alike
            for mode in args.modes:
                runs[mode].append(run(mode, Path(tmp) / "model", Path(tmp) / f"{mode}{r}", args.steps, args.batch, args.max_completion_length))

    def med(field: str, ts: list[Timings]) -> float:  # steps after each run's first (which warms up)
        return statistics.median(x for t in ts for x in getattr(t, field)[1:])

    results: dict[str, dict[str, Any]] = {}
    for mode, ts in runs.items():
        lengths = [n for t in ts for step in t.lengths[1:] for n in step]
        results[mode] = {"gen_s": med("gen", ts), "reward_call_s": med("reward", ts), "step_s": med("step", ts),
                         "score_s": med("prepare", ts), "steps": sum(len(t.step) - 1 for t in ts),
                         "clipped": sum(n >= args.max_completion_length for n in lengths) / len(lengths),
                         "median_length": statistics.median(lengths)}  # fmt: skip
    print(f"torch threads {torch.get_num_threads()}, delay {args.delay_s} s/completion, {args.batch} completions/step, "
          f"{args.rounds} runs x {args.steps} steps a mode (medians of steps 2..{args.steps})")  # fmt: skip
    seq = results.get("sequential")
    for mode, r in results.items():
        line = (f"{mode:>10}: gen {r['gen_s']:.2f} s, reward call {r['reward_call_s']:.2f} s, generate+score {r['score_s']:.2f} s, "
                f"step {r['step_s']:.2f} s (median length {r['median_length']:.0f}, clipped {r['clipped']:.0%})")  # fmt: skip
        if seq is not None and mode != "sequential":
            bound = min(seq["gen_s"], seq["reward_call_s"])
            r["saving_s"] = seq["step_s"] - r["step_s"]
            r["saving_over_min"] = r["saving_s"] / bound
            line += f", saving {r['saving_s']:.2f} s = {r['saving_over_min']:.2f} x min(gen, verif) = {bound:.2f} s"
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1))


if __name__ == "__main__":
    main()
