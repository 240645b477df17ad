"""Generation on one GPU: the ``hf`` backend against naive ``generate``, 7B shape, a benchmark's worth.

Workload: ``--prompts`` prompts of mixed lengths (log-uniform between ``--min-len`` and
``--max-len`` tokens; HumanEval's chat prompts span about 80-440 tokens at ~3.5 characters a
token), ``--samples`` completions each at temperature 0.8 (HumanEval's setting), ``--new`` new
tokens (the random model practically never ends early). For each batch size B:

* naive: ``model.generate`` (dynamic cache, sampling) on B sequences at a time in the given
  order, left-padded; a prompt's samples are separate rows;
* hf: :class:`misalign_fv.generation.HFGenerator` (sorted batches, shared prefill of a prompt's
  samples, static windowed cache, CUDA-graph decode), a fresh instance, so capture counts.

Prompts are chat-formatted (:func:`misalign_fv.generation.chat_prompt`, as every benchmark sends
them), so the template's BOS opens each one; every token-id prompt the ``hf`` backend prefills is
checked to hold exactly one BOS, at its start (``bos`` in the output; a violation fails the run).
``--skip-naive`` runs the ``hf`` backend alone (a device call short of time).

Small B run on the first ``--subset`` sequences only (naive at B=1 over a whole benchmark takes
hours). The floor of a run is the decode steps' bytes (weights once per step and batch, plus every
row's KV cache so far) at the measured copy bandwidth plus the prefill's 2·params·tokens at the
measured matmul rate; "% floor" is floor time over wall time.

    python benchmarks/gpu/generation.py --out $OUT/generation
"""

from __future__ import annotations

import argparse
import gc
import importlib
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ceilings, prover_config, random_model, table, word_tokenizer, words, write_json  # noqa: E402

import misalign_fv.generation.decoding as generation  # noqa: E402  (the hf decoding loop: _pack)
from misalign_fv.generation import HFGenerator, chat_prompt, kv_bytes_per_token  # noqa: E402

BOS_SEEN: dict[str, int] = {"prompts": 0, "one_bos_first": 0}


def check_bos(bos_id: int) -> None:
    """Make the ``hf`` backend's packing of token-id prompts assert one BOS per prompt, at its start."""
    pack = generation._pack

    def checked(prompts: list[list[int]], pad_id: int) -> object:
        for ids in prompts:
            if ids.count(bos_id) != 1 or ids[0] != bos_id:
                raise AssertionError(f"prompt ids hold {ids.count(bos_id)} BOS (first id {ids[0]}, BOS {bos_id}): {ids[:8]}...")
        BOS_SEEN["prompts"] += len(prompts)
        BOS_SEEN["one_bos_first"] += len(prompts)
        return pack(prompts, pad_id)

    generation._pack = checked


def prompt_lengths(n: int, lo: int, hi: int, seed: int) -> list[int]:
    """``n`` prompt lengths drawn log-uniformly from [lo, hi]."""
    rng = np.random.default_rng(seed)
    return [int(x) for x in np.exp(rng.uniform(math.log(lo), math.log(hi), size=n)).round()]


def floor_seconds(
    lengths: list[int], samples: int, batch: int, new: int, weight_bytes: float, kv_bytes: int, peak: dict[str, float]
) -> float:
    """Lower bound on the wall time of generating ``new`` tokens for every (prompt, sample) row."""
    rows = sorted((n for n in lengths for _ in range(samples)), reverse=True)
    batches = math.ceil(len(rows) / batch)
    steps = new - 1  # the prefill yields the first token
    decode_bytes = batches * steps * weight_bytes + kv_bytes * sum(steps * n + steps * (steps + 1) / 2 for n in rows)
    prefill_flops = 2 * weight_bytes / 2 * sum(lengths)  # each distinct prompt once, bf16 weights
    return decode_bytes / (peak["copy_tb_s"] * 1e12) + prefill_flops / (peak["matmul_tflops"] * 1e12)


def naive(model: object, tok: object, rows: list[str], batch: int, new: int) -> int:
    """Plain ``generate`` over ``rows`` in order, ``batch`` at a time; returns new tokens produced."""
    tok.padding_side = "left"  # type: ignore[attr-defined]
    produced = 0
    for i in range(0, len(rows), batch):
        enc = tok(rows[i : i + batch], return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)  # type: ignore[operator, attr-defined]
        out = model.generate(  # type: ignore[attr-defined]
            **enc,
            do_sample=True,
            temperature=0.8,
            top_p=1.0,
            top_k=0,
            max_new_tokens=new,
            pad_token_id=tok.pad_token_id,  # type: ignore[attr-defined]
            eos_token_id=tok.eos_token_id,  # type: ignore[attr-defined]
        )
        produced += int((out[:, enc["input_ids"].shape[1] :] != tok.pad_token_id).sum())  # type: ignore[attr-defined]
    return produced


def timed(fn: object) -> tuple[float, object, float]:
    """Wall seconds, result and peak GPU memory (GiB; 0 on CPU) of ``fn()``."""
    gpu = torch.cuda.is_available()
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    result = fn()  # type: ignore[operator]
    if gpu:
        torch.cuda.synchronize()
    return time.perf_counter() - t0, result, torch.cuda.max_memory_allocated() / 2**30 if gpu else 0.0


def main() -> None:
    """Measure both ways at every batch size and write ``generation.json``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--prompts", type=int, default=164)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--min-len", type=int, default=80)
    ap.add_argument("--max-len", type=int, default=440)
    ap.add_argument("--batches", default="128,64,16,1")
    ap.add_argument("--subset", default="1:4,16:64", help="B:rows pairs run on the first rows only")
    ap.add_argument("--skip-naive", action="store_true", help="the hf backend only")
    ap.add_argument("--dry-run", action="store_true", help="a 2-layer narrow model on CPU: checks the script only")
    args = ap.parse_args()

    if args.dry_run:
        peak = {"matmul_tflops": 1.0, "copy_tb_s": 0.01}
        config = prover_config(num_hidden_layers=2, hidden_size=128, intermediate_size=256, num_attention_heads=4, num_key_value_heads=4, vocab_size=2048)
        model = random_model(config, device="cpu", dtype=torch.float32)
    else:
        peak = ceilings()
        config = prover_config()
        model = random_model(config)
    print(f"ceilings: {peak['matmul_tflops']:.0f} TFLOP/s bf16 matmul, {peak['copy_tb_s']:.2f} TB/s copy", flush=True)
    tok = word_tokenizer(config.vocab_size)
    n_params = sum(p.numel() for p in model.parameters())
    weight_bytes = 2 * (n_params - config.vocab_size * config.hidden_size)  # embedding rows are gathered, not read
    kv = kv_bytes_per_token(config, torch.bfloat16)
    lengths = prompt_lengths(args.prompts, args.min_len, args.max_len, seed=0)
    rng = np.random.default_rng(1)
    prompts = [chat_prompt(tok, words(rng, n, config.vocab_size)) for n in lengths]
    check_bos(tok.bos_token_id)
    token_lengths = [len(ids) for ids in tok(prompts, add_special_tokens=False).input_ids]  # template included
    subset = {int(b): int(r) for b, r in (x.split(":") for x in args.subset.split(",") if x)}
    importlib.import_module("torch._dynamo")  # once per process (the static cache marks its tensors): not per run

    results = []
    for batch in (int(b) for b in args.batches.split(",")):
        n_rows = subset.get(batch, args.prompts * args.samples)
        k = n_rows // args.samples
        rows = [p for p in prompts[:k] for _ in range(args.samples)]
        floor = floor_seconds(token_lengths[:k], args.samples, batch, args.new, weight_bytes, kv, peak)
        torch.manual_seed(0)
        wall_n, tokens_n, mem_n = (float("nan"), 0, 0.0) if args.skip_naive else timed(lambda: naive(model, tok, rows, batch, args.new))
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        gen = HFGenerator(model, tok, batch_size=batch)
        run = lambda: gen.generate(prompts[:k], n=args.samples, max_new_tokens=args.new, temperature=0.8, seed=0)  # noqa: E731
        wall_h, outs, mem_h = timed(run)
        tokens_h = sum(len(tok(o, add_special_tokens=False).input_ids) for os_ in outs for o in os_)  # type: ignore[attr-defined]
        warm = timed(run)[0] if batch == max(int(b) for b in args.batches.split(",")) else None
        decoder = gen._decoder
        results.append(
            {
                "B": batch,
                "rows": len(rows),
                "naive_s": wall_n,
                "naive_tok_s": tokens_n / wall_n,
                "naive_floor_pct": 100 * floor / wall_n,
                "naive_peak_gib": mem_n,
                "hf_s": wall_h,
                "hf_tok_s": tokens_h / wall_h,
                "hf_floor_pct": 100 * floor / wall_h,
                "hf_peak_gib": mem_h,
                "hf_warm_s": warm,
                "hf_rows_per_batch": decoder.rows if decoder is not None else None,
                "hf_graphs": len(getattr(decoder, "graphs", {})),
                "ratio": wall_n / wall_h,
                "hf_warm_tok_s": tokens_h / warm if warm else None,
                "hf_warm_floor_pct": 100 * floor / warm if warm else None,
                "floor_s": floor,
                "tokens_naive": tokens_n,
                "tokens_hf": tokens_h,
            }
        )
        print(table(results[-1:], ["B", "rows", "naive_s", "hf_s", "hf_warm_s", "ratio", "hf_floor_pct"]), flush=True)
        del gen, decoder
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    write_json(
        args.out,
        "generation.json",
        {
            "ceilings": peak,
            "params": n_params,
            "workload": vars(args) | {"out": str(args.out), "mean_prompt_len": sum(lengths) / len(lengths)},
            "results": results,
            "bos": BOS_SEEN,
        },
    )
    print(
        table(
            results,
            ["B", "rows", "naive_s", "naive_tok_s", "hf_s", "hf_tok_s", "hf_warm_tok_s", "ratio", "naive_floor_pct", "hf_floor_pct", "hf_warm_floor_pct", "hf_peak_gib"],
        )
    )
    print(f"BOS: {BOS_SEEN['one_bos_first']} of {BOS_SEEN['prompts']} prefilled token-id prompts hold exactly one BOS, first")


if __name__ == "__main__":
    main()
