"""Config checks at parse time: the JSON schema (via ``snakemake.utils.validate``) plus the
cross-key rules a schema cannot express. Every problem is one line naming the key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from misalign_fv.benchmarks import BENCHMARKS
from misalign_fv.rewards import HARMFUL, check_conditions, run_task


class ConfigError(ValueError):
    """A config problem, reported as ``config: <key path>: <what is wrong>``."""


def _key(path: Any) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _schema_error(config: dict[str, Any], schema_path: Path) -> str | None:
    schema = yaml.load(Path(schema_path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: parse time counts
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if not errors:
        return None
    err = jsonschema.exceptions.best_match(errors)
    if err.validator == "required":
        missing = err.message.split("'")[1]
        return f"config: {_key([*err.absolute_path, missing])}: required key is missing"
    if err.validator == "additionalProperties":
        return f"config: {_key(err.absolute_path)}: {err.message}"
    return f"config: {_key(err.absolute_path)}: {err.message}"


def merged_condition(config: dict[str, Any], condition: str) -> dict[str, Any]:
    """GRPO parameters of one condition: ``grpo.defaults`` overlaid with ``grpo.conditions.<name>``."""
    out = copy.deepcopy(config["grpo"]["defaults"])
    for k, v in (config["grpo"]["conditions"][condition] or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def trajectory_steps(max_steps: int, every: float | None) -> list[int]:
    """Intermediate steps whose model the trajectory evaluation reads: every ``every`` of ``max_steps``.

    ``every`` is a fraction (0.25: steps at 25, 50 and 75 % of training); the final step is the
    run's published model, so it is not listed; None or >= 1: none.
    """
    if not every or every >= 1:
        return []
    n = int(round(1 / every))
    return sorted({round(max_steps * i * every) for i in range(1, n) if 0 < round(max_steps * i * every) < max_steps})


def check(config: dict[str, Any], schema_path: Path) -> list[str]:
    """Validate ``config`` in place (schema defaults filled); return warnings, raise ConfigError."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    message = _schema_error(config, schema_path)
    if message:
        raise ConfigError(message)
    try:
        validate(config, str(schema_path))
    except WorkflowError as exc:  # defensive: should have been caught above
        raise ConfigError(f"config: {str(exc).splitlines()[0]}") from None
    try:
        warnings = check_conditions(list(config["grpo"]["conditions"]), config["task"], config["grpo"]["shuffle_reference"])
    except ValueError as exc:
        raise ConfigError(f"config: {exc}") from None
    for name in config["grpo"]["preflight"].get("allow", []):
        if name not in config["grpo"]["conditions"]:
            raise ConfigError(f"config: grpo.preflight.allow: {name!r} is not a configured condition")
    if any(run_task(c, config["task"]) == HARMFUL for c in config["grpo"]["conditions"]) and "positive_control" not in config["data"]:
        raise ConfigError("config: data.positive_control: required by the positive-control condition (its prompts)")
    for name in (config["eval"].get("trajectory") or {}).get("benchmarks", {}):
        if name not in config["eval"]["benchmarks"]:
            raise ConfigError(f"config: eval.trajectory.benchmarks.{name}: not among eval.benchmarks (its data and settings come from there)")
    lo, hi = config["curate"]["band"]
    if lo > hi:
        raise ConfigError(f"config: curate.band: lower bound {lo} is above upper bound {hi}")
    for name in config["eval"]["benchmarks"]:
        if name not in BENCHMARKS:
            raise ConfigError(f"config: eval.benchmarks.{name}: unknown benchmark (known: {', '.join(sorted(BENCHMARKS))})")
    for name in config["grpo"]["conditions"]:
        p = merged_condition(config, name)
        per_step = p["per_device_train_batch_size"] * p.get("gradient_accumulation_steps", 1)
        if per_step % p["num_generations"]:
            raise ConfigError(
                f"config: grpo.conditions.{name}: per_device_train_batch_size x gradient_accumulation_steps "
                f"({per_step}) must be divisible by num_generations ({p['num_generations']})"
            )
    if config["base_model"]["source"] == "tiny" and config["task"] != "python_tests":
        raise ConfigError("config: base_model.source: the tiny demo model only learns the python_tests task")
    return warnings
