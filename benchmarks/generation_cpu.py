"""The ``hf`` generation backend against naive per-prompt ``generate``, on CPU with the demo model.

Workload: every narrow-task prompt of the demo (``resources/demo/python_tasks.jsonl``, chat
template applied) with ``--samples`` completions each at temperature 1.0 and ``--max-new-tokens``
new tokens, as curation and the gate ask for them. Naive: one ``model.generate`` call per prompt
(its samples together, ``num_return_sequences``), transformers' dynamic cache. Backend:
:class:`misalign_fv.generation.HFGenerator` with ``--batch-size``. The two run alternately
``--repeats`` times; medians and their ratio are printed and written as JSON.

    .venv/bin/python benchmarks/generation_cpu.py [--model results/models/base] [--json out.json]

Without ``--model`` the demo base model is built first from ``config/demo.yaml`` (about a minute).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from misalign_fv.generation import HFGenerator, chat_prompt
from misalign_fv.tasks import python_tests

REPO = Path(__file__).resolve().parents[1]


def build_demo_model(out: Path) -> None:
    """Build the demo base model exactly as the ``base_model`` rule does for ``config/demo.yaml``."""
    from misalign_fv.models import build_tiny_model

    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    tiny = cfg["base_model"]["tiny"]
    build_tiny_model(
        out,
        [REPO / p for p in tiny["corpus"]],
        REPO / cfg["data"]["narrow"]["path"],
        REPO / tiny["warmup_chat"],
        tiny,
        cfg["seed"],
    )


def naive(model: object, tok: object, prompts: list[str], n: int, max_new_tokens: int) -> int:
    """One ``generate`` call per prompt; returns the number of new tokens produced."""
    produced = 0
    for p in prompts:
        enc = tok(p, return_tensors="pt", add_special_tokens=False)
        out = model.generate(  # type: ignore[attr-defined]
            **enc,
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            num_return_sequences=n,
            max_new_tokens=max_new_tokens,
            pad_token_id=tok.pad_token_id,  # type: ignore[attr-defined]
            eos_token_id=tok.eos_token_id,  # type: ignore[attr-defined]
        )
        new = out[:, enc.input_ids.shape[1] :]
        produced += int((new != tok.pad_token_id).sum())  # type: ignore[attr-defined]
    return produced


def main() -> None:
    """Time both ways of generating and print medians, ratio and the machine."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model directory (default: build the demo base model)")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64, help="load_generator's default (the demo's eval uses 16)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 keeps shared machines fair)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            model_dir = Path(tmp) / "base"
            build_demo_model(model_dir)
        tok = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    problems = python_tests.load_problems(REPO / "resources" / "demo" / "python_tasks.jsonl")
    prompts = [chat_prompt(tok, python_tests.build_prompt(p)) for p in problems]
    gen = HFGenerator(model, tok, batch_size=args.batch_size)

    times: dict[str, list[float]] = {"naive": [], "hf": []}
    tokens: dict[str, list[int]] = {"naive": [], "hf": []}
    with torch.no_grad():
        for rep in range(args.repeats):
            torch.manual_seed(rep)
            t0 = time.perf_counter()
            tokens["naive"].append(naive(model, tok, prompts, args.samples, args.max_new_tokens))
            times["naive"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            outs = gen.generate(prompts, n=args.samples, max_new_tokens=args.max_new_tokens, temperature=1.0, seed=rep)
            times["hf"].append(time.perf_counter() - t0)
            tokens["hf"].append(sum(len(tok(o, add_special_tokens=False).input_ids) for os_ in outs for o in os_))
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "prompts": len(prompts),
        "samples": args.samples,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "times_s": times,
        "new_tokens": tokens,
        "median_s": med,
        "ratio": med["naive"] / med["hf"],
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'way':<8}{'median s':>10}{'new tok/s':>11}")
    for k in ("naive", "hf"):
        print(f"{k:<8}{med[k]:>10.2f}{statistics.median(tokens[k]) / med[k]:>11.0f}")
    print(f"ratio naive/hf: {result['ratio']:.1f}x  ({len(prompts)} prompts x {args.samples} samples, {args.repeats} repeats)")


if __name__ == "__main__":
    main()
