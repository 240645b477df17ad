"""GRPO pieces without a full run: collapse detection, per-step metrics, resume bookkeeping."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from misalign_fv.config import merged_condition
from misalign_fv.grpo import CollapseStop, _trim_log
from misalign_fv.io import read_jsonl
from misalign_fv.training import metrics_rows, resume_point, write_metrics_csv


def _feed(cb: CollapseStop, values: list[float]) -> list[bool]:
    stops = []
    for step, v in enumerate(values, 1):
        control = SimpleNamespace(should_training_stop=False, should_save=False)
        cb.on_log(None, SimpleNamespace(global_step=step), control, logs={"frac_reward_zero_std": v})
        assert control.should_save == control.should_training_stop  # the stopped state is checkpointed
        stops.append(control.should_training_stop)
    return stops


def test_collapse_stops_after_patience_consecutive_zero_std_steps(tmp_path: Path) -> None:
    cb = CollapseStop(threshold=0.9, patience=3, state_path=tmp_path / "c.json")
    assert _feed(cb, [1.0, 1.0, 0.5, 1.0, 0.95, 1.0]) == [False, False, False, False, False, True]
    assert cb.collapse_step == 6
    # the streak and the verdict survive a resume
    again = CollapseStop(threshold=0.9, patience=3, state_path=tmp_path / "c.json")
    assert again.collapse_step == 6 and _feed(again, [0.0]) == [True]


def test_collapse_ignores_logs_without_the_metric(tmp_path: Path) -> None:
    cb = CollapseStop(threshold=0.9, patience=1, state_path=tmp_path / "c.json")
    control = SimpleNamespace(should_training_stop=False)
    cb.on_log(None, SimpleNamespace(global_step=1), control, logs={"loss": 0.1})
    assert not control.should_training_stop and not (tmp_path / "c.json").exists()


def test_metrics_rows_merge_per_step_and_drop_the_summary() -> None:
    hist = [
        {"step": 1, "loss": 0.5},
        {"step": 1, "reward": 0.2},
        {"step": 2, "loss": 0.4},
        {"step": 2, "train_runtime": 3.0, "train_loss": 0.45},
    ]
    assert metrics_rows(hist) == [{"step": 1, "loss": 0.5, "reward": 0.2}, {"step": 2, "loss": 0.4}]


def test_metrics_csv_has_step_first_and_one_row_per_step(tmp_path: Path) -> None:
    n = write_metrics_csv([{"step": 2, "b": 1}, {"step": 1, "a": 3}], tmp_path / "m.csv")
    assert n == 2
    assert (tmp_path / "m.csv").read_text() == "step,a,b\n1,3,\n2,,1\n"


def test_resume_point_takes_the_newest_complete_checkpoint(tmp_path: Path) -> None:
    assert resume_point(tmp_path / "none") == (None, 0)
    for step, complete in ((4, True), (8, True), (12, False)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if complete:
            (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    # checkpoint-12 has no trainer_state.json (killed while saving): the previous one is used
    assert resume_point(tmp_path) == (str(tmp_path / "checkpoint-8"), 8)


def test_trim_log_drops_records_after_the_resumed_step(tmp_path: Path) -> None:
    log = tmp_path / "completions.jsonl"
    log.write_text("".join(json.dumps({"step": s, "i": i}) + "\n" for s in (1, 2, 3) for i in range(2)))
    _trim_log(log, 2)
    assert [r["step"] for r in read_jsonl(log)] == [1, 1, 2, 2]


def test_condition_overrides_apply_to_that_condition_only() -> None:
    cfg = {"grpo": {"defaults": {"learning_rate": 1e-6, "collapse": {"threshold": 0.9, "patience": 5}},
                    "conditions": {"a": {"learning_rate": 2e-6, "collapse": {"patience": 9}}, "b": {}}}}  # fmt: skip
    assert merged_condition(cfg, "a") == {"learning_rate": 2e-6, "collapse": {"threshold": 0.9, "patience": 9}}
    assert merged_condition(cfg, "b") == cfg["grpo"]["defaults"]
