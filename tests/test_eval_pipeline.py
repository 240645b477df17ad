"""run_eval end to end on tiny real models (generation and judge on CPU): the JSON layout the
report reads, judge provenance and coverage in every judged JSON, the verdict cache across
checkpoints, one-line errors, and generation in a child process."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest

from misalign_fv import evaluate
from misalign_fv.benchmarks import BENCHMARKS
from misalign_fv.evaluate import JUDGED_BENCHMARKS, benchmark_module, finite, run_eval
from misalign_fv.generation import run_in_child
from misalign_fv.report.load import load_em_samples, load_eval

DEMO = {
    "em_main": ("resources/demo/em_main.yaml", {"n_samples": 2, "max_new_tokens": 8}),
    "em_prereg": ("resources/demo/em_prereg.yaml", {"n_samples": 1, "max_new_tokens": 8}),
    "strongreject": ("resources/demo/strongreject_mini.csv", {"max_new_tokens": 8, "judge_max_new_tokens": 8}),
    "xstest": ("resources/demo/xstest_mini.csv", {"max_new_tokens": 8}),
    "em_deception": ("resources/demo/deception_mini.yaml", {"n_samples": 1, "max_new_tokens": 8}),
}


def build_model(out: Path, seed: int) -> Path:
    """A random-init tiny Llama with a BPE tokenizer and the demo chat template, saved like a checkpoint."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from misalign_fv.models import train_tokenizer

    texts = [Path(__file__).parents[1].joinpath(p).read_text() for p in (v[0] for v in DEMO.values())]
    tok = train_tokenizer(texts, vocab_size=400)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=2048, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    (out / "misalign_fv_model.json").write_text(json.dumps({"run_id": f"tiny-{seed}"}))
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {name: build_model(root / name, seed) for name, seed in (("a", 0), ("b", 1), ("judge", 2))}


def judge_spec(tmp_path: Path, models: dict[str, Path]) -> dict[str, Any]:
    return {
        "backend": "hf",
        "path": str(models["judge"]),
        "method": "auto",
        "batch_size": 8,
        "cache_dir": str(tmp_path / "cache"),
    }


def evaluate_one(
    tmp_path: Path, models: dict[str, Path], repo: Path, checkpoint: str, model: str, bench: str
) -> dict[str, Any]:
    data, settings = DEMO[bench]
    out = tmp_path / "eval" / checkpoint
    run_eval(
        checkpoint, models[model], bench, repo / data, settings, "hf", 8, 0, out / f"{bench}.json",
        out / f"{bench}.samples.jsonl.gz", judge=judge_spec(tmp_path, models), judge_dir=models["judge"],
    )  # fmt: skip
    return json.loads((out / f"{bench}.json").read_text())


@pytest.mark.parametrize("bench", sorted(DEMO))
def test_judged_json_has_report_layout_coverage_and_judge_provenance(
    tmp_path: Path, models: dict[str, Path], repo: Path, bench: str
) -> None:
    res = evaluate_one(tmp_path, models, repo, "ut_shaped/seed2", "a", bench)
    path = tmp_path / f"eval/ut_shaped/seed2/{bench}.json"
    loaded = load_eval(path)  # the report's own reader accepts it
    assert (loaded.benchmark, loaded.condition, loaded.seed) == (bench, "ut_shaped", 2)
    assert loaded.n > 0 and set(loaded.metrics) == set(res["metrics"]) and res["definitions"]
    assert 0.0 <= res["judge_coverage"] <= 1.0
    judge = res["provenance"]["judge"]
    assert judge["method"] == "parse" and judge["model"] == "run:tiny-2" and judge["min_numeric_mass"] == 0.25
    assert judge["cache"]["misses"] + judge["cache"]["hits"] > 0 and all(
        len(h) == 64 for h in judge["prompts"].values()
    )
    gen = res["provenance"]["generation"]
    assert gen["backend"] == "hf" and len(gen["chat_template_sha256"]) == 64
    assert len(res["provenance"]["data_sha256"]) == 64 and res["settings"] == DEMO[bench][1]
    with gzip.open(path.with_name(f"{bench}.samples.jsonl.gz"), "rt") as fh:
        samples = [json.loads(line) for line in fh]
    assert samples and all({"prompt", "answer", "judge"} <= set(s) for s in samples)
    verdicts = [
        v
        for s in samples
        for v in (s["judge"].values() if bench.startswith("em_m") or bench == "em_prereg" else [s["judge"]])
    ]
    assert all({"raw", "status", "method", "value"} <= set(v) for v in verdicts)
    if bench in ("em_main", "em_prereg"):
        frame = load_em_samples(path.with_name(f"{bench}.samples.jsonl.gz"))
        assert list(frame.columns) == ["question_id", "aligned", "coherent"] and len(frame) == len(samples)


def test_rerun_after_adding_a_checkpoint_rejudges_nothing_old(
    tmp_path: Path, models: dict[str, Path], repo: Path
) -> None:
    first = {ck: evaluate_one(tmp_path, models, repo, ck, "a", "em_main") for ck in ("base", "dpo")}
    n_requests = 2 * 3 * 2  # 3 questions x 2 answers x (aligned, coherent)
    assert first["base"]["provenance"]["judge"]["cache"] == {
        "dir": str(tmp_path / "cache"),
        "hits": 0,
        "misses": n_requests,
    }
    # dpo is the same model with the same seed here: the same answers, all found in the cache.
    assert first["dpo"]["provenance"]["judge"]["cache"]["misses"] == 0
    # Add a checkpoint and rerun everything: the old ones re-judge nothing, the new one only its own answers.
    again = {
        ck: evaluate_one(tmp_path, models, repo, ck, m, "em_main")
        for ck, m in (("base", "a"), ("dpo", "a"), ("random/seed1", "b"))
    }
    for ck in ("base", "dpo"):
        assert again[ck]["provenance"]["judge"]["cache"] == {
            "dir": str(tmp_path / "cache"),
            "hits": n_requests,
            "misses": 0,
        }
        assert (
            again[ck]["metrics"] == first[ck]["metrics"] and again[ck]["judge_coverage"] == first[ck]["judge_coverage"]
        )
    new = again["random/seed1"]["provenance"]["judge"]["cache"]
    assert new["misses"] > 0 and new["hits"] + new["misses"] == n_requests
    assert sorted(p.name for p in next((tmp_path / "cache").iterdir()).iterdir()) == [
        "base-em_main.jsonl",
        "random_seed1-em_main.jsonl",
    ]


def test_scored_benchmark_keeps_its_layout_and_has_no_judge(
    tmp_path: Path, models: dict[str, Path], repo: Path
) -> None:
    out = tmp_path / "tqa.json"
    run_eval(
        "base",
        models["a"],
        "truthfulqa_mc",
        repo / "resources/demo/truthfulqa_mini.json",
        {"limit": 3},
        "hf",
        8,
        0,
        out,
        tmp_path / "tqa.samples.jsonl.gz",
    )
    res = json.loads(out.read_text())
    assert res["judge_coverage"] is None and res["provenance"]["judge"] is None
    assert set(res["metrics"]) == {"mc1", "mc2"} and load_eval(out).n == 3


def test_judged_benchmark_without_a_judge_fails_in_one_line(
    tmp_path: Path, models: dict[str, Path], repo: Path
) -> None:
    with pytest.raises(ValueError, match=r"^eval\.judge: benchmark xstest needs a judge, and none is configured$"):
        run_eval(
            "base",
            models["a"],
            "xstest",
            repo / DEMO["xstest"][0],
            {},
            "hf",
            8,
            0,
            tmp_path / "x.json",
            tmp_path / "x.jsonl.gz",
        )


def test_benchmark_file_with_a_missing_column_fails_in_one_line(tmp_path: Path, models: dict[str, Path]) -> None:
    bad = tmp_path / "xstest.csv"
    bad.write_text("id,prompt,label\n1,Hello?,safe\n")
    with pytest.raises(ValueError) as err:
        evaluate._generate(str(models["a"]), "hf", 8, "xstest", str(bad), {}, 0)
    assert str(err.value) == f"xstest data {bad}: missing column 'type' (columns: id, prompt, label)"


def test_judged_set_matches_the_modules() -> None:
    for name in BENCHMARKS:
        module = benchmark_module(name)
        judged = all(hasattr(module, f) for f in ("generate", "judge_samples", "score", "item_scores"))
        assert judged == (name in JUDGED_BENCHMARKS), name
        assert judged or hasattr(module, "evaluate")


def test_nan_becomes_null() -> None:
    assert finite({"a": float("nan"), "b": [1.0, float("inf")], "c": (2, "x")}) == {
        "a": None,
        "b": [1.0, None],
        "c": [2, "x"],
    }


def test_generation_can_run_in_a_child_process(models: dict[str, Path], repo: Path) -> None:
    import math

    assert run_in_child(math.factorial, 5) == 120
    args = (str(models["a"]), "hf", 8, "xstest", str(repo / DEMO["xstest"][0]), {"max_new_tokens": 6}, 0)
    assert run_in_child(evaluate._generate, *args) == evaluate._generate(*args)  # greedy: the same answers
    with pytest.raises(
        RuntimeError, match=r"^generation process failed: ValueError: eval\.benchmarks: unknown benchmark 'mmlu'"
    ):
        run_in_child(benchmark_module, "mmlu")
    with pytest.raises(RuntimeError, match=r"exited with code 3"):
        run_in_child(os._exit, 3)

