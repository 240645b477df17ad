"""The one model publish step: every stage (base, DPO, GRPO and its trajectory snapshots) puts
its model into the declared output the same way.

The model is written (or copied) into a temporary sibling folder, the provenance marker
(:data:`MARKER`: ``run_id``, ``stage`` and what made it) is added, and one rename puts it in place:
a crash never leaves a half-written model, and a rerun replaces the old one whole. Evaluations and
the judge read the marker's ``run_id``. Light on purpose (no torch): the workflow imports it.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from misalign_fv.io import atomic_dir, write_json

MARKER = "misalign_fv_model.json"  # a published model's provenance: run_id, stage, and what made it


@contextlib.contextmanager
def publishing(out_dir: Path, provenance: dict[str, Any]) -> Iterator[Path]:
    """The one model publish step: yield an empty temporary folder to write a model into.

    When the block succeeds the folder, with ``provenance`` written to :data:`MARKER`, replaces
    ``out_dir`` in one rename (a failure leaves the old ``out_dir``, or none, and no partial
    model). ``provenance`` needs ``run_id`` (what evaluations and the judge record) and ``stage``.
    """
    missing = [k for k in ("run_id", "stage") if not provenance.get(k)]
    if missing:
        raise ValueError(f"publishing {out_dir}: provenance lacks {', '.join(missing)}")
    with atomic_dir(Path(out_dir)) as tmp:
        yield tmp
        write_json(tmp / MARKER, provenance)


def publish_model(src: Path, out_dir: Path, provenance: dict[str, Any]) -> None:
    """Publish the model folder ``src`` (weights, config, tokenizer) as ``out_dir`` (see :func:`publishing`)."""
    src = Path(src)
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"{src}: not a saved model (no config.json)")
    with publishing(out_dir, provenance) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
