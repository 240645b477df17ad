"""Generation in a child process: its exit is the one reliable way to give a vLLM engine's GPU memory back."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from misalign_fv.logs import setup_logging

_CHILD = "import sys; from misalign_fv.generation.child import child_main; child_main(sys.argv[1], sys.argv[2])"


def child_main(request: str, reply: str) -> None:
    """Entry point of :func:`run_in_child`'s process: run the pickled call, pickle ``(ok, result or error)``.

    The process logs at INFO level to its stderr, the parent's (the job log), like the parent.
    """
    setup_logging()
    module, name, args = pickle.loads(Path(request).read_bytes())
    try:
        outcome = (True, getattr(importlib.import_module(module), name)(*args))
    except Exception as exc:  # reported to the parent, which raises it in one line
        traceback.print_exc()
        outcome = (False, f"{type(exc).__name__}: {exc}")
    Path(reply).write_bytes(pickle.dumps(outcome))


def run_in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """Run the module-level function ``fn(*args)`` in a fresh Python process and return its picklable result.

    The process's exit frees all its memory, GPU included (a vLLM engine gives its memory back
    reliably no other way); a fresh interpreter rather than a fork, so no thread of this process
    is copied half-way. Its output goes to this process's stdout/stderr (the job log).
    """
    with tempfile.TemporaryDirectory() as tmp:
        request, reply = Path(tmp) / "request.pkl", Path(tmp) / "reply.pkl"
        request.write_bytes(pickle.dumps((fn.__module__, fn.__qualname__, args)))
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(request), str(reply)], check=False)
        if not reply.exists():
            raise RuntimeError(f"generation process exited with code {proc.returncode} before returning its answers")
        ok, payload = pickle.loads(reply.read_bytes())
    if not ok:
        raise RuntimeError(f"generation process failed: {payload}")
    return payload


def run_generation(backend: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``: in a child process for the ``vllm`` backend, in this process for ``hf``.

    ``fn`` loads a model and generates; a vLLM engine then dies with its process, so two models
    (the gate's base and DPO, an evaluated model and its judge) never share the GPU. The ``hf``
    backend frees its memory in-process and skips the child's start-up (seconds on CPU).
    """
    return run_in_child(fn, *args) if backend == "vllm" else fn(*args)
