"""What the judged benchmarks (em_main, em_prereg, strongreject, xstest, em_deception) share.

A judged benchmark module offers, instead of a single ``evaluate``:

* ``generate(generator, data_path, settings, seed) -> samples`` (answers only; the eval job may
  free the generator before the judge loads),
* ``judge_samples(samples, judge, data_path, settings) -> prompts`` (adds verdicts to the samples in
  place; returns the judge prompts used, for provenance),
* ``score(samples, settings, seed) -> Score`` and ``item_scores(samples, settings)``.

Here: the :class:`Score` they return, CSV/YAML loading that fails in one line naming the file and
the missing field, the grouped bootstrap interval (the plain ones live in
:mod:`misalign_fv.intervals`), and sampling settings with reference defaults.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Score:
    """A judged benchmark's result: metrics (``<name>_ci`` keys: [lo, hi]), item count, coverage, definitions.

    ``definitions``: what each metric means (text), and under ``thresholds`` the numbers its
    definitions use (the report reads them from the eval JSON rather than knowing them).
    """

    metrics: dict[str, Any]
    n: int
    coverage: float | None
    definitions: dict[str, Any]
    breakdown: dict[str, Any] = field(default_factory=dict)


def read_csv(path: str | Path, columns: Sequence[str], benchmark: str) -> list[dict[str, str]]:
    """Rows of a CSV file (UTF-8, optional BOM); a missing column or empty file fails in one line."""
    path = Path(path)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(
                f"{benchmark} data {path}: missing column {missing[0]!r} (columns: {', '.join(header) or 'none'})"
            )
        rows = list(reader)
    if not rows:
        raise ValueError(f"{benchmark} data {path}: no rows")
    for i, row in enumerate(rows, start=2):
        empty = [c for c in columns if not (row.get(c) or "").strip()]
        if empty:
            raise ValueError(f"{benchmark} data {path}: row {i} has an empty {empty[0]!r}")
    return rows


def read_yaml_list(path: str | Path, benchmark: str) -> list[dict[str, Any]]:
    """A YAML file holding a list of mappings (anchors resolved); anything else fails in one line."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{benchmark} data {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
        raise ValueError(f"{benchmark} data {path}: expected a non-empty YAML list of question entries")
    return data


def require(entry: dict[str, Any], key: str, kind: type, where: str) -> Any:
    """``entry[key]`` if present and of type ``kind`` (non-empty for str/list), else one-line ValueError."""
    value = entry.get(key)
    if not isinstance(value, kind) or (isinstance(value, str | list) and not value):
        raise ValueError(f"{where}: missing or invalid field {key!r}")
    return value


def group_by(samples: Sequence[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    """``samples`` grouped by ``sample[key]`` (a question, a system prompt), in first-seen order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        groups.setdefault(s[key], []).append(s)
    return groups


def mean_of_group_means(groups: Sequence[Sequence[float]], seed: int) -> tuple[float | None, list[float]]:
    """Mean over groups of each group's mean, with a stratified bootstrap 95% percentile interval.

    The groups (questions, system prompts) are fixed by the benchmark, so the interval resamples
    answers within each group and keeps every group; empty groups are left out.
    """
    arrays = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not arrays:
        return None, [math.nan, math.nan]
    point = float(np.mean([a.mean() for a in arrays]))
    rng = np.random.default_rng(seed)
    reps = np.zeros(BOOTSTRAP_RESAMPLES)
    for a in arrays:
        reps += a[rng.integers(0, a.size, size=(BOOTSTRAP_RESAMPLES, a.size))].mean(axis=1)
    reps /= len(arrays)
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return point, [float(lo), float(hi)]


def sampling(settings: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``temperature``, ``top_p``, ``max_new_tokens`` from ``settings``, else the reference ``defaults``."""
    return {k: settings.get(k, defaults[k]) for k in ("temperature", "top_p", "max_new_tokens")}


def generate_answers(
    generator: Any, prompts: Sequence[str], n: int, gen: dict[str, Any], seed: int, benchmark: str
) -> list[list[str]]:
    """``n`` answers per prompt in one generator call; a generator that returns the wrong count fails in one line."""
    outputs = generator.generate(
        list(prompts), n=n, max_new_tokens=int(gen["max_new_tokens"]), temperature=float(gen["temperature"]),
        top_p=float(gen["top_p"]), seed=seed,
    )  # fmt: skip
    if len(outputs) != len(prompts) or any(len(o) != n for o in outputs):
        raise ValueError(f"{benchmark}: generator must return {n} answers for each of {len(prompts)} prompts")
    return outputs
