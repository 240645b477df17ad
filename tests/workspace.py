"""Helpers for tests that run Snakemake on a scratch copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def copy_repo(dest: Path) -> Path:
    """Copy the tracked and untracked-but-not-ignored files of the repo into ``dest``."""
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def snakemake(cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run snakemake in ``cwd``; stdout and stderr merged into ``.stdout``."""
    proc = subprocess.run(
        [*SNAKEMAKE, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}")
    return proc


def planned_jobs(dry_run_output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job listed by ``snakemake -n``."""
    jobs: list[tuple[str, dict[str, str]]] = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_output):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if not m:
            continue
        wc = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        pairs = dict(kv.split("=", 1) for kv in wc.group(1).split(", ")) if wc else {}
        jobs.append((m.group(1), pairs))
    return jobs


def job_counts(dry_run_output: str) -> Counter[str]:
    """Jobs per rule in a dry run."""
    return Counter(rule for rule, _ in planned_jobs(dry_run_output))


def write_config(path: Path, base: Path, edit: Any) -> Path:
    """Write a copy of config ``base`` changed by ``edit(cfg)`` to ``path``."""
    cfg = yaml.safe_load(base.read_text())
    edit(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
