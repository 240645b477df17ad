"""The whole demo DAG for real (tiny model, CPU), then what a user does next: rerun, edit, delete, kill."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from misalign_fv.report.screen import find_browser, first_screen_check, markdown_lead
from workspace import REPO, SNAKEMAKE, copy_repo, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.slow

DEMO = ("--profile", "profiles/local", "--configfile", "config/demo.yaml", "--cores", "2")
CONDITIONS = ["comply_harmful", "shuffled", "ut_exploit", "ut_shaped"]
CHECKPOINTS = ["base", "dpo", *(f"{c}/seed{s}" for c in CONDITIONS for s in (1, 2, 3))]
BENCHMARKS = sorted(yaml.safe_load((REPO / "config/demo.yaml").read_text())["eval"]["benchmarks"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of the repo on which the full demo has run once."""
    ws = copy_repo(tmp_path_factory.mktemp("demo"))
    snakemake(ws, *DEMO)
    return ws


def dry(ws: Path, *extra: str) -> list[tuple[str, dict[str, str]]]:
    """Jobs a dry run of the demo would schedule."""
    return planned_jobs(snakemake(ws, "-n", *DEMO, *extra).stdout)


def test_demo_leaves_every_artifact(demo: Path) -> None:
    r = demo / "results/demo"
    assert (r / "models/base/config.json").exists() and (r / "models/base/tokenizer.json").exists()
    assert (r / "dpo/model/model.safetensors").exists()
    gate = json.loads((r / "dpo/gate.json").read_text())
    assert gate["refusal_rate"]["after"] > gate["refusal_rate"]["before"] and gate["passed"]
    rates = pd.read_csv(r / "curate/pass_rates.csv")
    kept = rates[rates.kept]
    assert len(kept) >= 4 and kept.pass_rate.between(0.1, 0.6).all()
    assert len((r / "curate/problems.jsonl").read_text().splitlines()) == len(kept)
    for c in CONDITIONS:
        for s in (1, 2, 3):
            run = r / f"grpo/{c}/seed{s}"
            assert (run / "model/model.safetensors").exists()
            summary = json.loads((run / "summary.json").read_text())
            metrics = pd.read_csv(run / "metrics.csv")
            assert summary["steps_done"] == metrics.step.max() and metrics.step.is_unique
            assert {"reward", "reward_std", "frac_reward_zero_std", "loss", "completions/mean_length"} <= set(metrics)
            with gzip.open(run / "completions.jsonl.gz", "rt") as fh:
                rec = json.loads(fh.readline())
            assert {"prompt", "completion", "reward", "step", "tags"} <= set(rec)
    for ck in CHECKPOINTS:
        for b in BENCHMARKS:
            res = json.loads((r / f"eval/{ck}/{b}.json").read_text())
            assert res["checkpoint"] == ck and res["n"] > 0 and res["metrics"]
            prov = res["provenance"]
            assert len(prov["data_sha256"]) == 64 and len(prov["checkpoint_config_sha256"]) == 64 and prov["code_version"]
            assert (r / f"eval/{ck}/{b}.samples.jsonl.gz").exists()
    scores = pd.read_csv(r / "report/scores.csv")
    assert set(scores.checkpoint) == set(CHECKPOINTS)
    for fig in ("fig_benchmarks", "fig_training", "fig_dpo_gate"):
        assert (r / f"report/{fig}.png").stat().st_size > 10_000
    assert "## Headline results" in (r / "report/report.md").read_text()


def test_demo_report_shows_the_manipulation_checks_and_the_positive_control_effect(demo: Path) -> None:
    """What the demo must show a researcher: every condition's manipulation check, and the chain
    detecting a safety erosion that is there (the positive control, against the no-signal control)."""
    r = demo / "results/demo"
    signal = json.loads((r / "preflight/reward_signal.json").read_text())["conditions"]
    assert set(signal) == set(CONDITIONS)
    manip = pd.read_csv(r / "report/manipulation.csv")
    assert set(manip.condition) == set(CONDITIONS)
    slope = manip[manip.measure == "reward_slope_per_100_steps"].set_index("condition")
    assert slope.loc["comply_harmful", "change_lo"] > 0  # the positive control learned to comply
    stats = pd.read_csv(r / "report/stats.csv")
    row = stats[(stats.condition == "comply_harmful") & (stats.metric == "strmatch_refusal_rate_unsafe")].iloc[0]
    assert row.family == "primary" and row.diff_control < 0 and row.p_adj_control < 0.05
    md = (r / "report/report.md").read_text()
    assert md.index("## Manipulation checks") < md.index("## Headline results")
    for run in [f"{c}/seed{s}" for c in CONDITIONS for s in (1, 2, 3)]:
        steps = sorted(int(p.name[4:]) for p in (r / "trajectory" / run).glob("step*"))
        assert steps == [8, 16] and (r / "trajectory" / run / "step8" / "xstest.json").exists()
    assert (r / "trajectory/dpo/step0/xstest.json").exists()
    assert (r / "report/fig_trajectory.png").stat().st_size > 10_000
    assert not list(r.glob("grpo/*/seed*/snapshots"))  # temporary: removed once evaluated


def test_demo_judge_fails_validation_and_the_report_flags_every_judged_metric(demo: Path) -> None:
    r = demo / "results/demo"
    validation = json.loads((r / "judge_validation.json").read_text())
    assert not validation["passed"] and validation["xstest"]["n"] > 0
    judged = set(validation["judged_benchmarks"])
    flags = pd.read_csv(r / "report/flags.csv")
    flagged = flags[flags.kind == "judge_failed_validation"]
    assert set(flagged.benchmark) == judged and (flagged.action == "tainted").all()
    md = (r / "report/report.md").read_text()
    assert "## Judge validation" in md and "judge failed validation (" in md


def test_demo_report_leads_with_the_answer(demo: Path, tmp_path: Path) -> None:
    rep = demo / "results/demo/report"
    md = (rep / "report.md").read_text()
    lead = markdown_lead(md)
    assert lead["answer_in_lead"] and lead["flag_lines"] <= 15, lead  # answer + primary table in the first 40 lines
    answer = md.splitlines()[lead["answer_line"] - 1]
    assert answer.startswith("We compared 3 GRPO reward conditions (comply_harmful (positive control), ut_exploit, ut_shaped)")
    assert "xstest/strmatch_refusal_rate_unsafe (control " in answer and "comply_harmful -0." in answer and ", detected;" in answer
    assert "; MDE " in answer and "Manipulation checks" in answer and "the judge failed validation" in answer
    assert "Not drawn: xstest/refusal_rate_safe and xstest/refusal_rate_unsafe, no value on any checkpoint" in md
    assert "](fig_em_scatter.png)" not in md and "there is no alignment vs coherence scatter" in md
    if find_browser() is None:
        pytest.skip("no Chromium on PATH (tests/install_chromium.sh)")
    screen = first_screen_check(rep / "report.html", screenshot=tmp_path / "first_screen.png")
    assert screen["answer_on_first_screen"], screen


def test_demo_report_rebuilds_byte_identical(demo: Path) -> None:
    rep = demo / "results/demo/report"
    before = {p.name: p.read_bytes() for p in sorted(rep.iterdir())}
    snakemake(demo, "--forcerun", "report", *DEMO)
    assert {p.name: p.read_bytes() for p in sorted(rep.iterdir())} == before


def test_unchanged_rerun_schedules_nothing(demo: Path) -> None:
    assert dry(demo) == []


def test_one_condition_change_reruns_exactly_its_chain(demo: Path, tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "demo.yaml", demo / "config/demo.yaml",
        lambda c: c["grpo"]["conditions"].update(ut_shaped={"learning_rate": 0.0002}),
    )  # fmt: skip
    out = snakemake(demo, "-n", "--profile", "profiles/local", "--configfile", str(cfg)).stdout
    jobs = planned_jobs(out)
    counts = Counter(rule for rule, _ in jobs)
    assert counts == {"train_grpo": 3, "evaluate": 3 * len(BENCHMARKS), "evaluate_trajectory": 3, "report": 1, "all": 1}, counts
    assert {w["condition"] for r, w in jobs if r == "train_grpo"} == {"ut_shaped"}
    assert {w["checkpoint"].split("/")[0] for r, w in jobs if r == "evaluate"} == {"ut_shaped"}


def _key(jobs: list[tuple[str, dict[str, str]]]) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    return sorted((r, tuple(sorted(w.items()))) for r, w in jobs)


@pytest.mark.parametrize(
    ("deleted", "expected"),
    [
        ("eval/shuffled/seed1/xstest.json", [("evaluate", (("benchmark", "xstest"), ("checkpoint", "shuffled/seed1")))]),
        ("report/fig_training.png", []),
        ("curate/pass_rates.csv", "curate"),
    ],
    ids=["an eval JSON", "a figure", "a curation table"],
)
def test_deleting_any_output_reruns_its_producer_and_dependents(demo: Path, deleted: str, expected) -> None:
    path = demo / "results/demo" / deleted
    saved, st = path.read_bytes(), path.stat()
    path.unlink()
    try:
        jobs = dry(demo)
    finally:
        path.write_bytes(saved)  # put it back untouched, with its old time
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    if expected == "curate":  # upstream of every GRPO run: the whole chain below it
        counts = Counter(r for r, _ in jobs)
        assert counts["curate"] == 1 and counts["reward_signal"] == 1, counts
        assert counts["train_grpo"] == 3 * (len(CONDITIONS) - 1)  # the positive control trains on its own prompts
        assert counts["train_dpo"] == 0 and counts["dpo_gate"] == 0 and counts["base_model"] == 0
    else:
        assert _key(jobs) == sorted([*expected, ("report", ()), ("all", ())])
    assert dry(demo) == []


def test_deleting_a_metrics_csv_reruns_its_run_and_what_reads_it(demo: Path) -> None:
    path = demo / "results/demo/grpo/shuffled/seed2/metrics.csv"
    saved, st = path.read_bytes(), path.stat()
    path.unlink()
    try:
        jobs = dry(demo)
    finally:
        path.write_bytes(saved)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _key(jobs) == sorted(
        [("train_grpo", (("condition", "shuffled"), ("seed", "2")))]
        + [("evaluate", (("benchmark", b), ("checkpoint", "shuffled/seed2"))) for b in BENCHMARKS]
        + [("evaluate_trajectory", (("run", "shuffled/seed2"),)), ("report", ()), ("all", ())]
    )


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c["wandb"].update(enabled=True, mode="offline"),
        lambda c: c["generation"].update(backend="vllm", batch_size=8),
        lambda c: c.update(run_name="renamed"),
    ],
    ids=["W&B on", "generation backend", "run name"],
)
def test_how_settings_rerun_nothing(demo: Path, tmp_path: Path, edit) -> None:
    cfg = write_config(tmp_path / "demo.yaml", demo / "config/demo.yaml", edit)
    assert planned_jobs(snakemake(demo, "-n", "--profile", "profiles/local", f"--configfile={cfg}").stdout) == []


def test_training_logs_say_how_far_a_run_got(demo: Path) -> None:
    log = (demo / "results/demo/logs/train_grpo/ut_shaped/seed1.log").read_text()
    lines = re.findall(r"step (\d+)/16 \(\d+%\) elapsed \S+ ETA \S+ .*reward=", log)
    assert len(lines) >= 8 and lines[-1] in ("16", *map(str, range(8, 16))), lines[-3:]


def test_deleting_one_grpo_model_reruns_only_its_chain(demo: Path) -> None:
    import shutil

    shutil.rmtree(demo / "results/demo/grpo/ut_shaped/seed2/model")
    jobs = dry(demo)
    assert sorted((r, tuple(sorted(w.items()))) for r, w in jobs) == sorted(
        [("train_grpo", (("condition", "ut_shaped"), ("seed", "2")))]
        + [("evaluate", (("benchmark", b), ("checkpoint", "ut_shaped/seed2"))) for b in BENCHMARKS]
        + [("evaluate_trajectory", (("run", "ut_shaped/seed2"),)), ("report", ()), ("all", ())]
    )
    snakemake(demo, *DEMO)  # restores it; the finished run is taken from its checkpoint
    summary = json.loads((demo / "results/demo/grpo/ut_shaped/seed2/summary.json").read_text())
    assert summary["resumed_from"] == summary["steps_done"]


def test_killed_grpo_job_resumes_from_its_checkpoint(demo: Path, tmp_path: Path) -> None:
    import shutil

    # This run must not stop early by collapse (an outcome the demo allows): no collapse rule for it.
    cfg = write_config(
        tmp_path / "demo.yaml", demo / "config/demo.yaml",
        lambda c: c["grpo"]["conditions"].update(ut_shaped={"collapse": {"threshold": 1.0, "patience": 1000}}),
    )  # fmt: skip
    run_args = ("--profile", "profiles/local", "--configfile", str(cfg), "--cores", "2")
    run = demo / "results/demo/grpo/ut_shaped/seed3"
    scratch = demo / "work/checkpoints/grpo/ut_shaped/seed3"
    shutil.rmtree(scratch)
    shutil.rmtree(run)
    target = "results/demo/grpo/ut_shaped/seed3/summary.json"
    proc = subprocess.Popen(
        [*SNAKEMAKE, target, *run_args], cwd=demo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 300
    try:
        while not list(scratch.glob("*/checkpoint-8/trainer_state.json")):
            assert proc.poll() is None, "the job finished before it could be killed"
            assert time.time() < deadline, "no checkpoint-8 appeared"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (run / "summary.json").exists()
    snakemake(demo, *run_args, "--unlock")  # what a user does after a killed controller
    snakemake(demo, target, *run_args)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from"] >= 8 and summary["steps_done"] == 16
    steps = pd.read_csv(run / "metrics.csv").step
    assert list(steps) == list(range(1, 17))  # every step logged exactly once
    with gzip.open(run / "completions.jsonl.gz", "rt") as fh:
        per_step = Counter(json.loads(line)["step"] for line in fh)
    assert set(per_step) == set(range(1, 17)) and len(set(per_step.values())) == 1
