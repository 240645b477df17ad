"""On-disk cache of raw judge outputs, shared by every evaluation job.

Layout: ``<root>/<partition>/<shard>.jsonl``. A partition is one (judge, prompt, request)
combination, so a job reads only the verdicts it could reuse; a shard is one job's own file
(``{checkpoint}-{benchmark}``), so concurrent jobs, on one machine or many Slurm nodes on a
shared file system, never write to the same file and need no locks. A shard is rewritten
through a temporary file and an atomic rename, so a reader never sees half of one.

What is cached is the judge's raw output (top log-probs or reply texts), never a parsed score:
a reading rule can change without re-judging. Transport errors are never cached.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def cache_key(material: Any) -> str:
    """Hex sha256 of a JSON-serialisable key (dict key order does not matter)."""
    return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class VerdictCache:
    """Raw judge outputs by key, read from every shard of a partition, written to this job's shard."""

    def __init__(self, root: Path, shard: str) -> None:
        """Use directory ``root``; new entries go to files named ``<shard>.jsonl``."""
        self.root = Path(root)
        self.shard = "".join(c if c.isalnum() or c in "-_." else "_" for c in shard)
        self.hits = 0
        self.misses = 0
        self._loaded: dict[str, dict[str, Any]] = {}
        self._new: dict[str, dict[str, Any]] = {}

    def _partition(self, partition: str) -> dict[str, Any]:
        if partition not in self._loaded:
            entries: dict[str, Any] = {}
            folder = self.root / partition
            for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
                with open(path, encoding="utf-8") as fh:
                    for line in fh:
                        try:
                            rec = json.loads(line)
                        except json.JSONDecodeError:
                            continue  # a foreign or damaged line is a miss, never a wrong verdict
                        if isinstance(rec, dict) and "key" in rec and "value" in rec:
                            entries[rec["key"]] = rec["value"]
            self._loaded[partition] = entries
        return self._loaded[partition]

    def get(self, partition: str, key: str) -> Any | None:
        """The cached value for ``key`` (counted as a hit), or None (counted as a miss)."""
        value = self._partition(partition).get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, partition: str, key: str, value: Any) -> None:
        """Remember a new value; it reaches disk at :meth:`flush`."""
        self._partition(partition)[key] = value
        self._new.setdefault(partition, {})[key] = value

    def flush(self) -> None:
        """Merge this job's new entries into its shard file of each touched partition (atomically)."""
        for partition, entries in self._new.items():
            folder = self.root / partition
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{self.shard}.jsonl"
            merged: dict[str, Any] = {}
            if path.exists():
                with open(path, encoding="utf-8") as fh:
                    for line in fh:
                        try:
                            rec = json.loads(line)
                            merged[rec["key"]] = rec["value"]
                        except (json.JSONDecodeError, KeyError, TypeError):
                            continue
            merged.update(entries)
            tmp = folder / f".{self.shard}.jsonl.tmp-{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as fh:
                for key in sorted(merged):
                    fh.write(json.dumps({"key": key, "value": merged[key]}, sort_keys=True, ensure_ascii=False) + "\n")
            tmp.replace(path)
        self._new = {}
