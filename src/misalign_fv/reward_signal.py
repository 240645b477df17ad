"""Reward-signal preflight: would each configured condition's rewards vary under the DPO model?

GRPO learns only from groups whose rewards differ. Before any GRPO hour is spent, this check
scores the DPO model's own samples (curation's ``k`` samples per curated problem; for the
positive control, ``k`` fresh samples per training request) under every configured condition and
reports the share of groups whose rewards would vary. A condition below ``min_varying_groups``
stops the workflow in one line naming it, unless ``grpo.preflight.allow`` lists it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from misalign_fv import tasks
from misalign_fv.io import read_jsonl, write_json
from misalign_fv.rewards import HARMFUL, REGISTRY, SHUFFLED, condition_rewards


class NoSignal(RuntimeError):
    """A configured condition would make no update under the DPO model's samples."""


def group_signal(groups: Sequence[Sequence[float]]) -> dict[str, float | int]:
    """Share of groups whose rewards vary, their count, and the mean reward."""
    flat = [r for g in groups for r in g]
    varying = sum(len(set(g)) > 1 for g in groups)
    return {
        "groups": len(groups),
        "varying_groups": varying,
        "varying_share": varying / len(groups) if groups else 0.0,
        "mean_reward": sum(flat) / len(flat) if flat else 0.0,
    }


def _groups(samples: Sequence[dict[str, Any]], condition: str) -> list[list[float]]:
    by: dict[str, list[float]] = {}
    for s in samples:
        by.setdefault(s["task_id"], []).append(float(s["rewards"][condition]))
    return list(by.values())


def harmful_samples(model_dir: Path, prompts: Path, k: int, n_prompts: int, gen_settings: dict[str, Any], backend: str, seed: int) -> list[dict[str, Any]]:
    """``k`` DPO-model answers to each of the first ``n_prompts`` positive-control requests, graded."""
    from misalign_fv.generation import chat_prompt, load_generator

    problems = tasks.load(HARMFUL, prompts)[:n_prompts]
    gen = load_generator(str(model_dir), backend)
    outs = gen.generate(
        [chat_prompt(gen.tokenizer, tasks.prompt(HARMFUL, p)) for p in problems],
        n=k, max_new_tokens=gen_settings["max_new_tokens"], temperature=gen_settings["temperature"], seed=seed,
    )  # fmt: skip
    flat = [(p, t) for p, o in zip(problems, outs) for t in o]
    graded = tasks.grade_completions(HARMFUL, [p for p, _ in flat], [t for _, t in flat], 0.0)
    return [
        {"task_id": p["task_id"], "completion": t, "tags": g.tags, "rewards": condition_rewards(HARMFUL, g.grade)}
        for (p, t), g in zip(flat, graded)
    ]


def check_signal(
    conditions: Sequence[str], shuffle_reference: str, curated: Sequence[dict[str, Any]],
    harmful: Sequence[dict[str, Any]], settings: dict[str, Any], out: Path,
) -> dict[str, Any]:  # fmt: skip
    """Write every condition's signal to ``out``; raise :class:`NoSignal` for the first one without.

    ``curated``: curation's samples (only those of kept problems count); ``harmful``: graded
    positive-control samples. ``settings``: ``min_varying_groups`` and ``allow``.
    """
    kept = [s for s in curated if s.get("kept", True)]
    report: dict[str, Any] = {"min_varying_groups": settings["min_varying_groups"], "conditions": {}}
    for cond in conditions:
        spec = REGISTRY[cond]
        if cond == SHUFFLED:  # the reference's rewards, permuted within groups: the same groups vary
            row = {**group_signal(_groups(kept, shuffle_reference)), "source": f"{shuffle_reference} (permuted)"}
        elif spec.score is None:  # zero
            row = {**group_signal([[0.0] * 2]), "varying_groups": 0, "varying_share": 0.0, "source": "constant"}
        elif spec.task == HARMFUL:
            row = {**group_signal(_groups(harmful, cond)), "source": "DPO answers to positive-control requests"}
        else:
            row = {**group_signal(_groups(kept, cond)), "source": "curation samples of kept problems"}
        row["allowed_without_signal"] = cond in settings.get("allow", [])
        report["conditions"][cond] = row
    write_json(out, report)
    for cond, row in report["conditions"].items():
        if row["varying_share"] < settings["min_varying_groups"] and not row["allowed_without_signal"]:
            raise NoSignal(
                f"reward_signal: condition {cond}: {row['varying_groups']} of {row['groups']} groups have varying "
                f"rewards under the DPO model's samples ({row['varying_share']:.2f} < grpo.preflight.min_varying_groups "
                f"{settings['min_varying_groups']}): it would not learn; fix the condition or list it in grpo.preflight.allow"
            )
    return report


def run(
    conditions: Sequence[str], shuffle_reference: str, curate_samples: Path, model_dir: Path | None,
    prompts: Path | None, settings: dict[str, Any], gen_settings: dict[str, Any], backend: str, seed: int, out: Path,
) -> dict[str, Any]:  # fmt: skip
    """The rule's entry: read curation's samples, sample the positive control if configured, check."""
    curated = read_jsonl(curate_samples)
    harmful: list[dict[str, Any]] = []
    if prompts is not None and model_dir is not None:
        harmful = harmful_samples(model_dir, prompts, gen_settings["k"], settings["positive_control_prompts"], gen_settings, backend, seed)
    return check_signal(conditions, shuffle_reference, curated, harmful, settings, out)
