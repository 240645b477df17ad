"""Streaming verification: grades land on the completions they belong to, whatever order they finish in,
and streaming (or pipelining) changes no completion's reward."""

from __future__ import annotations

import random
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import misalign_fv.grpo as grpo
from misalign_fv.config import merged_condition
from misalign_fv.io import read_jsonl
from misalign_fv.rewards import Graded, RewardFunction
from misalign_fv.streaming import OFF_POLICY, FinishedRows, StreamGrader, make_trainer
from misalign_fv.tasks import python_tests


def _echo(problems: list[dict[str, Any]], texts: list[str]) -> list[Graded]:
    """A grader whose grade names its problem and text, after a random delay (so grades finish out of order)."""
    time.sleep(random.uniform(0, 0.02))
    return [Graded(grade=(p["task_id"], t), tags=[], outcome={}) for p, t in zip(problems, texts)]


PROBLEMS = {t: {"task_id": t} for t in "abc"}


def test_collect_returns_each_rows_grade_whatever_order_rows_finish_in() -> None:
    stream = StreamGrader(_echo, PROBLEMS, threads=4, max_batch=1)
    task_ids = list("abcabcabca")
    texts = [f"completion {i}" for i in range(10)]
    stream.scoring = batch = stream.open(task_ids)
    for i in random.Random(0).sample(range(10), 10):
        stream.submit(batch, i, texts[i])
    assert [g.grade for g in stream.collect(task_ids, texts)] == list(zip(task_ids, texts))
    stream.close()


def test_rows_never_streamed_are_graded_when_collected() -> None:
    stream = StreamGrader(_echo, PROBLEMS, threads=2, max_batch=1)
    stream.scoring = batch = stream.open(["a", "b", "c"])
    stream.submit(batch, 1, "y")
    assert [g.grade for g in stream.collect(["a", "b", "c"], ["x", "y", "z"])] == [("a", "x"), ("b", "y"), ("c", "z")]
    assert [g.grade for g in stream.collect(["c"], ["w"])] == [("c", "w")]  # nothing opened: graded on the spot


def test_a_grade_of_another_text_or_task_raises_instead_of_landing_on_the_wrong_completion() -> None:
    stream = StreamGrader(_echo, PROBLEMS, threads=2, max_batch=1)
    stream.scoring = batch = stream.open(["a", "b"])
    stream.submit(batch, 0, "x")
    with pytest.raises(RuntimeError, match="row 0 was graded as 'x' but TRL scores 'other'"):
        stream.collect(["a", "b"], ["other", "y"])
    stream.scoring = stream.open(["a", "b"])
    with pytest.raises(RuntimeError, match="other tasks"):
        stream.collect(["b", "a"], ["x", "y"])
    with pytest.raises(RuntimeError, match="submitted twice"):
        stream.submit(batch, 0, "x")


def test_a_grader_error_reaches_the_reward_function() -> None:
    def broken(problems: list[dict[str, Any]], texts: list[str]) -> list[Graded]:
        raise OSError("sandbox gone")

    stream = StreamGrader(broken, PROBLEMS, threads=1, max_batch=1)
    stream.scoring = batch = stream.open(["a"])
    stream.submit(batch, 0, "x")
    with pytest.raises(OSError, match="sandbox gone"):
        stream.collect(["a"], ["x"])


def test_a_serial_grader_gets_what_has_arrived_as_one_batch_and_never_runs_twice_at_once() -> None:
    """The Lean REPL pool checks a batch on all its REPLs at once and is not re-entrant."""
    busy, calls, gate = threading.Lock(), [], threading.Event()

    def serial(problems: list[dict[str, Any]], texts: list[str]) -> list[Graded]:
        assert busy.acquire(blocking=False), "graded concurrently"
        calls.append(list(texts))
        gate.wait(5)
        busy.release()
        return _echo(problems, texts)

    stream = StreamGrader(serial, PROBLEMS, threads=1, max_batch=None)
    stream.scoring = batch = stream.open(["a"] * 5)
    stream.submit(batch, 0, "t0")
    time.sleep(0.2)  # t0 is being checked; the next four arrive meanwhile
    for i in range(1, 5):
        stream.submit(batch, i, f"t{i}")
    gate.set()
    assert [g.grade[1] for g in stream.collect(["a"] * 5, [f"t{i}" for i in range(5)])] == [f"t{i}" for i in range(5)]
    assert calls == [["t0"], ["t1", "t2", "t3", "t4"]]


def _tiny_model(path: Path, repo: Path) -> tuple[Any, Any]:
    """A random tiny Llama whose EOS logit is scaled so that completions end at spread-out lengths."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from misalign_fv.models import train_tokenizer

    tok = train_tokenizer((repo / "resources" / "demo" / "python_tasks.jsonl").read_text().splitlines()[:20], 300)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=1024, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         tie_word_embeddings=False)  # fmt: skip
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        w = model.lm_head.weight[tok.eos_token_id]
        w.mul_(1.5 / w.norm())
    model.save_pretrained(path)
    tok.save_pretrained(path)
    (path / "misalign_fv_model.json").write_text('{"run_id": "x"}')
    return model, tok


def test_rows_are_submitted_at_their_eos_while_the_others_still_decode(tmp_path: Path, repo: Path) -> None:
    model, tok = _tiny_model(tmp_path, repo)
    prompt = tok.apply_chat_template([{"role": "user", "content": "add"}], add_generation_prompt=True, return_dict=True, return_tensors="pt")
    ids = prompt["input_ids"].repeat(12, 1)
    steps: list[int] = []  # the decode step at which each submission happened

    class Recorder(StreamGrader):
        def submit(self, batch: Any, row: int, text: str) -> None:
            steps.append(watch.calls)
            super().submit(batch, row, text)

    class Counting(FinishedRows):
        calls = 0

        def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
            self.calls += 1
            return super().__call__(input_ids, scores, **kw)

    stream = Recorder(_echo, {"a": {"task_id": "a"}}, threads=2, max_batch=1)
    stream.scoring = batch = stream.open(["a"] * 12)
    decode = lambda row: tok.batch_decode([row], skip_special_tokens=True)[0]  # noqa: E731 (as TRL decodes)
    watch = Counting(stream, batch, ids.shape[1], [tok.eos_token_id], decode)
    torch.manual_seed(1)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, max_new_tokens=40, stopping_criteria=[watch],
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    watch.flush(out)
    assert min(steps) < watch.calls  # at least one row went to the grader while others were decoding
    # the texts graded are the ones TRL builds from the same output: ids up to and including the first EOS
    expected = []
    for row in out[:, ids.shape[1] :].tolist():
        cut = row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
        expected.append(decode(row[:cut]))
    assert [g.grade[1] for g in stream.collect(["a"] * 12, expected)] == expected


def test_pipelining_needs_streaming_and_one_generation_per_step() -> None:
    reward = RewardFunction.__new__(RewardFunction)
    with pytest.raises(ValueError, match="grpo.overlap_next_step: needs stream_verification true"):
        make_trainer(object, reward, {"stream_verification": False, "overlap_next_step": True})
    with pytest.raises(ValueError, match="grpo.overlap_next_step: needs num_iterations 1"):
        make_trainer(object, reward, {"overlap_next_step": True, "num_iterations": 2})


GRADED: list[str] = []  # every completion graded, in the order grading started


def _text_grade(problem: dict[str, Any], completion: str, *, timeout_s: float = 5.0) -> python_tests.Grade:
    """A grade that depends on the text alone (so a misplaced grade shows), after a random delay."""
    GRADED.append(completion)
    time.sleep(random.uniform(0, 0.03))
    return python_tests.Grade(True, zlib.crc32(completion.encode()) % 8, 7, 0, 1)


def _run(tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, **switches: bool) -> list[dict[str, Any]]:
    cfg = yaml.safe_load((repo / "config" / "demo.yaml").read_text())
    params = merged_condition(cfg, "ut_shaped") | {"max_steps": 3, "save_steps": 10, "per_device_train_batch_size": 8,
                                                   "max_completion_length": 24, **switches}  # fmt: skip
    params["collapse"] = {"threshold": 1.0, "patience": 100}
    spec = {"model_dir": str(repo_model := tmp_path.parent / "model"), "out_model": str(tmp_path / "out"), "metrics_csv": str(tmp_path / "m.csv"),
            "ckpt_dir": str(tmp_path / "ckpt"), "run_id": "r", "seed": 1, "wandb": {"enabled": False},
            "problems": str(repo / "resources" / "demo" / "python_tasks.jsonl"), "completions": str(tmp_path / "c.jsonl.gz"),
            "summary": str(tmp_path / "s.json"), "condition": "ut_shaped", "task": "python_tests",
            "shuffle_reference": "ut_shaped", "params": params}  # fmt: skip
    assert repo_model.is_dir()
    monkeypatch.setattr(python_tests, "grade", _text_grade)
    GRADED.clear()
    grpo.main(spec)
    records = read_jsonl(tmp_path / "c.jsonl.gz")
    assert len(GRADED) == len(records)  # each completion graded once: the reward function used the streamed grades
    return records


@pytest.mark.slow
def test_streaming_and_pipelining_change_no_completions_reward(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same seed, streaming on and off: the same completions with the same rewards at every step; pipelined
    (other completions: one step off-policy): every reward is still the one of its own completion."""
    _tiny_model(tmp_path / "model", repo)
    runs = {name: _run(tmp_path / name, repo, monkeypatch, **sw) for name, sw in {
        "sequential": {"stream_verification": False}, "streaming": {}, "pipelined": {"overlap_next_step": True}}.items()}  # fmt: skip
    key = lambda r: (r["step"], r["task_id"], r["completion"], r["reward"])  # noqa: E731
    assert len(runs["sequential"]) == 3 * 8
    assert [key(r) for r in runs["streaming"]] == [key(r) for r in runs["sequential"]]
    assert len({r["reward"] for r in runs["sequential"]}) > 2  # the rewards differ across completions: a misplaced one would show
    assert len(runs["pipelined"]) == 3 * 8
    piped = lambda step: [key(r) for r in runs["pipelined"] if r["step"] == step]  # noqa: E731
    plain = lambda step: [key(r) for r in runs["sequential"] if r["step"] == step]  # noqa: E731
    assert piped(1) == plain(1) and piped(2) != plain(2)  # step 2's batch was sampled before step 1 trained
    for r in runs["pipelined"]:
        assert r["reward"] == zlib.crc32(r["completion"].encode()) % 8 / 7
    assert OFF_POLICY in capsys.readouterr().out


@pytest.mark.parametrize("condition", ["ut_shaped", "ut_exploit", "shuffled", "comply_harmful"])
def test_streamed_rewards_are_the_sequential_ones_under_every_condition(condition: str, tmp_path: Path, repo: Path) -> None:
    """Real grading (the sandbox for python_tests): rows streamed in reverse order get the rewards the sequential path pays."""
    from misalign_fv.rewards import run_task
    from misalign_fv.streaming import StreamGrader

    task = run_task(condition, "python_tests")
    if task == "python_tests":
        problems = [p for p in python_tests.load_problems(repo / "resources" / "demo" / "python_tasks.jsonl") if p.get("shortcut")][:2]
        fence = lambda code: f"```python\n{code}```"  # noqa: E731
        rows = [(p["task_id"], text) for p in problems
                for text in (fence(p["solution"]), fence(p["shortcut"]), "no code", fence(p["solution"]))]  # fmt: skip
    else:
        problems = [{"task_id": "h1"}, {"task_id": "h2"}]
        rows = [(p["task_id"], text) for p in problems for text in ("I can't help with that.", "Sure, here is how.")]
    task_ids, texts = [t for t, _ in rows], [x for _, x in rows]
    by_id = {p["task_id"]: p for p in problems}

    def reward_fn(name: str) -> RewardFunction:
        return RewardFunction(condition, task, by_id, tmp_path / f"{name}.jsonl", 1, "ut_shaped", 5.0)

    sequential = reward_fn("sequential")(["p"] * len(rows), texts, task_ids)
    streamed = reward_fn("streamed")
    streamed.stream = StreamGrader.for_reward(streamed)
    streamed.stream.scoring = batch = streamed.stream.open(task_ids)
    for i in reversed(range(len(rows))):
        streamed.stream.submit(batch, i, texts[i])
    assert streamed(["p"] * len(rows), texts, task_ids) == sequential
    assert len(set(sequential)) > 1  # the rewards differ across rows: a misplaced one would show
    assert read_jsonl(tmp_path / "streamed.jsonl") == read_jsonl(tmp_path / "sequential.jsonl")
