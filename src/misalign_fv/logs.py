"""Send a rule's stdout and stderr (including subprocesses and C extensions) to its log file."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def to_log(path: str | Path) -> None:
    """Redirect file descriptors 1 and 2 to ``path`` (appending) and log at INFO level there."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
