"""KV-cache sizing of colocated vLLM in GRPO (src/misalign_fv/kv_budget.py), on DeepSeek-Prover-V2-7B's shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from misalign_fv import kv_budget as kv
from misalign_fv.training import STATE_BYTES_PER_PARAM, launch_plan

# DeepSeek-Prover-V2-7B's config.json fields (= benchmarks/gpu/common.py: PROVER_7B).
PROVER_7B = {
    "architectures": ["LlamaForCausalLM"], "vocab_size": 102400, "hidden_size": 4096, "intermediate_size": 11008,
    "num_hidden_layers": 30, "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 4096,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}  # fmt: skip
GPU = kv.GPU_80GB_BYTES
GRPO = {  # config/config.yaml's grpo.defaults, the keys that size memory
    "per_device_train_batch_size": 8, "gradient_accumulation_steps": 8, "max_completion_length": 1024, "use_vllm": True,
    "vllm_gpu_memory_utilization": 0.35, "vllm_enable_sleep_mode": True, "gradient_checkpointing": True,
}  # fmt: skip


@pytest.fixture
def shape() -> kv.ModelShape:
    return kv.ModelShape.from_hf_config(PROVER_7B)


def test_shape_of_the_prover(shape: kv.ModelShape) -> None:
    assert shape.kv_bytes_per_token == 2 * 30 * 32 * 128 * 2 == 491_520
    assert shape.kv_bytes_per_token / kv.MIB == pytest.approx(0.46875)  # 0.47 MiB a token (full multi-head attention)
    assert shape.params == 6_910_365_696  # 6.91 B, the safetensors' 13.82 GB in bf16
    assert shape.weight_bytes / kv.GIB == pytest.approx(12.87, abs=0.01)
    gqa = kv.ModelShape.from_hf_config(PROVER_7B | {"num_key_value_heads": 8, "head_dim": 128})
    assert gqa.kv_bytes_per_token == shape.kv_bytes_per_token // 4
    assert kv.STATE_BYTES_PER_PARAM == STATE_BYTES_PER_PARAM


def test_read_shape_from_a_checkpoint(tmp_path: Path, shape: kv.ModelShape) -> None:
    (tmp_path / "config.json").write_text(json.dumps(PROVER_7B))
    assert kv.read_shape(tmp_path) == shape


def test_share_and_concurrency_round_trip(shape: kv.ModelShape) -> None:
    # 0.35 of the card: 27.7 GiB - 12.87 weights - 2 overhead = 12.85 GiB of KV = 28,067 tokens
    assert kv.kv_cache_tokens(shape, 0.35, GPU) == 28_067
    assert kv.concurrency(shape, 0.35, 250 + 1024, GPU) == 22  # of the 64 sequences TRL asks for
    need = kv.share_needed(shape, 64, 1274, GPU)
    assert need == pytest.approx(0.659, abs=0.001)
    assert kv.concurrency(shape, need, 1274, GPU) == 64
    assert kv.kv_cache_tokens(shape, 0.1, GPU) == 0  # the weights alone do not fit


def test_configured_split_is_batch_starved(shape: kv.ModelShape) -> None:
    plan = kv.grpo_memory_plan(shape, GRPO, 250, 4, GPU)
    assert (plan.seqs, plan.seq_len, plan.concurrency) == (64, 1274, 22)
    # trainer: ZeRO-3 states 16 B x 6.91 B / 4 = 25.74 GiB + 1.5 GiB context, beside vLLM's 27.7 GiB
    assert plan.generation_bytes / kv.GIB == pytest.approx(25.74 + 1.5 + 0.35 * 79.2, abs=0.01)
    assert plan.fits and plan.starts
    # a 32k max_model_len (if the checkpoint declares one) needs 15 GiB of KV: vLLM would not start at 0.35
    assert not kv.grpo_memory_plan(shape, GRPO | {"vllm_max_model_length": 32768}, 250, 4, GPU).starts
    assert "22 of 64 sequences" in plan.describe()


def test_recommended_split(shape: kv.ModelShape) -> None:
    best = kv.recommended_plan(shape, GRPO, 250, 4, GPU)
    assert best is not None
    assert (best.share, best.sleep, best.checkpointing) == (0.6, True, False)
    assert best.concurrency == 55 and best.kv_tokens == 71_321
    # the measured 62.7 GiB peak at 8 x 1,311 tokens, scaled to 8 x 1,274, + context + asleep vLLM
    assert best.update_bytes / kv.GIB == pytest.approx(25.74 + (62.7 - 25.74) * 1274 / 1311 + 1.5 + 1.0, abs=0.01)
    # without sleep mode vLLM's budget stays through the update: no checkpointing-off split fits
    awake = kv.grpo_memory_plan(shape, GRPO, 250, 4, GPU, share=0.6, sleep=False, checkpointing=False)
    assert not awake.fits
    # 0.65 (the share on the grid that holds every sequence) leaves no headroom beside the trainer
    assert not kv.grpo_memory_plan(shape, GRPO, 250, 4, GPU, share=0.7, sleep=True, checkpointing=False).fits


def test_offloaded_states_follow_the_launch_plan(shape: kv.ModelShape) -> None:
    for gpus in (1, 2, 4, 8):
        offload = launch_plan(shape.params, gpus, GPU) == "zero3_offload"
        per_param = kv.OFFLOAD_STATE_BYTES_PER_PARAM if offload else kv.STATE_BYTES_PER_PARAM
        assert kv.trainer_state_bytes(shape, gpus, GPU) == per_param * shape.params // gpus


class _Tokenizer:
    """Chat template = the messages' text; one token a word."""

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool, tokenize: bool) -> str:
        assert add_generation_prompt and not tokenize
        return " ".join(m["content"] for m in messages) + " ASSISTANT"

    def __call__(self, text: str, add_special_tokens: bool) -> dict[str, Any]:
        return {"input_ids": text.split()}


def test_log_generation_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text(json.dumps(PROVER_7B))
    prompts = [[{"role": "user", "content": "a b c"}], [{"role": "user", "content": "a b c d e f"}]]
    assert kv.longest_prompt(_Tokenizer(), prompts) == 7
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.delenv("RANK", raising=False)
    plan = kv.log_generation_plan(tmp_path, GRPO, 250, gpu_bytes=GPU)
    out = capsys.readouterr().out
    assert plan is not None and plan.concurrency == 22
    assert "22 of 64 sequences" in out and "recommended generation plan: vllm_gpu_memory_utilization 0.60" in out
    monkeypatch.setenv("RANK", "1")
    assert kv.log_generation_plan(tmp_path, GRPO, 250, gpu_bytes=GPU) is None and capsys.readouterr().out == ""
    monkeypatch.setenv("RANK", "0")
    assert kv.log_generation_plan(tmp_path, GRPO | {"use_vllm": False}, 250) is None
    assert "use_vllm false" in capsys.readouterr().out
