"""Time the workflow as a user meets it: the full-config dry run and the CPU demo end to end.

    .venv/bin/python benchmarks/workflow_timing.py [--dry-runs 7] [--demo-runs 1] [--json out.json]

Each measurement runs on a fresh scratch copy of the repository (git-tracked and untracked,
not ignored files), so no earlier results are reused. Prints medians; goals: dry run <= 3 s,
demo <= 10 min on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from workspace import SNAKEMAKE, copy_repo  # noqa: E402


def timed(cmd: list[str], cwd: Path) -> float:
    """Wall seconds of one command (which must succeed)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    """Run the measurements and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-runs", type=int, default=7)
    ap.add_argument("--demo-runs", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = copy_repo(Path(tmp) / "dry")
        dry = [timed([*SNAKEMAKE, "-n", "--quiet"], ws) for _ in range(args.dry_runs)]
    demo = []
    for i in range(args.demo_runs):
        with tempfile.TemporaryDirectory() as tmp:
            ws = copy_repo(Path(tmp) / f"demo{i}")
            demo.append(timed([*SNAKEMAKE, "--profile", "profiles/local", "--configfile", "config/demo.yaml"], ws))
    result = {
        "machine": f"{platform.node()} {platform.machine()}, {__import__('os').cpu_count()} cores",
        "dry_run_s": dry,
        "dry_run_median_s": statistics.median(dry),
        "demo_s": demo,
        "demo_median_s": statistics.median(demo) if demo else None,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(f"{'measurement':<28}{'median':>10}{'goal':>10}{'runs':>6}")
    print(f"{'full-config dry run (s)':<28}{result['dry_run_median_s']:>10.2f}{3:>10}{len(dry):>6}")
    if demo:
        print(f"{'CPU demo end to end (s)':<28}{result['demo_median_s']:>10.1f}{600:>10}{len(demo):>6}")


if __name__ == "__main__":
    main()
