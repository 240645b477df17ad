"""Progress of a long generation in the job log: counts, elapsed time and ETA at INFO level."""

from __future__ import annotations

import io
import logging
from typing import Any

from tqdm import tqdm

from misalign_fv.logs import duration

log = logging.getLogger(__name__)


class LogProgress(tqdm):  # type: ignore[misc]
    """A tqdm bar that writes ``desc: done/total unit (pct), elapsed h:mm:ss, ETA h:mm:ss`` to the log.

    One line per update at ``mininterval=0`` (the ``hf`` backend: one per decoded batch), at most
    one per ``mininterval`` seconds otherwise, and a last one when it closes. Being a tqdm, it can
    also be handed to vLLM's ``LLM.generate(use_tqdm=...)``, which updates it per finished request.
    """

    monitor_interval = 0  # no tqdm monitor thread (nothing to redraw; keeps fork-based sandboxes thread-free)

    def __init__(self, *args: Any, mininterval: float = 0.0, **kwargs: Any) -> None:
        """Arguments as tqdm's; nothing is drawn on a terminal."""
        kwargs.setdefault("unit", "sequences")
        kwargs.update(file=io.StringIO(), dynamic_ncols=False, ncols=80)
        super().__init__(*args, mininterval=mininterval, miniters=1, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        """Log the current count instead of drawing the bar (a count already logged is not repeated)."""
        d = self.format_dict
        done, total, elapsed = d["n"], d["total"], d["elapsed"]
        if done == getattr(self, "logged", None):
            return True
        self.logged = done
        if total:
            eta = duration(max(0.0, elapsed / done * (total - done))) if done else "?"
            log.info(
                "%s: %d/%d %s (%.0f%%), elapsed %s, ETA %s",
                d["prefix"] or "progress", done, total, d["unit"], 100 * done / total, duration(elapsed), eta,
            )  # fmt: skip
        else:
            log.info("%s: %d %s, elapsed %s", d["prefix"] or "progress", done, d["unit"], duration(elapsed))
        return True
