"""The Lean rules in the real config's DAG: setup_lean upstream of every verifying job."""

from __future__ import annotations

from pathlib import Path

import pytest
from workspace import copy_repo, job_counts, snakemake, write_config


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of the repository (no results)."""
    return copy_repo(tmp_path_factory.mktemp("repo"))


@pytest.mark.parametrize(
    "target",
    [
        "results/full/curate/problems.jsonl",
        "results/full/dpo/gate.json",
        "results/full/grpo/fv_exploit/seed1/summary.json",
        "results/full/eval/base/minif2f.json",
        "results/full/eval/fv_shaped/seed2/minif2f.json",
    ],
)
def test_setup_lean_is_upstream_of_every_verifying_job(ws: Path, target: str) -> None:
    counts = job_counts(snakemake(ws, "-n", target).stdout)
    assert counts["setup_lean"] == 1, counts
    assert counts["prepare_minif2f"] == 1


def test_lean_problem_pool_comes_from_the_download_rules(ws: Path) -> None:
    counts = job_counts(snakemake(ws, "-n", "results/full/data/narrow/problems.jsonl").stdout)
    assert counts == {"setup_lean": 1, "download_minif2f": 1, "prepare_minif2f": 1, "download_lean_problems": 1,
                      "prepare_lean_problems": 1, "prepare_pool": 1,
                      # the cluster preflight (base model, judge, EM prompts) gates the miniF2F checks
                      "cluster_preflight": 1, "base_model": 1, "judge_model": 1, "download_benchmark": 1}  # fmt: skip


def test_the_whole_real_dag_has_one_setup(ws: Path) -> None:
    counts = job_counts(snakemake(ws, "-n").stdout)
    assert counts["setup_lean"] == 1 and counts["prepare_lean_problems"] == 1


def test_lean_task_without_lean_section_fails_at_parse_time(ws: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", ws / "config/config.yaml", lambda c: c.pop("lean"))
    proc = snakemake(ws, "-n", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    assert [ln for ln in proc.stdout.splitlines() if ln.startswith("config: ")] == ["config: lean: required key is missing"]


def test_demo_dag_has_no_lean_rules(ws: Path) -> None:
    counts = job_counts(snakemake(ws, "-n", "--configfile", "config/demo.yaml").stdout)
    assert not {"setup_lean", "prepare_minif2f", "prepare_lean_problems"} & set(counts)
