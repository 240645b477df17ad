"""Where every training run of a config stands, read from the files the workflow writes.

``python -m misalign_fv.status [--config config/demo.yaml]`` prints one row per run (the DPO run,
then each GRPO condition x seed): ``done``, ``collapsed (<kind>)``, ``running``, ``failed`` or
``not started``, the step reached, the last logged reward, the ETA of a running job, how long ago
its files last changed, and a failed job's error. It reads only files: ``summary.json`` and
``metrics.csv`` under the config's ``results`` root, the job's log there (its progress lines and
the failure line of :mod:`misalign_fv.logs`), and ``trainer_state.json`` of the run's newest
checkpoint under ``scratch_dir``. A job killed without a Python error (a time limit, an
out-of-memory kill) leaves neither summary nor failure line: it shows as ``running`` with an old
``updated`` until its retry writes again.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from misalign_fv.config import merged_condition
from misalign_fv.logs import FAILURE_PREFIX, duration
from misalign_fv.publish import MARKER

# A progress line of misalign_fv.training.Progress as logs.FORMAT writes it.
PROGRESS = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ misalign_fv\.training INFO "
    r"step (?P<step>\d+)/(?P<total>-?\d+)\b.*? ETA (?P<eta>\?|(?:\d+ days?, )?\d+:\d\d:\d\d)"
)
TAIL_BYTES = 1 << 16  # the end of a log that holds its latest progress line
COLUMNS = ["run", "seed", "state", "step", "reward", "eta", "updated", "note"]


@dataclass(frozen=True)
class Run:
    """Where one training run writes: its results folder, done marker, log and checkpoint root."""

    name: str
    seed: str
    out_dir: Path
    done: Path
    log: Path
    ckpt_root: Path
    total: int | None


def load_config(path: Path) -> dict[str, Any]:
    """The config at ``path``; one-line error when it is missing or has no ``results`` root."""
    if not Path(path).is_file():
        raise SystemExit(f"{path}: no such config file")
    cfg = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(cfg.get("results"), str):
        raise SystemExit(f"{path}: no top-level `results` key (the config's results root)")
    return cfg


def runs(cfg: dict[str, Any]) -> list[Run]:
    """The DPO run, then every configured GRPO condition x seed, with their paths under ``cfg``."""
    root = Path(cfg["results"].rstrip("/"))
    scratch = Path(os.path.expandvars(cfg["scratch_dir"]))
    dpo_steps = cfg["dpo"].get("max_steps")
    out = [Run("dpo", "-", root / "dpo", root / "dpo" / "model" / MARKER, root / "logs" / "train_dpo.log",
               scratch / "dpo", dpo_steps if dpo_steps and dpo_steps > 0 else None)]  # fmt: skip
    for cond in sorted(cfg["grpo"]["conditions"]):
        for seed in sorted(cfg["grpo"]["seeds"]):
            run = f"{cond}/seed{seed}"
            out.append(Run(cond, str(seed), root / "grpo" / run, root / "grpo" / run / "summary.json",
                           root / "logs" / "train_grpo" / f"{run}.log", scratch / "grpo" / run,
                           merged_condition(cfg, cond)["max_steps"]))  # fmt: skip
    return out


def last_metrics(path: Path) -> dict[str, str]:
    """The last row of a metrics.csv ({} when absent or empty)."""
    if not path.is_file():
        return {}
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows[-1] if rows else {}


def newest_checkpoint(ckpt_root: Path) -> dict[str, Any]:
    """``trainer_state.json`` of the newest checkpoint under any run id of ``ckpt_root`` ({} if none)."""
    states = list(ckpt_root.glob("*/checkpoint-*/trainer_state.json"))
    if not states:
        return {}
    return json.loads(max(states, key=lambda p: p.stat().st_mtime).read_text())


def log_tail(path: Path) -> list[str]:
    """The non-empty lines at the end of a log ([] when absent)."""
    if not path.is_file():
        return []
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - TAIL_BYTES))
        return [line for line in fh.read().decode(errors="replace").splitlines() if line.strip()]


def _seconds(eta: str) -> int:
    days, _, clock = eta.rpartition(", ")
    h, m, s = map(int, clock.split(":"))
    return (int(days.split()[0]) * 86400 if days else 0) + h * 3600 + m * 60 + s


def run_row(run: Run, now: float) -> dict[str, str]:
    """One row of the status table for ``run`` at time ``now`` (seconds since the epoch)."""
    row = dict.fromkeys(COLUMNS, "")
    row.update(run=run.name, seed=run.seed)
    metrics = last_metrics(run.out_dir / "metrics.csv")
    ckpt = newest_checkpoint(run.ckpt_root)
    lines = log_tail(run.log)
    progress = next((m for m in map(PROGRESS.match, reversed(lines)) if m), None)
    step = max(int(float(metrics.get("step") or 0)), int(ckpt.get("global_step", 0)), int(progress["step"]) if progress else 0)
    total = run.total or ckpt.get("max_steps") or (int(progress["total"]) if progress else None)
    reward = metrics.get("reward") or metrics.get("rewards/margins") or ""
    row["reward"] = f"{float(reward):.3f}" if reward else ""
    touched = [p.stat().st_mtime for p in (run.log, run.out_dir / "metrics.csv") if p.is_file()]
    if touched:
        row["updated"] = f"{duration(now - max(touched))} ago"
    if run.done.is_file():
        summary = json.loads(run.done.read_text()) if run.done.name == "summary.json" else {}
        step = summary.get("steps_done", step)
        total = summary.get("max_steps", total)
        row["state"] = f"collapsed ({summary['collapse_kind']})" if summary.get("collapsed") else "done"
    elif lines and lines[-1].startswith(FAILURE_PREFIX):
        row["state"] = "failed"
        row["note"] = lines[-1].split(": ", 1)[-1].rsplit(" (full log: ", 1)[0]
    elif lines:
        row["state"] = "running"
        if progress and progress["eta"] != "?":
            logged = datetime.strptime(progress["time"], "%Y-%m-%d %H:%M:%S").timestamp()
            row["eta"] = duration(max(0, _seconds(progress["eta"]) - (now - logged)))
    else:
        row["state"] = "not started"
    row["step"] = f"{step}/{total or '?'}" if step or row["state"] != "not started" else ""
    return row


def status_table(cfg: dict[str, Any], now: float | None = None) -> list[dict[str, str]]:
    """Every run of ``cfg`` as a row: run, seed, state, step, reward, eta, updated, note."""
    now = time.time() if now is None else now
    return [run_row(r, now) for r in runs(cfg)]


def render(rows: list[dict[str, str]]) -> str:
    """The rows as a left-aligned text table, then one line counting runs by state."""
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS).rstrip() for r in [dict(zip(COLUMNS, COLUMNS)), *rows]]
    states = [r["state"].split(" (")[0] for r in rows]
    order = ["done", "collapsed", "running", "failed", "not started"]
    tally = ", ".join(f"{states.count(s)} {s}" for s in order if s in states)
    return "\n".join(lines) + f"\n\n{len(rows)} runs: {tally}"


def main(argv: list[str] | None = None) -> None:
    """Print the status of every run of the config given by ``--config`` (default config/config.yaml)."""
    parser = argparse.ArgumentParser(prog="python -m misalign_fv.status", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"), help="the workflow config")
    args = parser.parse_args(argv)
    print(render(status_table(load_config(args.config))))


if __name__ == "__main__":
    main()
