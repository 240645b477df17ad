"""The launched rank's process group starts without ``device_id`` (the DeepSpeed/vLLM weight-sync hang)."""

from __future__ import annotations

import socket

import pytest
import torch.distributed as dist

from misalign_fv.distributed import init_process_group


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_not_launched_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not init_process_group() and not dist.is_initialized()


def test_a_launched_rank_starts_an_unbound_group_once(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        assert init_process_group(timeout_s=60)
        assert dist.is_initialized() and dist.get_world_size() == 1
        # what DeepSpeed >= 0.17.3 would have bound, and what its init now skips (a group exists)
        assert dist.distributed_c10d._get_default_group().bound_device_id is None
        assert not init_process_group()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
