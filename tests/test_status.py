"""The status view on a fabricated results tree: every state, step, reward, ETA and error."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from misalign_fv import status
from misalign_fv.logs import FORMAT, failure_line

NOW = 1_800_000_000.0


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") + ",123"


def _write(path: Path, text: str, age_s: float = 60) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (NOW - age_s, NOW - age_s))


def _checkpoint(scratch: Path, run: str, step: int, total: int) -> None:
    state = scratch / run / "0123abcd" / f"checkpoint-{step}" / "trainer_state.json"
    _write(state, json.dumps({"global_step": step, "max_steps": total}))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """Results of a config with DPO done, a/seed1 done, a/seed2 collapsed, b/seed1 running,
    b/seed2 failed, and the seed-3 runs not started."""
    res, scratch = tmp_path / "results" / "x", tmp_path / "scratch"
    cfg = {"results": str(res), "scratch_dir": str(scratch), "dpo": {"max_steps": -1},
           "grpo": {"seeds": [3, 1, 2], "defaults": {"max_steps": 16}, "conditions": {"b": {"max_steps": 8}, "a": {}}}}  # fmt: skip
    _write(tmp_path / "c.yaml", yaml.safe_dump(cfg))
    _write(res / "dpo" / "model" / "misalign_fv_model.json", "{}")
    _write(res / "dpo" / "metrics.csv", "step,loss,rewards/margins\n10,0.6,0.1\n20,0.5,0.25\n", age_s=7200)
    _checkpoint(scratch, "dpo", 20, 20)
    for seed, collapsed in ((1, False), (2, True)):
        run = res / "grpo" / "a" / f"seed{seed}"
        _write(run / "metrics.csv", "step,loss,reward\n1,0.1,0.0\n2,0.1,0.125\n")
        summary = {"steps_done": 16 if seed == 1 else 9, "max_steps": 16, "collapsed": collapsed, "collapse_kind": "starved" if collapsed else None}
        _write(run / "summary.json", json.dumps(summary))
    # b/seed1 resumed at step 2 and has logged step 3 a minute ago, 5 minutes to go then
    _checkpoint(scratch, "grpo/b/seed1", 2, 8)
    _write(res / "grpo" / "b" / "seed1" / "metrics.csv", "step,loss,reward\n1,0.1,0.2\n2,0.1,0.3\n3,0.1,0.375\n")
    _write(res / "logs" / "train_grpo" / "b" / "seed1.log",
           f"{_stamp(NOW - 900)} misalign_fv.training INFO resumed from ckpt at step 2/8\n"
           f"{_stamp(NOW - 60)} misalign_fv.training INFO step 3/8 (37%) elapsed 0:03:00 ETA 0:05:00 loss=0.1 reward=0.375\n"
           "{'loss': 0.1}\n\n")  # fmt: skip
    # b/seed2 failed after checkpoint-4 (Snakemake removed its metrics.csv); an earlier attempt also failed
    _checkpoint(scratch, "grpo/b/seed2", 4, 8)
    fail = failure_line("train_grpo", RuntimeError("CUDA out of memory"), "res/logs/train_grpo/b/seed2.log")
    _write(res / "logs" / "train_grpo" / "b" / "seed2.log", f"{fail}\nTraceback ...\n{_stamp(NOW - 300)} x INFO step 4/8 ETA 0:01:00\n{fail}\n")
    return tmp_path / "c.yaml"


def test_every_run_of_the_config_has_its_state_step_reward_and_eta(config: Path) -> None:
    table = status.status_table(status.load_config(config), now=NOW)
    rows = {(r["run"], r["seed"]): r for r in table}
    assert list(rows) == [("dpo", "-"), ("a", "1"), ("a", "2"), ("a", "3"), ("b", "1"), ("b", "2"), ("b", "3")]
    got = {k: (r["state"], r["step"], r["reward"], r["eta"]) for k, r in rows.items()}
    assert got == {
        ("dpo", "-"): ("done", "20/20", "0.250", ""),  # total from the checkpoint (the config trains an epoch)
        ("a", "1"): ("done", "16/16", "0.125", ""),
        ("a", "2"): ("collapsed (starved)", "9/16", "0.125", ""),
        ("a", "3"): ("not started", "", "", ""),
        ("b", "1"): ("running", "3/8", "0.375", "0:04:00"),  # the logged ETA less the minute since
        ("b", "2"): ("failed", "4/8", "", ""),  # resumable from its checkpoint
        ("b", "3"): ("not started", "", "", ""),
    }
    assert rows[("b", "2")]["note"] == "RuntimeError: CUDA out of memory"
    assert rows[("b", "1")]["updated"] == "0:01:00 ago" and rows[("dpo", "-")]["updated"] == "2:00:00 ago"


def test_a_retry_after_a_failure_is_running_again(config: Path) -> None:
    log = Path(status.load_config(config)["results"]) / "logs" / "train_grpo" / "b" / "seed2.log"
    with open(log, "a") as fh:
        fh.write(f"{_stamp(NOW - 30)} misalign_fv.training INFO resumed from ckpt at step 4/8\n")
    row = next(r for r in status.status_table(status.load_config(config), now=NOW) if (r["run"], r["seed"]) == ("b", "2"))
    assert (row["state"], row["step"], row["eta"], row["note"]) == ("running", "4/8", "", "")


def test_the_log_lines_training_writes_are_the_ones_status_reads() -> None:
    """Progress lines formatted by logs.FORMAT parse back (ETA in days too)."""
    from misalign_fv.training import progress_line

    record = logging.LogRecord("misalign_fv.training", logging.INFO, "", 0, progress_line(5, 1000, 3600.0, 4, {"reward": 0.5}), None, None)
    match = status.PROGRESS.match(logging.Formatter(FORMAT).format(record))
    assert match and (match["step"], match["total"], match["eta"]) == ("5", "1000", "10 days, 8:45:00")  # 900 s a step, 995 steps left
    assert status._seconds(match["eta"]) == 10 * 86400 + 8 * 3600 + 45 * 60


def test_main_prints_the_table_and_a_tally(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status.main(["--config", str(config)])
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == status.COLUMNS
    assert out.rstrip().endswith("7 runs: 2 done, 1 collapsed, 1 running, 1 failed, 2 not started")


def test_a_config_without_a_results_root_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("seed: 0\n")
    with pytest.raises(SystemExit, match=r"c.yaml: no top-level `results` key"):
        status.main(["--config", str(tmp_path / "c.yaml")])
    with pytest.raises(SystemExit, match=r"nope.yaml: no such config file"):
        status.main(["--config", str(tmp_path / "nope.yaml")])
