"""Readers for the report's inputs: eval JSONs, EM samples, GRPO run directories, the DPO gate and
Snakemake benchmark TSVs.

Every reader validates what it reads and raises :class:`ReportInputError` whose message is one
line starting with the offending path, so a broken input never surfaces as a pandas traceback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from misalign_fv.io import jsonl_objects

# metrics.csv columns the report plots; any of them may be absent, none may be non-numeric.
TRAINING_COLUMNS = (
    "reward",
    "reward_std",
    "frac_reward_zero_std",
    "kl",
    "completions/mean_length",
    "grad_norm",
)


class ReportInputError(ValueError):
    """A report input is missing or malformed; the message is one line that starts with its path."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(" ".join(f"{path}: {problem}".split()))


@dataclass(frozen=True)
class EvalResult:
    """One checkpoint's result on one benchmark (``results/eval/{checkpoint}/{benchmark}.json``)."""

    path: Path
    benchmark: str
    checkpoint: str
    condition: str
    seed: int | None
    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]]
    n: int
    items: dict[str, np.ndarray]
    judge_coverage: float | None
    step: int | None = None  # training step of a trajectory point (None: a final evaluation)
    thresholds: dict[str, float] = field(default_factory=dict)  # definitions.thresholds: numbers the metrics use

    @property
    def samples_path(self) -> Path:
        """The per-answer samples file written beside the JSON."""
        return self.path.with_name(f"{self.benchmark}.samples.jsonl.gz")


@dataclass(frozen=True)
class GrpoRun:
    """One GRPO run: its summary, its logged metrics by step and its tag rates by step."""

    path: Path
    condition: str
    seed: int
    steps_done: int
    max_steps: int
    resumed_from: Any
    collapsed: bool
    collapse_step: int | None
    updated: bool
    wall_time_s: float
    metrics: pd.DataFrame
    tag_rates: pd.DataFrame
    collapse_kind: str | None = None  # "starved" / "saturated" when collapsed

    @property
    def checkpoint(self) -> str:
        """The checkpoint name its evaluations are filed under."""
        return f"{self.condition}/seed{self.seed}"


@dataclass(frozen=True)
class Rate:
    """A before/after pair of rates measured on ``n`` prompts."""

    before: float
    after: float
    n: int


@dataclass(frozen=True)
class Gate:
    """The DPO gate's verdict (``results/dpo/gate.json``)."""

    path: Path
    passed: bool
    enforce: bool
    refusal: Rate
    narrow_pass: Rate
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class BenchRecord:
    """The wall time of one Snakemake job, from its benchmark TSV."""

    path: Path
    rule: str
    seconds: float


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ReportInputError(path, "file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportInputError(path, f"not valid JSON ({exc})") from exc


def _require(path: Path, obj: Any, key: str, types: type | tuple[type, ...]) -> Any:
    if not isinstance(obj, dict):
        raise ReportInputError(path, "expected a JSON object")
    if key not in obj:
        raise ReportInputError(path, f"missing key '{key}'")
    value = obj[key]
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        expected = " or ".join(t.__name__ for t in allowed)
        raise ReportInputError(path, f"'{key}' is a {type(value).__name__}, expected {expected}")
    return value


def _number(path: Path, where: str, value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReportInputError(path, f"{where} is not a number: {value!r}")
    return float(value)


def load_eval(path: str | Path) -> EvalResult:
    """Read and validate one eval JSON; a null metric or item score becomes NaN (items keep their place)."""
    path = Path(path)
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise ReportInputError(path, "top level is not a JSON object")
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ReportInputError(path, f"'seed' must be an integer or null, got {seed!r}")
    metrics_raw = _require(path, raw, "metrics", dict)
    metrics = {str(k): _number(path, f"metrics.{k}", v) for k, v in metrics_raw.items()}
    ci: dict[str, tuple[float, float]] = {}
    for name, bounds in (raw.get("ci") or {}).items():
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise ReportInputError(path, f"ci.{name} is not a [lo, hi] pair")
        ci[str(name)] = (_number(path, f"ci.{name}", bounds[0]), _number(path, f"ci.{name}", bounds[1]))
    items: dict[str, np.ndarray] = {}
    for name, values in (raw.get("items") or {}).items():
        if not isinstance(values, list):
            raise ReportInputError(path, f"items.{name} is not a list")
        # Kept in place, NaN for an unscored item, so that checkpoints pair item by item.
        items[str(name)] = np.array([_number(path, f"items.{name}", v) for v in values], dtype=float)
    coverage = raw.get("judge_coverage")
    step = raw.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise ReportInputError(path, f"'step' must be an integer or null, got {step!r}")
    return EvalResult(
        path=path,
        benchmark=_require(path, raw, "benchmark", str),
        checkpoint=_require(path, raw, "checkpoint", str),
        condition=_require(path, raw, "condition", str),
        seed=seed,
        metrics=metrics,
        ci=ci,
        n=_require(path, raw, "n", int),
        items=items,
        judge_coverage=None if coverage is None else _number(path, "judge_coverage", coverage),
        step=step,
        thresholds=_thresholds(path, raw.get("definitions")),
    )


def _thresholds(path: Path, definitions: Any) -> dict[str, float]:
    """``definitions.thresholds`` of an eval JSON (e.g. EM's ``aligned_below``/``coherent_above``); {} when absent."""
    raw = definitions.get("thresholds") if isinstance(definitions, dict) else None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ReportInputError(path, "definitions.thresholds is not an object")
    out = {str(k): _number(path, f"definitions.thresholds.{k}", v) for k, v in raw.items()}
    if any(math.isnan(v) for v in out.values()):
        raise ReportInputError(path, "definitions.thresholds has a null value")
    return out


def load_trajectory(run_dirs: Iterable[str | Path]) -> list[EvalResult]:
    """Every trajectory point's eval JSONs under the given ``results/trajectory/<run>`` folders."""
    out = []
    for d in sorted(Path(d) for d in run_dirs):
        if not d.is_dir():
            raise ReportInputError(d, "trajectory folder not found")
        for path in sorted(d.glob("step*/*.json")):
            result = load_eval(path)
            if result.step is None:
                raise ReportInputError(path, "a trajectory result without 'step'")
            out.append(result)
    return out


def load_signal(path: str | Path) -> dict[str, dict[str, Any]]:
    """The reward-signal preflight's per-condition rows (``results/preflight/reward_signal.json``)."""
    path = Path(path)
    raw = _read_json(path)
    rows = _require(path, raw, "conditions", dict)
    for cond, row in rows.items():
        for key in ("groups", "varying_groups", "varying_share", "mean_reward"):
            _require(path, row, key, (int, float))
    return rows


def _jsonl_gz(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of a (gzip) JSONL file; a missing or malformed file raises ReportInputError."""
    if not path.is_file():
        raise ReportInputError(path, "file not found")
    try:
        yield from jsonl_objects(path)
    except ValueError as exc:
        raise ReportInputError(path, str(exc).removeprefix(str(path)).lstrip(":")) from exc


def load_em_samples(path: str | Path) -> pd.DataFrame:
    """Read EM samples into columns ``question_id``, ``aligned``, ``coherent`` (NaN where unjudged)."""
    path = Path(path)
    rows = []
    for lineno, rec in _jsonl_gz(path):
        where = f"line {lineno}:"
        rows.append(
            (
                str(rec.get("question_id", "")),
                _number(path, f"{where} 'aligned'", rec.get("aligned")),
                _number(path, f"{where} 'coherent'", rec.get("coherent")),
            )
        )
    return pd.DataFrame(rows, columns=["question_id", "aligned", "coherent"])


def _read_metrics_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ReportInputError(path, "file not found")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ReportInputError(path, f"not a readable CSV ({exc})") from exc
    if "step" not in frame.columns:
        raise ReportInputError(path, "no 'step' column")
    columns = ["step", *[c for c in TRAINING_COLUMNS if c in frame.columns]]
    for col in columns:
        try:
            frame[col] = pd.to_numeric(frame[col], errors="raise").astype(float)
        except (ValueError, TypeError) as exc:
            raise ReportInputError(path, f"column '{col}' is not numeric ({exc})") from exc
    if frame["step"].isna().any():
        raise ReportInputError(path, "empty 'step' value")
    # TRL writes a closing row (train_runtime, ...) on the last step; keep the last value per column.
    return frame[columns].groupby("step", sort=True).last()


def _tag_rates(path: Path) -> pd.DataFrame:
    counts: dict[int, int] = {}
    tagged: dict[tuple[int, str], int] = {}
    for lineno, rec in _jsonl_gz(path):
        step, tags = rec.get("step"), rec.get("tags", [])
        if isinstance(step, bool) or not isinstance(step, int):
            raise ReportInputError(path, f"line {lineno}: 'step' is not an integer")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ReportInputError(path, f"line {lineno}: 'tags' is not a list of strings")
        counts[step] = counts.get(step, 0) + 1
        for tag in set(tags):
            tagged[step, tag] = tagged.get((step, tag), 0) + 1
    steps = sorted(counts)
    tags_seen = sorted({tag for _, tag in tagged})
    data = {t: [tagged.get((s, t), 0) / counts[s] for s in steps] for t in tags_seen}
    return pd.DataFrame(data, index=pd.Index(steps, name="step", dtype=float), columns=tags_seen)


def load_grpo_run(run_dir: str | Path) -> GrpoRun:
    """Read ``summary.json``, ``metrics.csv`` and ``completions.jsonl.gz`` of one GRPO run."""
    run_dir = Path(run_dir)
    spath = run_dir / "summary.json"
    raw = _read_json(spath)
    collapse_step = raw.get("collapse_step") if isinstance(raw, dict) else None
    if collapse_step is not None and not isinstance(collapse_step, int):
        raise ReportInputError(spath, f"'collapse_step' must be an integer or null, got {collapse_step!r}")
    kind = raw.get("collapse_kind")
    if kind not in (None, "starved", "saturated"):
        raise ReportInputError(spath, f"'collapse_kind' must be starved, saturated or null, got {kind!r}")
    return GrpoRun(
        path=run_dir,
        condition=_require(spath, raw, "condition", str),
        seed=_require(spath, raw, "seed", int),
        steps_done=_require(spath, raw, "steps_done", int),
        max_steps=_require(spath, raw, "max_steps", int),
        resumed_from=raw.get("resumed_from"),
        collapsed=_require(spath, raw, "collapsed", bool),
        collapse_step=collapse_step,
        updated=_require(spath, raw, "updated", bool),
        wall_time_s=float(_require(spath, raw, "wall_time_s", (int, float))),
        metrics=_read_metrics_csv(run_dir / "metrics.csv"),
        tag_rates=_tag_rates(run_dir / "completions.jsonl.gz"),
        collapse_kind=kind,
    )


def _rate(path: Path, raw: Any, key: str) -> Rate:
    block = _require(path, raw, key, dict)
    return Rate(
        before=float(_require(path, block, "before", (int, float))),
        after=float(_require(path, block, "after", (int, float))),
        n=_require(path, block, "n", int),
    )


def load_gate(path: str | Path) -> Gate:
    """Read and validate the DPO gate JSON."""
    path = Path(path)
    raw = _read_json(path)
    reasons = raw.get("reasons", []) if isinstance(raw, dict) else []
    if not isinstance(reasons, list):
        raise ReportInputError(path, "'reasons' is not a list")
    return Gate(
        path=path,
        passed=_require(path, raw, "passed", bool),
        enforce=_require(path, raw, "enforce", bool),
        refusal=_rate(path, raw, "refusal_rate"),
        narrow_pass=_rate(path, raw, "narrow_pass_rate"),
        reasons=tuple(str(r) for r in reasons),
    )


def load_bench_tsv(path: str | Path) -> BenchRecord:
    """Read one Snakemake benchmark TSV; the rule is the directory right below ``benchmarks/``.

    The job's wall time is the sum of column ``s`` over its rows (one row per ``repeat``).
    """
    path = Path(path)
    dirs = path.parent.parts
    if "benchmarks" not in dirs:
        raise ReportInputError(path, "not under a 'benchmarks/' directory, cannot tell its rule")
    i = len(dirs) - 1 - dirs[::-1].index("benchmarks")
    rule = dirs[i + 1] if i + 1 < len(dirs) else path.stem
    if not path.is_file():
        raise ReportInputError(path, "file not found")
    try:
        frame = pd.read_csv(path, sep="\t")
        seconds = pd.to_numeric(frame["s"], errors="raise")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, KeyError, ValueError) as exc:
        raise ReportInputError(path, f"not a Snakemake benchmark TSV with a numeric 's' column ({exc})") from exc
    if frame.empty:
        raise ReportInputError(path, "no rows")
    return BenchRecord(path=path, rule=rule, seconds=float(seconds.sum()))
