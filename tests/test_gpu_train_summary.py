"""The training-step benchmark's summary (benchmarks/gpu/train_step.py): which micro-steps count, MFU."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def train_step(repo: Path) -> Any:
    sys.path.insert(0, str(repo / "benchmarks" / "gpu"))
    spec = importlib.util.spec_from_file_location("train_step", repo / "benchmarks" / "gpu" / "train_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(rank: int, micro_s: list[float], lengths: list[int], optimizer_s: float = 0.5) -> dict[str, Any]:
    """A probe record: one loss computation per micro-step, the optimizer step inside the last."""
    events, t = [], 0.0
    for i, s in enumerate(micro_s):
        events.append({"what": "loss_rows", "start": t + 0.01, "lengths": lengths})
        if i == len(micro_s) - 1:
            events.append({"what": "optimizer", "start": t + s - optimizer_s, "s": optimizer_s, "peak_gib": 1.0})
        events.append({"what": "micro", "start": t, "s": s, "peak_gib": 2.0})
        t += s + 0.1
    return {"rank": rank, "events": events, "max_reserved_gib": 3.0, "wall_s": t}


def test_warm_up_and_profiled_micro_steps_are_left_out(train_step: Any) -> None:
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=100, hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2)
    n_params, lengths = 1100, [10, 20]
    # micro 0 warms up, 2 is profiled, 3 waits for the profile summary: only 1 and 4 count.
    recs = [record(0, [9.0, 2.0, 7.0, 8.0, 2.5], lengths), record(1, [9.0, 2.0, 7.0, 8.0, 3.5], lengths)]
    out = train_step.summarize(recs, n_params, config, peak_tflops=1e-9, skip=2)
    r0, r1 = out["ranks"]
    assert r0["update_s_median"] == pytest.approx((2.0 + 2.0) / 2)  # the last micro-step minus its 0.5 s optimizer step
    assert r1["update_s_median"] == pytest.approx((2.0 + 3.0) / 2)
    assert out["job"]["update_s_median"] == r1["update_s_median"]  # the slowest rank is the job's
    flops = 6 * (n_params - 100 * 8) * 30 + 6 * 2 * 8 * (10**2 + 20**2)
    assert r0["mfu_pct"] == pytest.approx(100 * flops / 2.0 / 1e3)
    assert r0["tokens_per_micro"] == 30 and r0["optimizer_s"] == 0.5
    # Without profiling only the warm-up is dropped.
    plain = train_step.summarize(recs[:1], n_params, config, peak_tflops=1e-9)
    assert plain["ranks"][0]["update_s_all"] == pytest.approx([9.0, 2.0, 7.0, 8.0, 2.0])
    assert plain["ranks"][0]["update_s_median"] == pytest.approx(4.5)  # median of 2, 7, 8, 2


def test_step_mean_and_hfu_without_checkpointing(train_step: Any) -> None:
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=100, hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2)
    n_params, lengths = 1100, [10, 20]
    recs = [record(0, [9.0, 1.0, 1.0, 4.0], lengths)]  # steady: 1, 1 and 4 - 0.5 (its optimizer step)
    flops = 6 * (n_params - 100 * 8) * 30 + 6 * 2 * 8 * (10**2 + 20**2)
    checkpointed = train_step.summarize(recs, n_params, config, peak_tflops=1e-9)["ranks"][0]
    assert checkpointed["update_s_median"] == pytest.approx(1.0)
    assert checkpointed["update_s_mean"] == pytest.approx(5.5 / 3)
    assert checkpointed["mfu_mean_pct"] == pytest.approx(100 * 3 * flops / 5.5 / 1e3)
    assert checkpointed["hfu_pct"] == pytest.approx(100 * (flops + 2 * (n_params - 800) * 30) / 1.0 / 1e3)
    plain = train_step.summarize(recs, n_params, config, peak_tflops=1e-9, recompute=False)["ranks"][0]
    assert plain["hfu_pct"] == pytest.approx(plain["mfu_pct"])


def test_step_split_puts_each_phase_in_its_step(train_step: Any) -> None:
    # Two optimizer steps of GA 2: generation (rollout = gather + generate, then rewards) inside each
    # step's first micro-step, the optimizer step inside its last, 0.1 s of Trainer overhead between.
    events, t = [], 0.0
    for _ in range(2):
        events += [
            {"what": "micro", "start": t, "s": 10.0, "peak_gib": 5.0},
            {"what": "generate", "start": t + 0.1, "s": 7.0, "peak_gib": 9.0},
            {"what": "rollout", "start": t + 0.2, "s": 5.0},
            {"what": "hf_generate", "start": t + 0.5, "s": 4.5},
            {"what": "reward", "start": t + 5.5, "s": 1.5},
            {"what": "micro", "start": t + 10.1, "s": 4.0, "peak_gib": 5.0},
            {"what": "optimizer", "start": t + 12.0, "s": 2.0, "peak_gib": 5.0},
        ]
        t += 14.2
    rows = train_step.step_split({"rank": 0, "events": events}, ga=2)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["wall_s"] == pytest.approx(14.1)
        assert r["generate_s"] == pytest.approx(4.5) and r["sync_s"] == pytest.approx(0.5)
        assert r["reward_s"] == pytest.approx(1.5) and r["score_other_s"] == pytest.approx(0.5)
        assert r["update_s"] == pytest.approx(14.0 - 7.0 - 2.0) and r["optimizer_s"] == pytest.approx(2.0)
        assert r["overhead_s"] == pytest.approx(0.1) and r["generate_peak_gib"] == 9.0
    # An unfinished step (one micro-step of two) is not a row.
    assert len(train_step.step_split({"rank": 0, "events": events[:-2]}, ga=2)) == 1


def test_probe_stops_when_another_step_would_pass_the_deadline(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(repo / "benchmarks" / "gpu"))
    import train_probe

    now = [0.0]
    monkeypatch.setattr(train_probe.time, "perf_counter", lambda: now[0])
    monkeypatch.setitem(train_probe.PROFILE, "stop", False)
    monkeypatch.setitem(train_probe.PROFILE, "start", 0.0)
    monkeypatch.setitem(train_probe.PROFILE, "deadline_s", 90.0)
    events = [{"what": "micro", "start": 0.0, "s": 30.0}]
    monkeypatch.setattr(train_probe, "EVENTS", events)
    now[0] = 30.0
    assert not train_probe._should_stop()  # no optimizer step yet
    events[:] = [{"what": "optimizer", "start": 25.0, "s": 5.0}, {"what": "micro", "start": 20.0, "s": 10.0}]
    assert not train_probe._should_stop()  # step 1 took 30 s: another would end at 60 <= 90
    events += [{"what": "optimizer", "start": 60.0, "s": 5.0}, {"what": "micro", "start": 55.0, "s": 10.0}]
    now[0] = 65.0
    assert train_probe._should_stop()  # step 2 took 35 s: another would end at 100 > 90
    events.append({"what": "micro", "start": 66.0, "s": 1.0})  # a micro-step without an optimizer step
    now[0] = 67.0
    assert not train_probe._should_stop()
