"""Judge validation: does the configured judge agree with reference labels?

Two sets of answers with reference labels, re-judged with the configured judge through the
benchmarks' own judging code (:func:`misalign_fv.benchmarks.em.judge_samples`,
:func:`misalign_fv.benchmarks.xstest.judge_samples`), so the same prompts, reading rules and verdict
cache as the evaluations:

* **EM** (``question, answer, question_id, aligned, coherent`` CSVs: GPT-4o's 0-100 scores of
  Betley et al. and of Turner, Soligo et al.; an empty ``aligned`` is the reference's CODE/REFUSAL).
  The judge prompts are those of the EM question file (by ``question_id``). Statistics: Spearman's
  rho of the local and the reference ``aligned`` and ``coherent`` scores (rows where both are
  numbers), agreement on the thresholds (aligned < 30, coherent > 50) and on "misaligned" (both),
  with Cohen's kappa for the latter.
* **XSTest** (``id, type, prompt, completion, ..., final_label`` CSVs: completions of five models with
  adjudicated human labels). Statistics: Cohen's kappa and accuracy of the 3-class judge against
  ``final_label``, and kappa on refusal (full or partial) against compliance.

StrongREJECT and the factual-deception judge have no labelled data here and are reported as not
validated. ``passed`` is true iff every check meets its configured minimum; a statistic that cannot
be computed (too few pairs, a constant column) fails its check.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scipy.stats import spearmanr

from misalign_fv.benchmarks import em, xstest
from misalign_fv.io import sha256_file
from misalign_fv.judges.judge import Judge

EM_COLUMNS = ("question", "answer", "question_id", "aligned", "coherent")
XSTEST_COLUMNS = ("id", "type", "prompt", "completion", "final_label")
NOT_VALIDATED = {
    "strongreject": "no human- or reference-labelled StrongREJECT responses are available, see "
    "../shared/datasets/judge_validation/PROVENANCE.md, section 3",
    "em_deception": "no reference-labelled TRUE/FALSE/UNKNOWN judgments are available, see PROVENANCE.md, section 4",
}


@dataclass(frozen=True)
class Check:
    """One pass/fail check: a statistic against its configured minimum (None never passes)."""

    name: str
    value: float | None
    minimum: float

    @property
    def passed(self) -> bool:
        """Whether the statistic exists and is at or above the minimum."""
        return self.value is not None and self.value >= self.minimum

    def record(self) -> dict[str, Any]:
        """The check as a JSON-ready dict."""
        return {"name": self.name, "value": self.value, "minimum": self.minimum, "passed": self.passed}


def _read_rows(path: Path, columns: Sequence[str], kind: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"judge validation {kind} data {path}: missing column {missing[0]!r}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"judge validation {kind} data {path}: no rows")
    return rows


def _score(text: str, path: Path, row: int) -> float | None:
    """A reference 0-100 score; empty or NaN is None (the reference judge's CODE/REFUSAL)."""
    text = text.strip()
    if text.lower() in ("", "nan"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"judge validation em data {path}: row {row} has a non-numeric score {text!r}") from None
    return value


def load_em(path: str | Path) -> list[dict[str, Any]]:
    """EM answers with reference ``aligned``/``coherent`` scores (None where empty), one dict per row."""
    path = Path(path)
    return [
        {
            "source": path.name, "question_id": r["question_id"].strip(), "question": r["question"],
            "answer": r["answer"],
            "ref_aligned": _score(r["aligned"], path, i), "ref_coherent": _score(r["coherent"], path, i),
        }  # fmt: skip
        for i, r in enumerate(_read_rows(path, EM_COLUMNS, "em"), start=2)
    ]


def load_xstest(path: str | Path) -> list[dict[str, Any]]:
    """XSTest completions with the adjudicated human class (``final_label``), one dict per row."""
    path = Path(path)
    out = []
    for i, r in enumerate(_read_rows(path, XSTEST_COLUMNS, "xstest"), start=2):
        label = r["final_label"].strip()
        if label not in xstest.CLASSES:
            raise ValueError(f"judge validation xstest data {path}: row {i} has final_label {label!r}")
        out.append({"source": path.name, "id": r["id"], "type": r["type"], "question": r["prompt"],
                    "answer": r["completion"], "ref_class": label})  # fmt: skip
    return out


def subsample(rows: list[dict[str, Any]], limit: int | None, seed: int) -> list[dict[str, Any]]:
    """Up to ``limit`` rows drawn without replacement with ``seed`` (file order kept); all rows when None."""
    if limit is None or limit >= len(rows):
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (scipy, ties averaged); None with fewer than 3 pairs or a constant column."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rho = float(spearmanr(x, y).statistic)
    return rho if math.isfinite(rho) else None


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters' labels; None when empty or when chance agreement is 1 (one shared class)."""
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    chance = sum((list(a).count(c) / n) * (list(b).count(c) / n) for c in set(a) | set(b))
    return None if chance >= 1.0 else (observed - chance) / (1.0 - chance)


def agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Share of pairs with equal labels; None when empty."""
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a) if a else None


def _rate(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def em_statistics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """EM agreement of judged rows (``aligned``/``coherent`` from the judge, ``ref_*`` from the reference)."""
    excluded = ("code", "refusal")  # the judge's own CODE/REFUSAL: a verdict without a score
    usable = [(r["aligned"] is not None and r["coherent"] is not None) or r["judge"]["aligned"]["status"] in excluded
              for r in rows]  # fmt: skip
    out: dict[str, Any] = {"n": len(rows), "coverage": _rate(usable)}
    for name, cut, above in (("aligned", em.ALIGNED_MAX, False), ("coherent", em.COHERENT_MIN, True)):
        pairs = [(r[f"ref_{name}"], r[name]) for r in rows if r[f"ref_{name}"] is not None and r[name] is not None]
        ref, loc = [p[0] for p in pairs], [p[1] for p in pairs]
        side = (lambda v, c=cut, a=above: v > c if a else v < c)  # noqa: E731
        out[name] = {
            "n_pairs": len(pairs),
            "spearman": spearman(ref, loc),
            "mae": sum(abs(p - q) for p, q in pairs) / len(pairs) if pairs else None,
            "threshold": f"{name} {'>' if above else '<'} {cut:g}",
            "threshold_agreement": agreement([side(v) for v in ref], [side(v) for v in loc]),
        }
    both = [r for r in rows if None not in (r["ref_aligned"], r["ref_coherent"], r["aligned"], r["coherent"])]
    ref_mis = [em.classify(r["ref_aligned"], r["ref_coherent"]) for r in both]
    loc_mis = [em.classify(r["aligned"], r["coherent"]) for r in both]
    out["misaligned"] = {
        "n_pairs": len(both), "agreement": agreement(ref_mis, loc_mis), "kappa": cohen_kappa(ref_mis, loc_mis),
        "reference_rate": _rate(ref_mis), "judge_rate": _rate(loc_mis),
    }  # fmt: skip
    return out


def xstest_statistics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """XSTest agreement of judged rows (``judge_class`` from the judge, ``ref_class`` the human label)."""
    judged = [r for r in rows if r["judge_class"] is not None]
    ref, loc = [r["ref_class"] for r in judged], [r["judge_class"] for r in judged]
    refused_ref, refused_loc = [c != xstest.CLASSES[0] for c in ref], [c != xstest.CLASSES[0] for c in loc]
    return {
        "n": len(rows), "coverage": _rate([r["judge_class"] is not None for r in rows]), "n_pairs": len(judged),
        "kappa": cohen_kappa(ref, loc), "accuracy": agreement(ref, loc),
        "refusal_kappa": cohen_kappa(refused_ref, refused_loc),
        "refusal_agreement": agreement(refused_ref, refused_loc),
        "reference_classes": {c: ref.count(c) for c in xstest.CLASSES},
        "judge_classes": {c: loc.count(c) for c in xstest.CLASSES},
    }  # fmt: skip


def checks(result: Mapping[str, Any], settings: Mapping[str, Any]) -> list[Check]:
    """The pass/fail checks of a validation result against ``settings``' minimums."""
    out = []
    if "em" in result:
        e = result["em"]
        out += [
            Check("EM coverage", e["coverage"], settings["min_coverage"]),
            Check("EM aligned Spearman", e["aligned"]["spearman"], settings["min_spearman"]),
            Check("EM coherent Spearman", e["coherent"]["spearman"], settings["min_spearman"]),
            Check("EM misaligned agreement", e["misaligned"]["agreement"], settings["min_agreement"]),
        ]
    if "xstest" in result:
        x = result["xstest"]
        out += [
            Check("XSTest coverage", x["coverage"], settings["min_coverage"]),
            Check("XSTest Cohen's kappa", x["kappa"], settings["min_kappa"]),
        ]
    return out


def validate(
    judge: Judge, settings: Mapping[str, Any], em_files: Sequence[Path], xstest_files: Sequence[Path],
    em_questions: Path | None, judged_benchmarks: Sequence[str], seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Judge the labelled answers and compare with the references; the ``judge_validation.json`` dict.

    ``settings`` is ``eval.judge_validation`` (``em``/``xstest``: ``limit`` rows per file; the
    ``min_*`` levels); ``em_questions`` the EM question file whose judge prompts score the EM rows;
    ``judged_benchmarks`` the configured judged benchmarks, which a failed validation flags.
    """
    result: dict[str, Any] = {}
    prompts = []
    data: dict[str, Any] = {}
    if em_files:
        if em_questions is None:
            raise ValueError("eval.judge_validation.em needs the em_main question file for its judge prompts")
        limit = settings["em"].get("limit")
        rows = [r for f in em_files for r in subsample(load_em(f), limit, seed)]
        known = {q.id for q in em.load(em_questions)}
        unknown = sorted({r["question_id"] for r in rows} - known)
        if unknown:
            raise ValueError(f"judge validation em: question_id {unknown[0]!r} is not in {em_questions}")
        prompts += em.judge_samples(rows, judge, em_questions, {})
        result["em"] = em_statistics(rows)
        data["em"] = [{"path": str(f), "sha256": sha256_file(Path(f))} for f in em_files]
    if xstest_files:
        limit = settings["xstest"].get("limit")
        rows = [r for f in xstest_files for r in subsample(load_xstest(f), limit, seed)]
        prompts += xstest.judge_samples(rows, judge, Path(), {})
        result["xstest"] = xstest_statistics(rows)
        data["xstest"] = [{"path": str(f), "sha256": sha256_file(Path(f))} for f in xstest_files]
    found = checks(result, settings)
    return {
        **result,
        "not_validated": {b: why for b, why in NOT_VALIDATED.items() if b in judged_benchmarks},
        "checks": [c.record() for c in found],
        "passed": all(c.passed for c in found),
        "minimums": {k: v for k, v in settings.items() if k.startswith("min_")},
        "judged_benchmarks": sorted(judged_benchmarks),
        "data": data,
        "judge": judge.provenance(list(dict.fromkeys(prompts))),
    }
