"""The report rule's settings, validated once into a typed object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from misalign_fv.report.load import ReportInputError

MAX_PRIMARY = 4


@dataclass(frozen=True)
class ReportSettings:
    """Everything the report needs besides the result files."""

    model: str
    task: str
    conditions: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int
    hardware: str
    control: str
    positive_control: str | None
    primary: tuple[tuple[str, str], ...]
    coverage_threshold: float
    gpus_per_rule: dict[str, int]
    headline_metrics: dict[str, tuple[str, ...]]
    alpha: float
    power: float

    @property
    def confidence(self) -> float:
        """Confidence level of every interval, 1 - alpha."""
        return 1 - self.alpha

    @property
    def treatments(self) -> tuple[str, ...]:
        """The conditions compared against the control."""
        return tuple(c for c in self.conditions if c != self.control)

    @property
    def family_size(self) -> int:
        """Number of pre-registered primary tests: each primary endpoint x each condition vs the control."""
        return len(self.primary) * len(self.treatments)

    @property
    def corrected_alpha(self) -> float:
        """alpha / family size: the level of Holm's first step, at which primary MDEs are stated."""
        return self.alpha / max(self.family_size, 1)

    def role(self, condition: str) -> str:
        """``control``, ``positive control`` or ``treatment``."""
        if condition == self.control:
            return "control"
        return "positive control" if condition == self.positive_control else "treatment"

    @property
    def title(self) -> str:
        """The report's title."""
        return f"misalign-fv report: GRPO on {self.task} with {self.model}"

    def headline_pairs(self) -> list[tuple[str, str]]:
        """``(benchmark, metric)`` of every headline metric, benchmarks sorted, metrics as configured."""
        return [(b, m) for b in sorted(self.headline_metrics) for m in self.headline_metrics[b]]

    def checkpoints(self) -> list[str]:
        """Every checkpoint the report expects an evaluation of, in display order."""
        return ["base", "dpo", *(f"{c}/seed{s}" for c in self.conditions for s in self.seeds)]

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> ReportSettings:
        """Validate the settings dict passed by the rule; errors name the offending key."""

        def get(key: str) -> Any:
            if key not in raw:
                raise ReportInputError("settings", f"missing key '{key}'")
            return raw[key]

        positive = get("positive_control")
        cfg = cls(
            model=str(get("model")),
            task=str(get("task")),
            conditions=tuple(str(c) for c in get("conditions")),
            seeds=tuple(int(s) for s in get("seeds")),
            steps=int(get("steps")),
            hardware=str(get("hardware")),
            control=str(get("control")),
            positive_control=None if positive is None else str(positive),
            primary=_primary(get("primary")),
            coverage_threshold=float(get("coverage_threshold")),
            gpus_per_rule={str(k): int(v) for k, v in get("gpus_per_rule").items()},
            headline_metrics={str(b): tuple(str(m) for m in ms) for b, ms in get("headline_metrics").items()},
            alpha=float(get("alpha")),
            power=float(get("power")),
        )
        if cfg.control not in cfg.conditions:
            problem = f"control '{cfg.control}' is not among conditions {list(cfg.conditions)}"
            raise ReportInputError("settings", problem)
        if cfg.positive_control is not None and cfg.positive_control not in cfg.treatments:
            problem = f"positive_control '{cfg.positive_control}' is not a non-control condition {list(cfg.treatments)}"
            raise ReportInputError("settings", problem)
        if not cfg.seeds:
            raise ReportInputError("settings", "no seeds")
        return cfg


def _primary(raw: Any) -> tuple[tuple[str, str], ...]:
    """The primary endpoints, a list of 1-4 distinct ``{benchmark, metric}`` mappings."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_PRIMARY:
        raise ReportInputError("settings", f"primary must be a list of 1 to {MAX_PRIMARY} endpoints, got {raw!r}")
    pairs = []
    for entry in raw:
        if not isinstance(entry, Mapping) or not all(isinstance(entry.get(k), str) for k in ("benchmark", "metric")):
            raise ReportInputError("settings", f"primary endpoint {entry!r} is not a {{benchmark, metric}} mapping")
        pairs.append((entry["benchmark"], entry["metric"]))
    if len(set(pairs)) != len(pairs):
        raise ReportInputError("settings", f"primary lists an endpoint twice: {pairs}")
    return tuple(pairs)
