"""Time the loopback Slurm cluster of tests/slurm: start (to an idle node), one job, stop.

    .venv/bin/python benchmarks/slurm_cluster.py [--runs 5] [--json out.json]

Each run starts a fresh cluster in a temporary directory (MariaDB initialised, account
created), submits one `sbatch --wrap true` on the `gpu` partition with the A100 gres and
feature and waits for sacct to record it COMPLETED, then stops everything and checks that no
process of the cluster is left.  Prints medians; goal: start < 60 s (issue 6).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from slurm.cluster import ACCOUNT, SlurmCluster, install_packages  # noqa: E402


def one_run() -> dict[str, float]:
    """Seconds to start, to run one GPU job to COMPLETED in sacct, and to stop."""
    with tempfile.TemporaryDirectory(prefix="slurmbench") as tmp:
        cluster = SlurmCluster(Path(tmp))
        t0 = time.perf_counter()
        try:
            cluster.start()
            t1 = time.perf_counter()
            job = cluster.run(
                "sbatch", "--parsable", "-A", ACCOUNT, "-p", "gpu", "--gres=gpu:a100:1", "-C", "a100_80gb",
                "-t", "5", "-o", "/dev/null", "--wrap", "true",
            ).strip()  # fmt: skip
            while not any(j["JobIDRaw"] == job and j["State"] == "COMPLETED" for j in cluster.jobs()):
                time.sleep(0.2)
            t2 = time.perf_counter()
        finally:
            cluster.stop()
        t3 = time.perf_counter()
        if cluster.stray_pids():
            raise RuntimeError(f"processes left after stop: {cluster.stray_pids()}")
    return {"start_s": t1 - t0, "job_s": t2 - t1, "stop_s": t3 - t2}


def main() -> None:
    """Run the measurements and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    why = install_packages()
    if why:
        sys.exit(why)
    runs = [one_run() for _ in range(args.runs)]
    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    result = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "runs": runs,
        "median": medians,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(f"{'measurement':<34}{'median':>8}{'min':>8}{'max':>8}{'runs':>6}")
    for k, label in (("start_s", "start to idle node (s)"), ("job_s", "one job to COMPLETED in sacct (s)"), ("stop_s", "stop, nothing left (s)")):
        vals = [r[k] for r in runs]
        print(f"{label:<34}{medians[k]:>8.1f}{min(vals):>8.1f}{max(vals):>8.1f}{len(vals):>6}")
    print(result["machine"])


if __name__ == "__main__":
    main()
