"""Per-GPU peak memory and mean utilisation in a time window of an nvidia-smi log.

``device_run.sh`` samples ``nvidia-smi --query-gpu=timestamp,index,memory.used,utilization.gpu``
every 0.5 s; this reads that CSV (gzipped or not) and prints, per GPU, the peak memory used
(GiB, as the driver sees it: allocator cache, NCCL and CUDA context included) and the mean
utilisation between ``--start`` and ``--end`` (HH:MM:SS, the log's clock), optionally in
``--every``-second slices to show the phases of a run.

    python benchmarks/gpu/smi_summary.py benchmarks/gpu/results/smi_call_zero3_4gpu.csv.gz --start 04:22:39 --end 04:26:34
"""

from __future__ import annotations

import argparse
import csv
import datetime
import gzip
import itertools
from pathlib import Path


def read(path: Path) -> list[tuple[datetime.datetime, int, int, int]]:
    """(time, gpu, MiB used, % utilisation) rows of the log; malformed lines are skipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt") as f:
        for rec in csv.reader(f):
            try:
                t = datetime.datetime.strptime(rec[0].strip(), "%Y/%m/%d %H:%M:%S.%f")
                rows.append((t, int(rec[1]), int(rec[2]), int(rec[3])))
            except (ValueError, IndexError):
                continue
    return rows


def summarize(rows: list[tuple[datetime.datetime, int, int, int]]) -> str:
    """``gpu: peak GiB / mean %`` for every GPU in ``rows``."""
    by_gpu: dict[int, list[tuple[int, int]]] = {}
    for _, gpu, mib, util in rows:
        by_gpu.setdefault(gpu, []).append((mib, util))
    return "  ".join(
        f"gpu{g}: {max(m for m, _ in v) / 1024:5.1f} GiB {sum(u for _, u in v) / len(v):4.0f}%" for g, v in sorted(by_gpu.items())
    )


def main() -> None:
    """Print the window's summary (and its slices)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--start", default="00:00:00")
    ap.add_argument("--end", default="23:59:59")
    ap.add_argument("--every", type=int, default=0, help="also print slices of this many seconds")
    args = ap.parse_args()
    rows = [r for r in read(args.csv) if args.start <= r[0].strftime("%H:%M:%S") <= args.end]
    if not rows:
        raise SystemExit(f"{args.csv}: no samples between {args.start} and {args.end}")
    if args.every:
        for _, part in itertools.groupby(rows, key=lambda r: int(r[0].timestamp()) // args.every):
            chunk = list(part)
            print(chunk[0][0].strftime("%H:%M:%S"), summarize(chunk))
    print(f"{args.start}-{args.end}", summarize(rows))


if __name__ == "__main__":
    main()
