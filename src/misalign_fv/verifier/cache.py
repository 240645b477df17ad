"""On-disk cache of Lean outcomes, so reruns and re-evaluations never verify the same proof twice.

Append-only JSON Lines shards under ``root``: each process appends to its own file
(``<host>-<pid>-<random>.jsonl``), so concurrent jobs on a shared filesystem never write the same
file, and the number of files grows with jobs, not with proofs (a file per proof would exhaust
a per-user file quota).  A process reads every shard once, at its first lookup, and keeps the
entries in memory; a line cut off by a crash is skipped.  The key hashes the toolchain id (Lean,
Mathlib and REPL versions), the header, the exact code sent to Lean and the theorem whose axioms
were printed.  Crashes are never stored; a timeout is reused only by a check whose own timeout
is not longer.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
from pathlib import Path
from typing import Any

SCHEMA = 1  # bump when the stored record changes meaning


def cache_key(toolchain: str, header: str, code: str, theorem: str | None) -> str:
    """Hex sha256 identifying one Lean check."""
    blob = json.dumps([SCHEMA, toolchain, header, code, theorem or ""], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResultCache:
    """Entries in memory, backed by shards under ``root`` (None: memory only)."""

    def __init__(self, root: Path | None) -> None:
        """Use (and create on first write) ``root`` for this process's shard."""
        self.root = None if root is None else Path(root)
        self._mem: dict[str, dict[str, Any]] = {}
        self._loaded = self.root is None
        self._lock = threading.Lock()
        self._shard = None if self.root is None else self.root / f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"

    def _load(self) -> None:
        assert self.root is not None
        for shard in sorted(self.root.glob("*.jsonl")) if self.root.is_dir() else []:
            with open(shard, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a line cut off by a crash
                    self._mem.setdefault(entry["key"], entry["record"])
        self._loaded = True

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored record for ``key``, or None."""
        with self._lock:
            if not self._loaded:
                self._load()
            return self._mem.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Store ``record`` under ``key`` (appended to this process's shard)."""
        with self._lock:
            self._mem[key] = record
            if self._shard is None:
                return
            self._shard.parent.mkdir(parents=True, exist_ok=True)
            with open(self._shard, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, "record": record}, sort_keys=True) + "\n")
