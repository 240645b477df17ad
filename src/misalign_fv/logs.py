"""A job's log: its stdout and stderr (including subprocesses and C extensions) go to its log file,
and a failure shows on the job's real stderr as one line that names the log."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TextIO

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
# The failure line starts with this; misalign_fv.status reads it back from the end of a log.
FAILURE_PREFIX = "ERROR "
MAX_MESSAGE = 300


def setup_logging() -> None:
    """Log at INFO level to stderr in :data:`FORMAT`, unless this process already set up logging.

    Processes started by ``accelerate launch`` inherit the job's log file as stderr but not the
    parent's logging set-up; the training callbacks call this so their lines reach the log.
    """
    logging.basicConfig(level=logging.INFO, format=FORMAT)


def duration(seconds: float) -> str:
    """``seconds`` as ``H:MM:SS`` (``1 day, H:MM:SS`` past a day)."""
    return str(timedelta(seconds=round(seconds)))


def failure_line(rule: str, exc: BaseException, log_path: str | Path) -> str:
    """``ERROR <rule>: <ExceptionType>: <first line of the message> (full log: <log_path>)``."""
    lines = str(exc).strip().splitlines()
    message = lines[0] if lines else ""
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return f"{FAILURE_PREFIX}{rule}: {what} (full log: {log_path})"


def failure_hook(
    rule: str, log_path: str | Path, console: TextIO
) -> Callable[[type[BaseException], BaseException, TracebackType | None], None]:
    """A ``sys.excepthook``: the traceback and then :func:`failure_line` go to stderr (the log),
    and the failure line alone to ``console`` (the job's real stderr)."""

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        line = failure_line(rule, exc, log_path)
        traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
        print(line, file=sys.stderr, flush=True)
        print(line, file=console, flush=True)

    return hook


def to_log(path: str | Path, rule: str | None = None) -> None:
    """Redirect file descriptors 1 and 2 to ``path`` (appending) and log at INFO level there.

    An uncaught exception then writes its full traceback to the log and one line,
    ``ERROR <rule>: <ExceptionType>: <message> (full log: <path>)``, to the stderr the job had
    before (the console, or Slurm's job output); the process still exits with status 1.
    ``rule`` names the job in that line (default: the script's file name).
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    console = os.fdopen(os.dup(2), "w")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    logging.basicConfig(level=logging.INFO, format=FORMAT, force=True)
    sys.excepthook = failure_hook(rule or Path(sys.argv[0]).name, path, console)
