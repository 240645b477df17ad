"""Verification off the critical path of a GRPO step: grade each completion as soon as it is written.

A sequential GRPO step generates the whole batch, then grades it (Lean REPLs, sandboxed tests),
then trains; the accelerators idle while the graders run. Here:

* **streaming** (``grpo.defaults.stream_verification``, on by default): a stopping criterion
  watches the decode loop of Hugging Face ``generate`` and hands every row to the task's grader
  pool (:class:`StreamGrader`) at the step where it emits EOS, while the other rows are still
  decoding; rows that reach the length limit go when ``generate`` returns. With vLLM (which
  returns the whole batch at once) the completions are submitted as soon as it returns, so
  grading overlaps TRL's log-probability passes only. The reward function then collects the
  grades by row and checks that each belongs to the very completion TRL scores (same task, same
  text): a mismatch raises, never a silent mis-assignment. What is learned does not change: the
  same completions get the same grades from the same grader, only earlier.
* **pipelining** (``grpo.defaults.overlap_next_step``, off by default): step t+1's batch is
  generated, with the weights of step t, before step t trains, so its verification runs under
  step t's training and step t+1's generation (of batch t+2). **This makes training one step
  off-policy**: every batch is trained on by weights one update newer than those that sampled it
  (TRL's importance ratio is computed against the current weights, so it does not correct this).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from misalign_fv.rewards import LEAN_PROOFS, Graded, RewardFunction, grade_completions

GRADER_THREADS = 4  # as python_tests.grade_many: one sandboxed process per thread

GradeFn = Callable[[list[dict[str, Any]], list[str]], list[Graded]]


@dataclass
class _Row:
    text: str
    future: Future[Graded]


@dataclass
class Batch:
    """One generation batch in flight: the task of every row and the grades submitted so far."""

    task_ids: list[str]
    rows: dict[int, _Row] = field(default_factory=dict)


class StreamGrader:
    """A pool of grader threads fed one completion at a time; :meth:`collect` returns the grades in batch order.

    ``grade(problems, texts)`` is the task's own batch grader (the one the sequential path calls).
    ``max_batch`` 1 with ``threads`` workers suits graders that are safe to call concurrently
    (the sandbox); a grader that is not (the Lean REPL pool checks a batch on all its REPLs at
    once) gets one thread that grades whatever has arrived as one batch (``max_batch`` None).
    """

    def __init__(self, grade: GradeFn, problems: dict[str, dict[str, Any]], *, threads: int, max_batch: int | None) -> None:
        """Start ``threads`` daemon grader threads."""
        self.grade, self.problems, self.max_batch = grade, problems, max_batch
        self._todo: queue.Queue[tuple[str, str, Future[Graded]] | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._work, daemon=True, name=f"stream-grader-{i}") for i in range(threads)]
        for t in self._threads:
            t.start()
        self.generating: Batch | None = None  # the batch the decode loop submits to
        self.scoring: Batch | None = None  # the batch the reward function collects next

    @classmethod
    def for_reward(cls, reward: RewardFunction) -> StreamGrader:
        """The stream of a reward function: its task's grader, problems, timeout and verifier."""

        def grade(problems: list[dict[str, Any]], texts: list[str]) -> list[Graded]:
            return grade_completions(reward.task, problems, texts, reward.timeout_s, reward.verifier)

        if reward.task == LEAN_PROOFS:
            return cls(grade, reward.problems, threads=1, max_batch=None)
        return cls(grade, reward.problems, threads=GRADER_THREADS, max_batch=1)

    def _work(self) -> None:
        while True:
            item = self._todo.get()
            if item is None:
                return
            items = [item]
            while self.max_batch is None or len(items) < self.max_batch:
                try:
                    nxt = self._todo.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._todo.put(None)  # leave the stop signal for the loop
                    break
                items.append(nxt)
            try:
                graded = self.grade([self.problems[t] for t, _, _ in items], [x for _, x, _ in items])
                for (_, _, fut), g in zip(items, graded, strict=True):
                    fut.set_result(g)
            except BaseException as e:  # delivered to the reward function, which re-raises it
                for _, _, fut in items:
                    if not fut.done():
                        fut.set_exception(e)

    def close(self) -> None:
        """Stop the grader threads once the queued work is done."""
        for _ in self._threads:
            self._todo.put(None)
        for t in self._threads:
            t.join()

    def open(self, task_ids: Sequence[str]) -> Batch:
        """Start a generation batch (row i proves ``task_ids[i]``); the decode loop submits to it."""
        self.generating = Batch(list(task_ids))
        return self.generating

    def submit(self, batch: Batch, row: int, text: str) -> None:
        """Queue the finished completion of ``row`` for grading (each row once)."""
        if row in batch.rows:
            raise RuntimeError(f"stream: row {row} of the batch was submitted twice")
        fut: Future[Graded] = Future()
        batch.rows[row] = _Row(text, fut)
        self._todo.put((batch.task_ids[row], text, fut))

    def collect(self, task_ids: Sequence[str], texts: Sequence[str]) -> list[Graded]:
        """The grades of the batch being scored, row by row, after checking they belong to these completions.

        Rows the decode loop never submitted are submitted now. Raises RuntimeError when the
        batch was opened for other tasks, or a submitted text differs from the one TRL scores.
        """
        batch, self.scoring = self.scoring, None
        if batch is None:  # nothing was streamed for this call: grade it all now
            batch = Batch(list(task_ids))
        if list(task_ids) != batch.task_ids:
            raise RuntimeError(f"stream: the reward function scores {len(texts)} completions of other tasks than the batch that was generated")
        for i, text in enumerate(texts):
            row = batch.rows.get(i)
            if row is None:
                self.submit(batch, i, text)
            elif row.text != text:
                raise RuntimeError(f"stream: row {i} was graded as {row.text[:60]!r} but TRL scores {text[:60]!r}")
        return [batch.rows[i].future.result() for i in range(len(texts))]


class FinishedRows(StoppingCriteria):
    """A stopping criterion that never stops anything: it submits each row to the stream at its EOS.

    ``decode(ids)`` must turn a row's completion ids (up to and including its first EOS) into the
    text TRL will score (TRL decodes the same ids with ``skip_special_tokens=True``).
    """

    def __init__(self, stream: StreamGrader, batch: Batch, prompt_len: int, eos_ids: Sequence[int], decode: Callable[[list[int]], str]) -> None:
        """Watch rows whose completion starts at column ``prompt_len``."""
        self.stream, self.batch, self.prompt_len, self.decode = stream, batch, prompt_len, decode
        self.eos = torch.tensor(list(eos_ids))

    def _ids(self, row: torch.Tensor) -> list[int]:
        ids = row[self.prompt_len :].tolist()
        eos = set(self.eos.tolist())
        for k, t in enumerate(ids):
            if t in eos:
                return ids[: k + 1]
        return ids

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        """Submit the rows whose newest token is an EOS and that were not submitted yet."""
        hit = torch.isin(input_ids[:, -1].cpu(), self.eos).nonzero().flatten().tolist()
        for i in hit:
            if i not in self.batch.rows:
                self.stream.submit(self.batch, i, self.decode(self._ids(input_ids[i].cpu())))
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def flush(self, output_ids: torch.Tensor) -> None:
        """Submit every row not submitted yet (those that reached the length limit)."""
        for i in range(output_ids.shape[0]):
            if i not in self.batch.rows:
                self.stream.submit(self.batch, i, self.decode(self._ids(output_ids[i].cpu())))


class StreamingHooks:
    """Mixin for TRL's GRPOTrainer (see :func:`trainer_class`): completions are graded while the batch is generated.

    ``stream``: the reward function's :class:`StreamGrader` (the reward function must hold it as
    ``reward.stream``). ``overlap_next_step``: generate step t+1's batch before training step t
    (one step off-policy, see the module docstring; needs one generation per optimizer step:
    ``num_iterations`` 1 and ``steps_per_generation`` = ``gradient_accumulation_steps``).
    """

    def __init__(self, *args: Any, stream: StreamGrader, overlap_next_step: bool = False, **kwargs: Any) -> None:
        """As GRPOTrainer, plus the stream and the pipelining switch."""
        super().__init__(*args, **kwargs)
        self.stream, self.overlap_next_step = stream, overlap_next_step
        self._peeked: Any = None  # (epoch iterator, the next optimizer step's first batch) when pipelining
        self._ahead: tuple[list[dict[str, Any]], Batch, tuple[Any, ...]] | None = None  # generated a step early
        self._replay: tuple[Any, ...] | None = None  # what _generate returns instead of generating

    # -- streaming -------------------------------------------------------------------------------

    def _decode(self, ids: list[int]) -> str:
        return self.processing_class.batch_decode([ids], skip_special_tokens=True)[0]

    def _generate_single_turn(self, prompt_ids: Any, images: Any, multimodal_fields: Any, num_generations: Any, has_tool_images: bool = False) -> Any:
        """TRL's generation, with every row handed to the stream when it is finished."""
        batch, self.stream.generating = self.stream.generating, None  # each opened batch is generated once
        if batch is None or self.use_vllm or self.use_transformers_continuous_batching:
            out = super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
            if batch is not None:  # the whole batch arrives at once: submit it before TRL's log-prob passes
                for i, ids in enumerate(out[0]):
                    self.stream.submit(batch, i, self._decode(list(ids)))
            return out
        model = self.accelerator.unwrap_model(self.model_wrapped)
        original = model.generate

        def generate(*args: Any, **kwargs: Any) -> Any:
            watch = FinishedRows(self.stream, batch, kwargs["input_ids"].shape[1], self.eos_token_ids, self._decode)
            kwargs["stopping_criteria"] = StoppingCriteriaList([*(kwargs.get("stopping_criteria") or []), watch])
            out = original(*args, **kwargs)
            watch.flush(out)
            return out

        model.generate = generate  # an instance attribute: shadows the method for this call only
        try:
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
        finally:
            del model.generate

    def _generate(self, prompts: list[Any]) -> Any:
        if self._replay is not None:  # pipelining: this batch was generated a step ago
            out, self._replay = self._replay, None
            return out
        return super()._generate(prompts)

    def _generate_now(self, inputs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Batch, tuple[Any, ...]]:
        batch = self.stream.open([x["task_id"] for x in inputs])
        return inputs, batch, super()._generate([x["prompt"] for x in inputs])

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """Open a stream batch for ``inputs`` (and, pipelining, generate the next step's batch first)."""
        if not (self.overlap_next_step and self.model.training):
            self.stream.scoring = self.stream.open([x["task_id"] for x in inputs])
            return super()._generate_and_score_completions(inputs)
        current, self._ahead = self._ahead, None
        if current is None or [(x["task_id"], x["prompt"]) for x in current[0]] != [(x["task_id"], x["prompt"]) for x in inputs]:
            current = self._generate_now(inputs)  # first step, or a new epoch dropped the batch generated ahead
        if self._peeked is not None and self.state.global_step + 1 < self.state.max_steps:
            self._ahead = self._generate_now(self._peeked[1])
        self.stream.scoring, self._replay = current[1], current[2]
        return super()._generate_and_score_completions(inputs)

    # -- pipelining: the next optimizer step's batch, one step early ---------------------------

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> Any:
        """The Trainer's batches of this step; pipelining also peeks at the next step's first batch."""
        if not self.overlap_next_step:
            return super().get_batch_samples(epoch_iterator, num_batches, device)
        samples = []
        if self._peeked is not None and self._peeked[0] is epoch_iterator:
            samples.append(self._peeked[1])
        self._peeked = None
        while len(samples) < num_batches:
            try:
                samples.append(next(epoch_iterator))
            except StopIteration:
                break
        try:
            self._peeked = (epoch_iterator, next(epoch_iterator))
        except StopIteration:
            pass
        return samples, self._get_num_items_in_batch(samples, device)


def trainer_class(base: type) -> type:
    """``base`` (TRL's GRPOTrainer) with :class:`StreamingHooks`."""
    return type("StreamingGRPOTrainer", (StreamingHooks, base), {})


OFF_POLICY = (
    "overlap_next_step: each step's batch is generated before the previous step trains, so training "
    "is ONE STEP OFF-POLICY (weights one update newer than those that sampled the batch learn from it)"
)


def make_trainer(base: type, reward: RewardFunction, params: dict[str, Any], **kwargs: Any) -> Any:
    """``base(**kwargs)`` (TRL's GRPOTrainer), streaming verification into ``reward`` unless
    ``params['stream_verification']`` is false, pipelined when ``params['overlap_next_step']``.

    Raises ValueError naming the key when pipelining is asked for without streaming, or with
    more than one generation per optimizer step (``num_iterations`` > 1).
    """
    stream_on, overlap = params.get("stream_verification", True), params.get("overlap_next_step", False)
    if overlap and not stream_on:
        raise ValueError("grpo.overlap_next_step: needs stream_verification true")
    if overlap and params.get("num_iterations", 1) != 1:
        raise ValueError("grpo.overlap_next_step: needs num_iterations 1 (one generation per optimizer step)")
    if not stream_on:
        return base(**kwargs)
    if overlap:
        print(OFF_POLICY, flush=True)
    reward.stream = StreamGrader.for_reward(reward)
    return trainer_class(base)(stream=reward.stream, overlap_next_step=overlap, **kwargs)
