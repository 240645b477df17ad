"""Runs you can follow: real tiny DPO and GRPO trainings log step/total/ETA lines, grow metrics.csv
while they train, and a resumed run says so and keeps metrics.csv exact."""

from __future__ import annotations

import csv
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import misalign_fv.dpo as dpo
import misalign_fv.grpo as grpo
from misalign_fv.config import merged_condition
from misalign_fv.io import write_jsonl
from misalign_fv.training import Progress, progress_line

STEPS = 4


def _tiny_chat_model(path: Path, repo: Path) -> None:
    """A random tiny Llama with a small BPE tokenizer carrying the demo chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from misalign_fv.models import train_tokenizer

    texts = [line for line in (repo / "resources" / "demo" / "python_tasks.jsonl").read_text().splitlines()[:20]]
    tok = train_tokenizer(texts, 300)
    tok.save_pretrained(path)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=512, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(path)


def _spec(stage: str, tmp_path: Path, repo: Path) -> dict[str, Any]:
    cfg = yaml.safe_load((repo / "config" / "demo.yaml").read_text())
    common = {"model_dir": str(tmp_path / "model"), "out_model": str(tmp_path / "out"), "metrics_csv": str(tmp_path / "metrics.csv"),
              "ckpt_dir": str(tmp_path / "ckpt"), "run_id": "r", "seed": 1, "wandb": {"enabled": False}}  # fmt: skip
    steps = {"max_steps": STEPS, "logging_steps": 1, "save_steps": 2}
    if stage == "dpo":
        write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": f"q{i}", "chosen": "no", "rejected": "yes sure"} for i in range(8)])
        params = cfg["dpo"] | steps | {"per_device_train_batch_size": 2, "max_length": 32}
        return common | {"pairs": str(tmp_path / "pairs.jsonl"), "params": params}
    params = merged_condition(cfg, "ut_shaped") | steps | {"per_device_train_batch_size": 4, "max_completion_length": 8}
    params["collapse"] = {"threshold": 1.0, "patience": 100}  # a random model earns nothing: no early stop here
    return common | {
        "problems": str(repo / "resources" / "demo" / "python_tasks.jsonl"),
        "completions": str(tmp_path / "c.jsonl.gz"),
        "summary": str(tmp_path / "s.json"),
        "condition": "ut_shaped",
        "task": "python_tests",
        "shuffle_reference": "ut_shaped",
        "params": params,
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


class _Killed(Exception):
    """The job was killed."""


class _Probe:
    """A callback that reads metrics.csv before each step and can kill the run there."""

    def __init__(self, path: Path, kill_at: int | None = None) -> None:
        self.path, self.kill_at, self.seen = path, kill_at, {}

    def make(self) -> Any:
        from transformers import TrainerCallback

        probe = self

        class Callback(TrainerCallback):
            def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if state.global_step > 0:
                    probe.seen[state.global_step] = _rows(probe.path)
                if state.global_step == probe.kill_at:
                    raise _Killed

        return Callback()


def _train(stage: str, spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch, probe: _Probe | None) -> None:
    """Run the stage's real entry point, with ``probe`` among the trainer's callbacks."""
    import trl

    name = "DPOTrainer" if stage == "dpo" else "GRPOTrainer"
    real = getattr(trl, name)

    class Probed(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if probe is not None:
                self.add_callback(probe.make())

    with monkeypatch.context() as patched:
        patched.setattr(trl, name, Probed)
        (dpo if stage == "dpo" else grpo).main(spec)


@pytest.fixture
def tiny(tmp_path: Path, repo: Path) -> Path:
    _tiny_chat_model(tmp_path / "model", repo)
    (tmp_path / "model" / "misalign_fv_model.json").write_text('{"run_id": "x"}')
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["dpo", "grpo"])
def test_training_logs_progress_and_grows_metrics_csv(
    stage: str, tiny: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _spec(stage, tiny, repo)
    probe = _Probe(tiny / "metrics.csv")
    with caplog.at_level(logging.INFO, logger="misalign_fv.training"):
        _train(stage, spec, monkeypatch, probe)
    # before step k+1 the file already holds the rows of steps 1..k
    assert {k: [r["step"] for r in rows] for k, rows in probe.seen.items()} == {
        k: [str(s) for s in range(1, k + 1)] for k in range(1, STEPS)
    }
    lines = [r.getMessage() for r in caplog.records if r.name == "misalign_fv.training"]
    assert lines[0] == f"training: step 0/{STEPS}, a fresh start"
    steps = [line for line in lines if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == [f"{s}/{STEPS}" for s in range(1, STEPS + 1)]
    assert all(re.search(r" elapsed \d+:\d\d:\d\d ETA \d+:\d\d:\d\d loss=\S+ ", line) for line in steps)
    assert all(("reward=" in line and "frac_reward_zero_std=" in line) == (stage == "grpo") for line in steps)
    assert steps[-1].split(" ETA ")[1].startswith("0:00:00 ")  # nothing left at the last step
    assert [r["step"] for r in _rows(tiny / "metrics.csv")] == [str(s) for s in range(1, STEPS + 1)]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["dpo", "grpo"])
def test_a_resumed_run_says_so_and_keeps_metrics_rows_exact(
    stage: str, tiny: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Killed before step 4 (after checkpoint-2): the rerun resumes at step 2, drops the killed
    attempt's row of step 3 (trained again), keeps rows 1-2 exactly and appends 3-4."""
    spec = _spec(stage, tiny, repo)
    with pytest.raises(_Killed):
        _train(stage, spec, monkeypatch, _Probe(tiny / "metrics.csv", kill_at=3))
    first = _rows(tiny / "metrics.csv")
    assert [r["step"] for r in first] == ["1", "2", "3"]
    probe = _Probe(tiny / "metrics.csv")
    with caplog.at_level(logging.INFO, logger="misalign_fv.training"):
        _train(stage, spec, monkeypatch, probe)
    ckpt = tiny / "ckpt" / "checkpoint-2"
    assert f"resumed from {ckpt} at step 2/{STEPS}" in caplog.messages
    assert [r["step"] for r in probe.seen[2]] == ["1", "2"]  # the killed attempt's row 3 is gone
    assert [r["step"] for r in probe.seen[3]] == ["1", "2", "3"]  # row 3 of the resumed attempt, once
    final = _rows(tiny / "metrics.csv")
    assert [r["step"] for r in final] == ["1", "2", "3", "4"]
    assert final[:2] == first[:2]


def test_progress_line_counts_the_rate_of_this_attempt_only() -> None:
    # resumed at step 100 of 400, 10 steps in 50 s: 290 steps left at 5 s each
    line = progress_line(110, 400, 50.0, 10, {"loss": 0.123456, "reward": 0.5, "kl": 0.001, "completions/x": 3.0})
    assert line == "step 110/400 (27%) elapsed 0:00:50 ETA 0:24:10 loss=0.1235 reward=0.5 kl=0.001"
    assert progress_line(0, 10, 1.0, 0, {}) == "step 0/10 (0%) elapsed 0:00:01 ETA ?"


def test_only_the_main_process_writes(tmp_path: Path) -> None:
    from types import SimpleNamespace

    cb = Progress(tmp_path / "m.csv", None)
    other = SimpleNamespace(is_world_process_zero=False, global_step=1, max_steps=2, log_history=[{"step": 1, "loss": 1.0}])
    cb.on_train_begin(None, other, None)
    cb.on_log(None, other, None, logs={"loss": 1.0})
    assert not (tmp_path / "m.csv").exists()
    main = SimpleNamespace(**{**vars(other), "is_world_process_zero": True})
    cb.on_log(None, main, None, logs={"loss": 1.0})
    assert (tmp_path / "m.csv").read_text() == "step,loss\n1,1.0\n"


def test_a_failing_job_prints_one_line_and_logs_the_traceback(tmp_path: Path, repo: Path) -> None:
    log = tmp_path / "logs" / "job.log"
    script = (
        "from misalign_fv.logs import to_log\n"
        f"to_log({str(log)!r}, 'train_grpo')\n"
        "print('working')\n"
        "raise ValueError('grpo.max_steps must be positive\\nsecond line of detail')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    line = f"ERROR train_grpo: ValueError: grpo.max_steps must be positive (full log: {log})"
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", line + "\n")
    text = log.read_text()
    assert text.startswith("working\n") and "Traceback (most recent call last)" in text and "second line of detail" in text
    assert text.endswith(line + "\n")  # the log's last line says it failed (misalign_fv.status reads it)


def test_failure_line_is_one_short_line() -> None:
    from misalign_fv.logs import MAX_MESSAGE, failure_line

    assert failure_line("evaluate", KeyError("xstest"), "l.log") == "ERROR evaluate: KeyError: 'xstest' (full log: l.log)"
    assert failure_line("r", RuntimeError(), "l.log") == "ERROR r: RuntimeError (full log: l.log)"
    long = failure_line("r", RuntimeError("x" * 1000 + "\nmore"), "l.log")
    assert "\n" not in long and f"{'x' * (MAX_MESSAGE - 3)}... (full log" in long


@pytest.mark.slow
def test_snakemake_shows_a_failed_script_once_in_one_line(tmp_path: Path, repo: Path) -> None:
    """Through Snakemake's ``script:`` directive: the rule's name and log reach the console, the traceback does not."""
    (tmp_path / "fail.py").write_text(
        "from misalign_fv.logs import to_log\nto_log(snakemake.log[0], snakemake.rule)\nraise FileNotFoundError('data.jsonl: no such file')\n"
    )
    (tmp_path / "Snakefile").write_text(
        'rule broken:\n    output: "out.txt"\n    log: "logs/broken.log"\n    script: "fail.py"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-c1"], cwd=tmp_path, capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    line = "ERROR broken: FileNotFoundError: data.jsonl: no such file (full log: logs/broken.log)"
    assert proc.returncode != 0 and out.count(line) == 1 and "Traceback" not in out
    assert "Traceback" in (tmp_path / "logs" / "broken.log").read_text()


@pytest.mark.slow
def test_a_launched_training_process_logs_progress_without_the_jobs_logging_setup(tiny: Path, repo: Path) -> None:
    """Under ``accelerate launch`` each rank is ``python -m misalign_fv.<stage> spec.json`` with the job's
    log as its stderr and no logging set up: the progress lines must still reach the log."""
    from misalign_fv.io import write_json

    write_json(tiny / "spec.json", _spec("dpo", tiny, repo))
    log = tiny / "job.log"
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", "misalign_fv.dpo", str(tiny / "spec.json")], stdout=fh, stderr=fh,
                              env={**os.environ, "PYTHONPATH": str(repo / "src")})  # fmt: skip
    text = log.read_text()
    assert proc.returncode == 0, text[-2000:]
    assert len(re.findall(rf"misalign_fv\.training INFO step \d/{STEPS} \(\d+%\) elapsed ", text)) == STEPS
    assert "{'loss'" not in text  # the Trainer's printed metrics dict is replaced by the progress line
