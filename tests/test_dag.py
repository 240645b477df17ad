"""Dry-run the real config: the DAG's shape, the Rivanna profile, lint, and parse-time config errors."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from workspace import SNAKEMAKE, copy_repo, job_counts, snakemake, write_config


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of the repository (no results)."""
    return copy_repo(tmp_path_factory.mktemp("repo"))


def test_real_config_plans_the_whole_experiment(ws: Path) -> None:
    out = snakemake(ws, "-n").stdout
    counts = job_counts(out)
    n_bench = len(yaml.safe_load((ws / "config/config.yaml").read_text())["eval"]["benchmarks"])
    assert counts["train_dpo"] == 1
    assert counts["dpo_gate"] == 1
    assert counts["curate"] == 1
    assert counts["train_grpo"] == 15  # 3 treatments + shuffled control + positive control, x 3 seeds
    assert counts["evaluate"] == 17 * n_bench
    assert counts["evaluate_trajectory"] == 16  # the DPO model (step 0) + one job per run
    assert counts["prepare_positive_control"] == 1 and counts["reward_signal"] == 1
    assert counts["report"] == 1
    grpo = [j.split("\n[", 1)[0] for j in out.split("rule train_grpo:")[1:]]
    assert sum("results/full/data/positive_control/prompts.jsonl" in j for j in grpo) == 3  # comply_harmful x 3 seeds
    assert all("results/full/preflight/reward_signal.json" in j for j in grpo)  # the preflight is upstream of every run


def test_rivanna_profile_dry_run_never_calls_sbatch(ws: Path, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls"
    for tool in ("sbatch", "squeue", "sacct", "sacctmgr", "scontrol", "sinfo"):
        exe = bindir / tool
        exe.write_text(f"#!/bin/sh\necho {tool} \"$@\" >> {calls}\nexit 1\n")
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    proc = snakemake(
        ws, "-n", "--profile", "profiles/rivanna",
        env={"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "SBATCH_ACCOUNT": "myalloc"},
    )  # fmt: skip
    assert job_counts(proc.stdout)["train_grpo"] == 15
    assert not calls.exists() or "sbatch" not in calls.read_text()


def test_lint_is_clean(ws: Path) -> None:
    for extra in ((), ("--configfile", "config/demo.yaml")):
        out = snakemake(ws, "--lint", *extra).stdout
        assert "Congratulations, your workflow is in a good condition!" in out


BAD_CONFIGS = [
    ("unknown condition", lambda c: c["grpo"]["conditions"].update({"fv_magic": {}}), "config: grpo.conditions: unknown condition 'fv_magic'"),
    ("empty seeds", lambda c: c["grpo"].update(seeds=[]), "config: grpo.seeds:"),
    ("negative lr", lambda c: c["grpo"]["conditions"].update(shuffled={"learning_rate": -1e-6}), "config: grpo.conditions.shuffled.learning_rate:"),
    ("old random control", lambda c: c["grpo"]["conditions"].update(random={}), "config: grpo.conditions: unknown condition 'random'"),
    ("allow unknown", lambda c: c["grpo"]["preflight"].update(allow=["fv_binary"]), "config: grpo.preflight.allow: 'fv_binary' is not a configured condition"),
    ("trajectory benchmark", lambda c: c["eval"]["trajectory"]["benchmarks"].update(truthfulqa_mc={}) or c["eval"]["benchmarks"].pop("truthfulqa_mc"), "config: eval.trajectory.benchmarks.truthfulqa_mc: not among eval.benchmarks"),
    ("missing key", lambda c: c["dpo"].pop("beta"), "config: dpo.beta: required key is missing"),
    ("bad band", lambda c: c["curate"].update(band=[0.7, 0.2]), "config: curate.band:"),
    ("unknown benchmark", lambda c: c["eval"]["benchmarks"].update(mmlu={"data": "x.json"}), "config: eval.benchmarks.mmlu: unknown benchmark"),
]


@pytest.mark.parametrize(("what", "edit", "message"), BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_fails_at_parse_time_with_one_line(ws: Path, tmp_path: Path, what: str, edit, message: str) -> None:
    cfg = write_config(tmp_path / "bad.yaml", ws / "config/config.yaml", edit)
    proc = snakemake(ws, "-n", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("config: ")]
    assert len(lines) == 1, proc.stdout
    assert lines[0].startswith(message), lines[0]
    assert "Building DAG of jobs" not in proc.stdout  # failed before planning any job


def test_zero_condition_warns_and_points_to_the_dpo_control(ws: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "zero.yaml", ws / "config/config.yaml", lambda c: c["grpo"]["conditions"].update(zero={}))
    out = snakemake(ws, "-n", "--configfile", str(cfg)).stdout
    assert "grpo.conditions.zero" in out and "eval/dpo" in out
    assert job_counts(out)["train_grpo"] == 18


# --- every artifact a target of its own config --------------------------------------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("results/full/eval/fv_exploit/seed4/humaneval.json", "seed 4 is not in grpo.seeds (1, 2, 3)"),
        ("results/full/grpo/fv_magic/seed1/summary.json", "condition fv_magic is not in grpo.conditions"),
        ("results/full/eval/dpo/mmlu.json", "benchmark mmlu is not in eval.benchmarks"),
        ("results/demo/eval/dpo/xstest.json", "not under this config's results root results/full/"),
    ],
    ids=["seed", "condition", "benchmark", "other root"],
)
def test_a_target_outside_the_config_is_a_one_line_error(ws: Path, target: str, message: str) -> None:
    proc = snakemake(ws, "-n", target, check=False)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("target ")]
    assert lines == [f"target {target}: {message}"] or (len(lines) == 1 and message in lines[0]), proc.stdout[-2000:]
    assert "Building DAG of jobs" not in proc.stdout


def test_a_target_read_as_a_config_file_is_named(ws: Path, tmp_path: Path) -> None:
    result = ws / "results/demo/eval/dpo/xstest.json"
    result.parent.mkdir(parents=True)
    result.write_text('{"metrics": {}}')
    proc = snakemake(ws, "-n", "--configfile", "config/demo.yaml", "results/demo/eval/dpo/xstest.json", check=False)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("config: ")]
    assert lines == ["config: results/demo/eval/dpo/xstest.json: read as a config file; put targets before --configfile, or write --configfile=FILE"]


def test_each_config_has_its_own_results_root(ws: Path) -> None:
    roots = {}
    for cfg in ("config/config.yaml", "config/demo.yaml", "config/pilot.yaml"):
        out = snakemake(ws, "-n", f"--configfile={cfg}").stdout
        paths = set(re.findall(r"(?:output|log|benchmark): ([^\n]+)", out))
        files = {f.strip() for line in paths for f in line.split(",")}
        root = yaml.safe_load((ws / cfg).read_text())["results"]
        outside = {f for f in files if not f.startswith(root + "/") and not f.startswith("resources/lean/")}
        assert not outside, (cfg, sorted(outside)[:5])
        roots[cfg] = root
    assert len(set(roots.values())) == 3


def test_the_default_target_names_every_output(ws: Path) -> None:
    out = snakemake(ws, "-n", "--configfile=config/demo.yaml").stdout
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", out)
    all_inputs = set(re.search(r"input: (.*)", next(b for b in blocks if re.match(r"(?:local)?rule all:", b))).group(1).split(", "))
    declared = set()
    for b in blocks:
        m = re.search(r"^\s+output: (.*)$", b, re.M)
        if m and not re.match(r"(?:local)?rule all:", b):
            declared |= set(m.group(1).split(", "))
    temporary = {f for f in declared if f.endswith("/snapshots")}  # temp(): removed once read
    assert declared - temporary <= all_inputs, sorted(declared - temporary - all_inputs)[:5]
    assert temporary and not temporary & all_inputs


def test_code_inputs_follow_the_scripts_imports(ws: Path) -> None:
    out = snakemake(ws, "-n", "--configfile=config/demo.yaml").stdout
    blocks = {m.group(1): b for b in re.split(r"\n(?=(?:local)?rule \w+:)", out) if (m := re.match(r"(?:local)?rule (\w+):", b))}
    inputs = {rule: re.search(r"input: (.*)", b).group(1) for rule, b in blocks.items()}
    assert "src/misalign_fv/gate.py" in inputs["curate"]  # curation reuses the gate's sampling
    assert "src/misalign_fv/grpo.py" in inputs["train_grpo"] and "src/misalign_fv/rewards.py" in inputs["train_grpo"]
    assert "src/misalign_fv/judges/judge.py" in inputs["evaluate"]  # xstest is judged
    assert "src/misalign_fv/report/build.py" in inputs["report"]


def test_rivanna_dry_run_without_account_says_so_in_one_line(ws: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SBATCH_ACCOUNT"}
    proc = subprocess.run(
        [*SNAKEMAKE, "-n", "--profile", "profiles/rivanna"], cwd=ws, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.returncode != 0
    said = [ln for ln in proc.stdout.splitlines() if "SBATCH_ACCOUNT" in ln]
    assert said == ["profile: SBATCH_ACCOUNT is not set; run `export SBATCH_ACCOUNT=<allocation>` (see `allocations`) first"]
