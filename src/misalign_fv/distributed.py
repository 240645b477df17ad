"""The default process group of a launched training rank, started without ``device_id``.

DeepSpeed >= 0.17.3 starts the group with ``init_process_group(..., device_id=...)``
(deepspeedai/DeepSpeed#7266), which sets up NCCL eagerly and bound to one device; with vLLM's own
groups beside it the job can hang at the weight sync after the first step (diagnosed in
allenai/open-instruct#1311, which unpinned ``deepspeed<0.17.3`` this way). DeepSpeed only starts a
group when none exists, so a rank that starts the default group itself first, as here, keeps the
pinned DeepSpeed (``envs/cluster.yaml``) and avoids the hang.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT_S = 1800.0  # transformers' TrainingArguments.ddp_timeout default, which the launch used before


def init_process_group(timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Start the default process group of a rank launched by ``accelerate launch`` (``WORLD_SIZE``
    set), on this rank's GPU (``LOCAL_RANK``) but without binding ``device_id``; NCCL on GPUs,
    gloo on CPU. Returns whether a group was started: False when not launched or already started.
    """
    if "WORLD_SIZE" not in os.environ or dist.is_initialized():
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timedelta(seconds=timeout_s))
    return True
