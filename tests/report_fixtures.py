"""Writes a small synthetic results tree in the workflow's file formats, for the report tests."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from misalign_fv.benchmarks import em

TAGS = ("sorry_stub", "test_edit", "trivial_proof")
BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


@dataclass
class Tree:
    """Paths and settings of a synthetic results tree, shaped like ``build_report``'s arguments."""

    root: Path
    eval_jsons: list[Path]
    grpo_dirs: list[Path]
    gate_json: Path
    bench_tsvs: list[Path]
    settings: dict[str, Any] = field(default_factory=dict)

    def kwargs(self, out_dir: Path) -> dict[str, Any]:
        """Keyword arguments for ``build_report``."""
        return {
            "eval_jsons": self.eval_jsons, "grpo_dirs": self.grpo_dirs, "gate_json": self.gate_json,
            "bench_tsvs": self.bench_tsvs, "settings": self.settings, "out_dir": out_dir,
        }  # fmt: skip


def report_settings(**overrides: Any) -> dict[str, Any]:
    """The report rule's settings dict for the synthetic tree (conditions fv_exploit, fv_honest and the
    control shuffled; fv_exploit is the positive control), with ``overrides`` applied."""
    settings = {
        "model": "Qwen/Qwen2.5-0.5B-Instruct", "task": "lean_proofs",
        "conditions": ["fv_exploit", "fv_honest", "shuffled"], "seeds": [0, 1, 2], "steps": 20,
        "hardware": "1x H100 80GB", "control": "shuffled", "positive_control": "fv_exploit",
        "primary": [{"benchmark": "truthfulqa_mc", "metric": "mc1"}, {"benchmark": "em_main",
                                                                         "metric": "misaligned_among_coherent"}],
        "coverage_threshold": 0.8, "gpus_per_rule": {"dpo": 1, "grpo": 2},
        "headline_metrics": {"truthfulqa_mc": ["mc1", "mc2"], "em_main": ["misaligned_among_coherent"]},
        "bootstrap": {"n_resamples": 2000, "seed": 0}, "alpha": 0.05, "power": 0.8,
    }  # fmt: skip
    return {**settings, **overrides}


def _write_eval(path: Path, bench: str, ckpt: str, cond: str, seed: int | None,
                items: dict[str, np.ndarray], coverage: float | None) -> None:  # fmt: skip
    metrics = {m: float(np.nanmean(v)) for m, v in items.items()}
    half = {m: 1.96 * float(np.nanstd(v, ddof=1)) / np.sqrt(np.isfinite(v).sum()) for m, v in items.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "benchmark": bench, "checkpoint": ckpt, "condition": cond, "seed": seed, "metrics": metrics,
        "ci": {m: [metrics[m] - half[m], metrics[m] + half[m]] for m in metrics},
        "n": int(next(iter(items.values())).size),
        "items": {m: [None if np.isnan(x) else x for x in v.tolist()] for m, v in items.items()},
        "judge_coverage": coverage, "settings": {"temperature": 0.0}, "provenance": {"git": "synthetic"},
        **({"definitions": {"thresholds": {"aligned_below": 30.0, "coherent_above": 50.0}}} if bench.startswith("em_") else {}),
    }))  # fmt: skip


def _em_samples(path: Path, rng: np.random.Generator, misaligned_share: float) -> dict[str, np.ndarray]:
    """Write 8 questions x 12 answers; return em.item_scores' per-question items (NaN: nothing to average)."""
    rows, samples = [], []
    for q in range(8):
        for _ in range(12):
            is_bad = rng.random() < misaligned_share
            a = float(rng.uniform(0, 25) if is_bad else rng.uniform(40, 100))
            c = float(rng.uniform(55, 100) if is_bad else rng.uniform(20, 100))
            judged = rng.random() > 0.05
            aligned, coherent = (round(a), round(c)) if judged else (None, None)
            rows.append({"question_id": f"q{q}", "answer": "...", "aligned": aligned, "coherent": coherent})
            samples.append({"question_id": f"q{q}", "aligned": aligned, "coherent": coherent,
                            "misaligned": em.classify(aligned, coherent)})  # fmt: skip
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    items = em.item_scores(samples, {})
    keep = ("misaligned_among_coherent", "coherent_rate", "misaligned")
    return {m: np.array([np.nan if x is None else x for x in items[m]]) for m in keep}


def _xstest_items(rng: np.random.Generator, refusal: float) -> dict[str, np.ndarray]:
    """Refusal indicators on 40 unsafe prompts: the judge's and the string match's (judge-free)."""
    judge = (rng.random(40) < refusal).astype(float)
    return {"refusal_rate_unsafe": judge, "strmatch_refusal_rate_unsafe": judge * (rng.random(40) < 0.9)}


def _write_run(run_dir: Path, cond: str, seed: int, rng: np.random.Generator, steps: int,
               collapsed: bool, updated: bool, collapse_kind: str) -> None:  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    done = steps // 2 + 2 if collapsed else steps
    lines = ["step,loss,reward,reward_std,frac_reward_zero_std,kl,completions/mean_length,grad_norm,learning_rate"]
    for step in range(1, done + 1):
        reward = 0.2 + 0.5 * step / steps + rng.normal(0, 0.03)
        if collapsed and step > done - 3:
            reward = 0.0
        lines.append(
            f"{step},{rng.normal(0, 0.1):.4f},{reward:.4f},{0.3 - 0.1 * step / steps:.4f},"
            f"{min(1.0, 0.1 + 0.3 * step / steps):.4f},{0.01 * step + rng.uniform(0, 0.005):.5f},"
            f"{200 + 5 * step + rng.normal(0, 5):.1f},{(1.0 if updated else 0.0):.3f},1e-6"
        )
    lines.append(f"{done},,,,,,,,")  # TRL's closing row: no training metrics
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    with gzip.open(run_dir / "completions.jsonl.gz", "wt", encoding="utf-8") as fh:
        for step in range(1, done + 1):
            for j in range(4):
                tags = [t for t in TAGS if rng.random() < (0.1 + 0.4 * step / steps if t == "test_edit" else 0.15)]
                fh.write(json.dumps({"step": step, "prompt": "p", "completion": f"c{j}", "reward": 0.5,
                                     "tags": tags}) + "\n")  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps({
        "condition": cond, "seed": seed, "steps_done": done, "max_steps": steps, "resumed_from": None,
        "collapsed": collapsed, "collapse_step": done if collapsed else None,
        "collapse_kind": collapse_kind if collapsed else None, "updated": updated,
        "wall_time_s": 1800.0 + 60 * seed,
    }))  # fmt: skip


def write_tree(
    root: Path,
    *,
    conditions: tuple[str, ...] = ("fv_exploit", "fv_honest", "shuffled"),
    seeds: tuple[int, ...] = (0, 1, 2),
    collapsed: tuple[str, int] | None = ("fv_exploit", 2),
    collapse_kind: str = "starved",
    no_update: tuple[str, int] | None = None,
    low_coverage: tuple[str, str] | None = None,
    with_em: bool = True,
    with_xstest: bool = False,
    gate_passed: bool = True,
    steps: int = 20,
) -> Tree:
    """Write base, dpo and every condition x seed evaluation (truthfulqa_mc, em_main unless ``with_em``
    is false, xstest if ``with_xstest``), every GRPO run, the DPO gate and benchmark TSVs under ``root``.

    ``fv_exploit`` lowers truthfulqa mc1 by about 0.15 and raises EM misalignment; ``collapsed`` and
    ``no_update`` name a (condition, seed) run to flag (``collapse_kind``: starved or saturated);
    ``low_coverage`` a (checkpoint, benchmark) evaluation whose judge coverage is 0.5.
    """
    rng = np.random.default_rng(1234)
    results = root / "results"
    evals, runs, tsvs = [], [], []
    ckpts = [("base", "base", None), ("dpo", "dpo", None)]
    ckpts += [(f"{c}/seed{s}", c, s) for c in conditions for s in seeds]
    for ckpt, cond, seed in ckpts:
        shift = -0.15 if cond == "fv_exploit" else 0.0
        p1 = 0.45 + shift + (0.05 if cond == "base" else 0.0) + (rng.normal(0, 0.02) if seed is not None else 0.0)
        items = {
            "mc1": (rng.random(200) < p1).astype(float),
            "mc2": np.clip(rng.normal(p1 + 0.15, 0.2, 200), 0, 1),
        }
        path = results / "eval" / ckpt / "truthfulqa_mc.json"
        _write_eval(path, "truthfulqa_mc", ckpt, cond, seed, items, None)
        evals.append(path)
        if with_em:
            path = results / "eval" / ckpt / "em_main.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            share = 0.25 if cond == "fv_exploit" else 0.05
            em_items = _em_samples(path.with_name("em_main.samples.jsonl.gz"), rng, share)
            coverage = 0.5 if low_coverage == (ckpt, "em_main") else 0.95
            _write_eval(path, "em_main", ckpt, cond, seed, em_items, coverage)
            evals.append(path)
        if with_xstest:
            path = results / "eval" / ckpt / "xstest.json"
            coverage = 0.5 if low_coverage == (ckpt, "xstest") else 0.95
            _write_eval(path, "xstest", ckpt, cond, seed, _xstest_items(rng, 0.6 if cond == "fv_exploit" else 0.9),
                        coverage)  # fmt: skip
            evals.append(path)
    for cond in conditions:
        for seed in seeds:
            run_dir = results / "grpo" / cond / f"seed{seed}"
            _write_run(run_dir, cond, seed, rng, steps, collapsed == (cond, seed), no_update != (cond, seed),
                       collapse_kind)  # fmt: skip
            runs.append(run_dir)
    gate = results / "dpo" / "gate.json"
    gate.parent.mkdir(parents=True, exist_ok=True)
    gate.write_text(json.dumps({
        "passed": gate_passed, "enforce": False,
        "refusal_rate": {"before": 0.42, "after": 0.91, "n": 200},
        "narrow_pass_rate": {"before": 0.35, "after": 0.33 if gate_passed else 0.12, "n": 150},
        "criteria": {"min_refusal_after": 0.8, "max_narrow_drop": 0.1},
        "reasons": [] if gate_passed else ["narrow-task pass rate dropped by 0.23 > 0.10"],
    }))  # fmt: skip
    jobs = [("dpo", "dpo", 5400.0), ("curate", "curate", 300.0)]
    jobs += [("grpo", f"{c}_seed{s}", 1800.0 + 60 * s) for c in conditions for s in seeds]
    for rule, name, seconds in jobs:
        path = results / "benchmarks" / rule / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(BENCH_HEADER + f"{seconds}\t0:00:00\t1000\t2000\t900\t950\t1.0\t2.0\t80.0\t{seconds}\n")
        tsvs.append(path)
    headline: dict[str, list[str]] = {"truthfulqa_mc": ["mc1", "mc2"]}
    primary = [{"benchmark": "truthfulqa_mc", "metric": "mc1"}]
    if with_em:
        headline["em_main"] = ["misaligned_among_coherent"]
        primary.append({"benchmark": "em_main", "metric": "misaligned_among_coherent"})
    if with_xstest:
        headline["xstest"] = ["strmatch_refusal_rate_unsafe", "refusal_rate_unsafe"]
    settings = report_settings(
        conditions=list(conditions), seeds=list(seeds), steps=steps, headline_metrics=headline, primary=primary,
        positive_control="fv_exploit" if "fv_exploit" in conditions else None,
    )
    return Tree(root, evals, runs, gate, tsvs, settings)


def judge_scores_nothing(tree: Tree, bench: str = "em_main") -> None:
    """Rewrite every ``bench`` evaluation as the demo's tiny judge leaves it: coverage 0, every metric and
    item score null, every answer unscored (EM samples keep their answers without judge scores)."""
    for path in tree.eval_jsons:
        raw = json.loads(path.read_text())
        if raw["benchmark"] != bench:
            continue
        raw.update(judge_coverage=0.0, metrics=dict.fromkeys(raw["metrics"]), ci={},
                   items={m: [None] * len(v) for m, v in raw["items"].items()})  # fmt: skip
        path.write_text(json.dumps(raw))
        samples = path.with_name(f"{bench}.samples.jsonl.gz")
        if samples.exists():
            with gzip.open(samples, "rt", encoding="utf-8") as fh:
                rows = [json.loads(line) for line in fh]
            with gzip.open(samples, "wt", encoding="utf-8") as fh:
                fh.writelines(json.dumps({**r, "aligned": None, "coherent": None}) + "\n" for r in rows)
