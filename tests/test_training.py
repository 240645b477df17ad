"""Launching training (in-process, ZeRO-3, ZeRO-3 + offload), weight dtype, and the multi-GPU fixes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import misalign_fv.dpo as dpo
import misalign_fv.grpo as grpo
from misalign_fv import training
from misalign_fv.io import write_jsonl

GB = 10**9
H100 = 85 * GB  # 79.2 GiB as torch reports an 80 GB card


@pytest.mark.parametrize(
    ("params", "gpus", "plan"),
    [
        (6.91e9, 0, "in_process"),  # CPU
        (6.91e9, 1, "zero3_offload"),  # 110 GB of states: offload even on one GPU
        (6.91e9, 2, "zero3_offload"),  # 55 GB a GPU > half of 85 GB
        (6.91e9, 4, "zero3"),  # 28 GB a GPU: the real layout
        (6.91e9, 8, "zero3"),
        (1e9, 1, "in_process"),  # 16 GB fits one GPU
        (3e5, 4, "zero3"),  # any model on several GPUs is sharded
    ],
)
def test_launch_plan(params: float, gpus: int, plan: str) -> None:
    assert training.launch_plan(int(params), gpus, H100) == plan


def test_launch_command_names_the_deepspeed_settings_of_its_plan(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    plain = training.launch_command("misalign_fv.grpo", spec, "zero3", 4)
    assert plain[plain.index("--config_file") + 1] == str(training.ZERO3_CONFIG)
    assert "--deepspeed_config_file" not in plain and plain[-3:] == ["-m", "misalign_fv.grpo", str(spec)]
    assert plain[plain.index("--num_processes") + 1] == "4"
    off = training.launch_command("misalign_fv.dpo", spec, "zero3_offload", 2)
    assert off[off.index("--config_file") + 1] == str(training.ZERO3_OFFLOAD_CONFIG)
    assert Path(off[off.index("--deepspeed_config_file") + 1]).is_absolute()


def test_offload_config_files_are_consistent() -> None:
    ds = json.loads(training.ZERO3_OFFLOAD_DEEPSPEED.read_text())
    zero = ds["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_optimizer"]["device"] == "cpu"
    # DeepSpeed refuses a client (torch) optimizer with offload: the optimizer must be DeepSpeed's.
    assert ds["optimizer"]["type"] == "AdamW" and ds["bf16"]["enabled"] == "auto"
    acc = yaml.safe_load(training.ZERO3_OFFLOAD_CONFIG.read_text())
    # accelerate raises when these are given beside a DeepSpeed config file.
    assert "mixed_precision" not in acc and acc["distributed_type"] == "DEEPSPEED"
    assert set(acc["deepspeed_config"]) == {"deepspeed_multinode_launcher", "zero3_init_flag"}
    plain = yaml.safe_load(training.ZERO3_CONFIG.read_text())
    assert plain["deepspeed_config"]["zero_stage"] == 3 and plain["deepspeed_config"]["offload_optimizer_device"] == "none"


def _tiny_model_dir(path: Path) -> int:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def test_count_params_reads_the_safetensors_headers(tmp_path: Path) -> None:
    n = _tiny_model_dir(tmp_path / "m")
    assert training.count_params(tmp_path / "m") == n
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors"):
        training.count_params(tmp_path)


def test_run_entry_runs_a_cpu_job_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "probe_entry.py").write_text("SEEN = []\ndef main(spec):\n    SEEN.append(spec)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    spec = {"model_dir": str(tmp_path), "x": 1}
    training.run_entry("probe_entry", spec, tmp_path / "run" / "spec.json")
    assert sys.modules["probe_entry"].SEEN == [spec]
    assert json.loads((tmp_path / "run" / "spec.json").read_text()) == spec


def test_a_failed_launch_says_which_module_and_where_the_tracebacks_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ranks print their tracebacks to the log; the job's one error line names the module and the exit status."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: type("P", (), {"total_memory": H100})())
    monkeypatch.setattr(training, "count_params", lambda d: 10**6)
    monkeypatch.setattr(training, "launch_command", lambda *a: [sys.executable, "-c", "raise SystemExit(3)"])
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    expected = r"^misalign_fv.grpo exited with status 3 under accelerate launch \(zero3, 2 GPUs\); each rank's traceback is in the log$"
    with pytest.raises(RuntimeError, match=expected):
        training.run_entry("misalign_fv.grpo", {"model_dir": str(tmp_path)}, tmp_path / "spec.json")


def test_weights_load_in_bf16_only_under_deepspeed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    assert training.model_dtype(True) == torch.float32  # bf16 autocast over fp32 weights
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert training.model_dtype(True) == torch.bfloat16  # DeepSpeed keeps the fp32 master copy
    assert training.model_dtype(False) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training.model_dtype(True) == torch.float32  # CPU never trains in bf16


def test_bf16_weights_lose_updates_at_the_configured_learning_rate() -> None:
    """Why model_dtype keeps fp32 weights outside DeepSpeed: AdamW's first step moves each weight by ~lr."""
    torch.manual_seed(0)
    w = torch.randn(4096) * 0.02
    for dtype, expect_changed in ((torch.bfloat16, False), (torch.float32, True)):
        p = torch.nn.Parameter(w.to(dtype))
        opt = torch.optim.AdamW([p], lr=5e-7, weight_decay=0.0)
        p.grad = torch.randn_like(p)
        before = p.detach().clone()
        opt.step()
        frac = float((p.detach() != before).float().mean())
        assert (frac > 0.9) if expect_changed else (frac < 0.05)  # bf16: only weights below ~1e-4 move


def test_preference_pairs_are_a_file_backed_dataset(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, [{"prompt": f"q{i}", "chosen": "no", "rejected": "yes"} for i in range(3)])
    ds = dpo.preference_dataset(pairs, tmp_path / "cache")
    assert ds[1] == dpo.conversational({"prompt": "q1", "chosen": "no", "rejected": "yes"})
    # TRL writes the precomputed reference log-probs beside these files, where every rank finds them.
    assert ds.cache_files and all(Path(f["filename"]).is_relative_to(tmp_path / "cache") for f in ds.cache_files)


class _OtherRankTrainer:
    """A trainer on rank 1 of a multi-GPU job: records what the entry point asks of it."""

    calls: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state = None

    def add_callback(self, callback: Any) -> None:
        pass

    def remove_callback(self, callback: Any) -> None:
        pass

    def train(self, resume_from_checkpoint: Any = None) -> None:
        self.calls.append("train")

    def save_model(self, path: str) -> None:
        self.calls.append(f"save_model {Path(path).name}")

    def is_world_process_zero(self) -> bool:
        return False


def _stage_spec(stage: str, tmp_path: Path, repo: Path) -> dict[str, Any]:
    """A DPO or GRPO spec on the tiny model of ``tmp_path / 'model'`` with the demo's parameters."""
    from misalign_fv.config import merged_condition

    cfg = yaml.safe_load((repo / "config" / "demo.yaml").read_text())
    common = {"model_dir": str(tmp_path / "model"), "out_model": str(tmp_path / "out"), "metrics_csv": str(tmp_path / "m.csv"),
              "ckpt_dir": str(tmp_path / "ckpt"), "run_id": "r", "seed": 1, "wandb": {"enabled": False}}  # fmt: skip
    if stage == "dpo":
        write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "a", "chosen": "a", "rejected": "a"}])
        return common | {"pairs": str(tmp_path / "pairs.jsonl"), "params": cfg["dpo"]}
    return common | {
        "problems": str(repo / "resources" / "demo" / "python_tasks.jsonl"),
        "completions": str(tmp_path / "c.jsonl.gz"),
        "summary": str(tmp_path / "s.json"),
        "condition": "ut_shaped",
        "task": "python_tests",
        "shuffle_reference": "ut_shaped",
        "params": merged_condition(cfg, "ut_shaped"),
    }


def _tiny_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>")), eos_token="a").save_pretrained(path)


@pytest.mark.parametrize("stage", ["dpo", "grpo"])
def test_a_finished_run_is_republished_by_rank_0_alone(stage: str, tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rerunning a finished multi-GPU run (outputs deleted): the other ranks must not write the same files."""
    from transformers import TrainerState

    _tiny_model_dir(tmp_path / "model")
    _tiny_tokenizer(tmp_path / "model")
    spec = _stage_spec(stage, tmp_path, repo)
    last = tmp_path / "ckpt" / "checkpoint-2"
    _tiny_model_dir(last)
    TrainerState(global_step=2, max_steps=2).save_to_json(str(last / "trainer_state.json"))
    if stage == "grpo":  # rank 1 scored its share of each step into its own log
        write_jsonl(tmp_path / "ckpt" / "completions.rank1.jsonl", [{"step": 1, "task_id": "b", "reward": 0.0}])
        write_jsonl(tmp_path / "ckpt" / "completions.rank0.jsonl", [{"step": 1, "task_id": "a", "reward": 1.0}])
    monkeypatch.setenv("RANK", "1")
    (dpo if stage == "dpo" else grpo).main(spec)
    assert not (tmp_path / "out").exists() and not (tmp_path / "ckpt" / "final").exists()
    monkeypatch.setenv("RANK", "0")
    (dpo if stage == "dpo" else grpo).main(spec)
    assert (tmp_path / "out" / "model.safetensors").exists() and (tmp_path / "out" / "tokenizer.json").exists()
    if stage == "grpo":
        from misalign_fv.io import read_jsonl

        assert [r["task_id"] for r in read_jsonl(tmp_path / "c.jsonl.gz")] == ["a", "b"]  # both ranks' records


def test_rank_logs_merge_by_step_then_rank(tmp_path: Path) -> None:
    for rank in (0, 1, 10):
        write_jsonl(tmp_path / f"completions.rank{rank}.jsonl", [{"step": s, "r": rank} for s in (1, 2)])
    assert [(r["step"], r["r"]) for r in grpo.merged_log(tmp_path)] == [(1, 0), (1, 1), (1, 10), (2, 0), (2, 1), (2, 10)]


@pytest.mark.parametrize("stage", ["dpo", "grpo"])
def test_every_rank_joins_the_final_save(stage: str, tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ZeRO-3 ``save_model`` gathers the weights from all ranks: a rank that skipped it hung the job."""
    import trl

    _tiny_model_dir(tmp_path / "model")
    _tiny_tokenizer(tmp_path / "model")
    (tmp_path / "model" / "misalign_fv_model.json").write_text('{"run_id": "x"}')
    _OtherRankTrainer.calls = []
    monkeypatch.setattr(trl, "DPOTrainer" if stage == "dpo" else "GRPOTrainer", _OtherRankTrainer)
    (dpo if stage == "dpo" else grpo).main(_stage_spec(stage, tmp_path, repo))
    assert _OtherRankTrainer.calls == ["train", "save_model final"]
    assert not (tmp_path / "out").exists()  # only rank 0 publishes


def test_every_trainer_key_of_the_schema_reaches_trl(repo: Path) -> None:
    """A key the schema accepts for dpo / grpo.defaults either goes to TRL's config or is the workflow's own."""
    schema = yaml.safe_load((repo / "workflow" / "schemas" / "config.schema.yaml").read_text())
    dpo_keys = set(schema["properties"]["dpo"]["properties"])
    grpo_keys = set(schema["$defs"]["grpo_params"]["properties"])
    assert dpo_keys - set(dpo.DPO_ARGS) == {"bf16"}
    assert grpo_keys - set(grpo.GRPO_ARGS) == {"bf16", "reward_timeout_s", "collapse", "stream_verification", "overlap_next_step"}
    assert "use_liger_kernel" in dpo.DPO_ARGS and "use_liger_kernel" in grpo.GRPO_ARGS


def test_trajectory_snapshots_are_kept_and_published_with_the_final_model_after_an_early_stop(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint at a trajectory step is copied once (rank 0) as a standalone model; a run that
    stopped before a later trajectory step publishes its final model there (it did not change)."""
    from types import SimpleNamespace

    _tiny_model_dir(tmp_path / "model")
    _tiny_tokenizer(tmp_path / "model")
    ckpt = tmp_path / "ckpt"
    _tiny_model_dir(ckpt / "checkpoint-4")
    snaps = grpo.Snapshots([4, 8], ckpt, str(tmp_path / "model"))
    control = SimpleNamespace(should_save=False)
    snaps.on_step_end(None, SimpleNamespace(global_step=3), control)
    assert not control.should_save
    snaps.on_step_end(None, SimpleNamespace(global_step=4), control)
    assert control.should_save  # a trajectory step is always checkpointed
    monkeypatch.setenv("RANK", "1")
    snaps.on_save(None, SimpleNamespace(global_step=4), control)
    assert not snaps.path(4).exists()  # rank 0 alone writes
    monkeypatch.setenv("RANK", "0")
    snaps.on_save(None, SimpleNamespace(global_step=4), control)
    assert (snaps.path(4) / "model.safetensors").exists() and (snaps.path(4) / "tokenizer.json").exists()
    _tiny_model_dir(ckpt / "final")
    spec = _stage_spec("grpo", tmp_path, repo) | {"snapshots": str(tmp_path / "snapshots")}
    collapse = grpo.CollapseStop(1.0, 2, ckpt / "collapse.json")
    collapse.collapse_step, collapse.kind = 6, "starved"
    grpo._publish(spec, SimpleNamespace(global_step=6, log_history=[{"step": 6, "grad_norm": 0.5}]), 0, collapse, snaps, 1.0)
    published = tmp_path / "snapshots"
    assert sorted(p.name for p in published.iterdir()) == ["step4", "step8"]
    assert json.loads((published / "step8" / "misalign_fv_model.json").read_text())["step"] == 8
    same = (published / "step8" / "model.safetensors").read_bytes() == (ckpt / "final" / "model.safetensors").read_bytes()
    assert same and (published / "step4" / "model.safetensors").read_bytes() != (ckpt / "final" / "model.safetensors").read_bytes()
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["collapsed"] and summary["collapse_kind"] == "starved" and summary["mean_grad_norm"] == 0.5
