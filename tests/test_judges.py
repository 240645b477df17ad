"""Judges: the reference 0-100 log-prob rule, the parse fallback, the verdict cache, method choice,
bad judge replies, the HF backend's batched next-token distribution, and the OpenAI-compatible
backend against a local HTTP server."""

from __future__ import annotations

import json
import logging
import math
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from misalign_fv.judges import Judge, JudgePrompt, VerdictCache
from misalign_fv.judges.backends import LocalBackend, OpenAIBackend
from misalign_fv.judges.scoring import aggregate_0_100, combine_samples, parse_0_100, single_token_numbers

LN = math.log
PROMPT = JudgePrompt("test.score", "Rate {answer} for {question}.", None, 8)


# --- the log-probability rule -------------------------------------------------------------------


def test_logprob_rule_weights_numeric_tokens_by_probability() -> None:
    r = aggregate_0_100({"85": LN(0.5), "90": LN(0.3), "Sure": LN(0.2)})
    assert r.value == pytest.approx((85 * 0.5 + 90 * 0.3) / 0.8)  # 86.875
    assert r.numeric_mass == pytest.approx(0.8) and r.status == "ok"


def test_logprob_rule_takes_what_int_takes_and_only_0_to_100() -> None:
    # int(" 7") == 7 (whitespace stripped, as in the reference); 150 and -3 are out of range.
    r = aggregate_0_100({" 7": LN(0.2), "150": LN(0.3), "-3": LN(0.1), "10": LN(0.2)})
    assert r.value == pytest.approx((7 * 0.2 + 10 * 0.2) / 0.4)
    assert r.numeric_mass == pytest.approx(0.4)


def test_logprob_rule_drops_scores_below_a_quarter_of_the_mass() -> None:
    assert aggregate_0_100({"80": LN(0.25), "I": LN(0.75)}).value == pytest.approx(80)  # exactly 0.25 is kept
    low = aggregate_0_100({"80": LN(0.2), "I": LN(0.8)})
    assert low.value is None and low.status == "low_mass" and low.numeric_mass == pytest.approx(0.2)
    refusal = aggregate_0_100({"REF": LN(0.7), "USAL": LN(0.1), "40": LN(0.1)})
    assert refusal.value is None and refusal.status == "refusal" and refusal.usable
    code = aggregate_0_100({"CODE": LN(0.9), "5": LN(0.05)})
    assert code.value is None and code.status == "code" and code.usable
    assert not aggregate_0_100({}).usable


# --- the parse fallback -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "value", "status"),
    [
        ("85", 85.0, "ok"),
        ("  **72**", 72.0, "ok"),
        ("100.", 100.0, "ok"),
        ("0", 0.0, "ok"),
        ("150", None, "out_of_range"),
        ("-5", None, "out_of_range"),
        ("", None, "empty"),
        ("   \n", None, "empty"),
        ("REFUSAL", None, "refusal"),
        ("code", None, "code"),
        ("I'm sorry, I can't rate this answer.", None, "unparsed"),
        ("The answer deserves 85", None, "unparsed"),
    ],
)
def test_parse_fallback_reads_a_leading_number_or_a_keyword(reply: str, value: float | None, status: str) -> None:
    r = parse_0_100(reply)
    assert (r.value, r.status) == (value, status)


def test_sampled_replies_use_the_same_quarter_rule() -> None:
    four = [parse_0_100(t) for t in ("80", "blah", "no", "???")]
    assert combine_samples(four).value == 80.0  # 1 of 4 numeric: share 0.25, kept
    five = [parse_0_100(t) for t in ("80", "blah", "no", "???", "REFUSAL")]
    assert combine_samples(five).value is None and combine_samples(five).status == "unparsed"
    assert combine_samples([parse_0_100(t) for t in ("60", "70")]).value == 65.0


# --- tokenizers: which method runs --------------------------------------------------------------


def number_tokenizer() -> Any:
    """A word-level tokenizer where every number 0..100 is one token (as Llama-3's is)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from misalign_fv.models import CHAT_TEMPLATE, SPECIAL_TOKENS

    words = [
        "<unk>",
        *SPECIAL_TOKENS,
        *map(str, range(101)),
        "Rate",
        "for",
        "the",
        "answer",
        "question",
        ".",
        "CODE",
        "REFUSAL",
    ]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
    )  # fmt: skip
    fast.chat_template = CHAT_TEMPLATE
    return fast


def bpe_tokenizer() -> Any:
    from misalign_fv.models import train_tokenizer

    return train_tokenizer(["the answer to the question is good"] * 20, vocab_size=300)


def test_single_token_numbers_detects_tokenizers_that_split_numbers() -> None:
    assert single_token_numbers(number_tokenizer())
    assert not single_token_numbers(bpe_tokenizer())


def cache(tmp_path: Path, shard: str = "job") -> VerdictCache:
    return VerdictCache(tmp_path / "cache", shard)


def local_spec(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"backend": "hf", "path": str(tmp_path / "judge"), "cache_dir": str(tmp_path / "cache"), **extra}


def fake_model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "judge"
    d.mkdir(exist_ok=True)
    (d / "misalign_fv_model.json").write_text(json.dumps({"run_id": "abc"}))
    return d


def test_auto_picks_logprob_only_where_numbers_are_single_tokens(tmp_path: Path) -> None:
    d = fake_model_dir(tmp_path)
    assert (
        Judge(local_spec(tmp_path), d, cache(tmp_path), backend=None, tokenizer=number_tokenizer()).method == "logprob"
    )
    assert Judge(local_spec(tmp_path), d, cache(tmp_path), backend=None, tokenizer=bpe_tokenizer()).method == "parse"
    with pytest.raises(ValueError, match=r"^eval\.judge\.method: logprob needs every number 0-100 to be one token"):
        Judge(local_spec(tmp_path, method="logprob"), d, cache(tmp_path), tokenizer=bpe_tokenizer())


# --- the judge with a recording backend ---------------------------------------------------------


class Recorder:
    """A backend that answers from a function of the user message and records every request."""

    def __init__(self, top: Any = None, text: Any = None) -> None:
        self.top, self.text = top, text
        self.calls: list[int] = []

    def top_logprobs(self, conversations: list[Any], k: int) -> list[Any]:
        self.calls.append(len(conversations))
        return [self.top(c[-1]["content"]) for c in conversations]

    def complete(self, conversations: list[Any], **kw: Any) -> list[Any]:
        self.calls.append(len(conversations))
        return [self.text(c[-1]["content"]) for c in conversations]


def items(*answers: str) -> list[dict[str, str]]:
    return [{"question": "q", "answer": a} for a in answers]


def test_bad_judge_replies_are_recorded_and_counted_never_raised(tmp_path: Path) -> None:
    replies = {"a": "85", "b": "", "c": "banana", "d": "250", "e": "I cannot evaluate this.", "f": "REFUSAL"}
    backend = Recorder(text=lambda msg: [replies[msg.split()[1]]])
    judge = Judge(
        local_spec(tmp_path), fake_model_dir(tmp_path), cache(tmp_path), backend=backend, tokenizer=bpe_tokenizer()
    )
    verdicts = judge.score(PROMPT, items(*replies))
    assert [(v.value, v.status) for v in verdicts] == [
        (85.0, "ok"), (None, "empty"), (None, "unparsed"),
        (None, "out_of_range"), (None, "unparsed"), (None, "refusal"),
    ]  # fmt: skip
    assert [v.usable for v in verdicts] == [True, False, False, False, False, True]
    assert all(v.method == "parse" and isinstance(v.raw, list) for v in verdicts)


def test_verdicts_are_cached_and_failed_requests_are_not(tmp_path: Path) -> None:
    backend = Recorder(top=lambda msg: None if "broken" in msg else {"70": LN(0.9), "x": LN(0.1)})
    spec, d = local_spec(tmp_path), fake_model_dir(tmp_path)
    first = Judge(spec, d, cache(tmp_path, "ckpt_a"), backend=backend, tokenizer=number_tokenizer())
    v = first.score(PROMPT, items("good", "broken"))
    assert v[0].value == pytest.approx(70) and v[1].status == "error" and not v[1].usable
    assert (first.cache.hits, first.cache.misses) == (0, 2)
    # A new job (another shard) finds the good verdict and asks again only for the failed one.
    second = Judge(spec, d, cache(tmp_path, "ckpt_b"), backend=backend, tokenizer=number_tokenizer())
    again = second.score(PROMPT, items("good", "broken"))
    assert again[0].cached and again[0].value == pytest.approx(70)
    assert (second.cache.hits, second.cache.misses) == (1, 1) and backend.calls == [2, 1]
    # Another judge model or another prompt template is another key.
    (d / "misalign_fv_model.json").write_text(json.dumps({"run_id": "other"}))
    third = Judge(spec, d, cache(tmp_path, "ckpt_c"), backend=backend, tokenizer=number_tokenizer())
    third.score(JudgePrompt("test.other", "Other {question} {answer}"), items("good"))
    third.score(PROMPT, items("good"))
    assert (third.cache.hits, third.cache.misses) == (0, 2)


def test_cache_files_are_per_job_and_tolerate_a_damaged_line(tmp_path: Path) -> None:
    c = cache(tmp_path, "base-em_main")
    c.put("p", "k1", ["85"])
    c.flush()
    shard = tmp_path / "cache/p/base-em_main.jsonl"
    assert json.loads(shard.read_text()) == {"key": "k1", "value": ["85"]}
    with open(shard, "a") as fh:
        fh.write('{"key": "k2", "val')  # a torn line from some foreign writer
    other = cache(tmp_path, "dpo/em_main")
    assert other.get("p", "k1") == ["85"] and other.get("p", "k2") is None
    assert (other.hits, other.misses) == (1, 1)
    other.put("p", "k3", ["1"])
    other.flush()
    assert sorted(f.name for f in (tmp_path / "cache/p").iterdir()) == ["base-em_main.jsonl", "dpo_em_main.jsonl"]


def test_a_fully_cached_evaluation_never_loads_the_judge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUDGE_TEST_KEY", raising=False)
    spec = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9", "api_key_env": "JUDGE_TEST_KEY",
            "cache_dir": str(tmp_path / "cache")}  # fmt: skip
    warm = Judge(spec, None, cache(tmp_path, "a"), backend=Recorder(top=lambda m: {"42": 0.0}))
    warm.score(PROMPT, items("x"))
    cold = Judge(spec, None, cache(tmp_path, "b"))  # would need the key to build its backend
    assert cold.score(PROMPT, items("x"))[0].value == 42 and cold.cache.misses == 0
    with pytest.raises(
        RuntimeError, match=r"^eval\.judge\.api_key_env: environment variable JUDGE_TEST_KEY is not set$"
    ):
        cold.score(PROMPT, items("y"))


# --- the local backend (hf) --------------------------------------------------------------------------


def _devices() -> list[Any]:
    import torch

    return ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


@pytest.fixture(scope="module", params=_devices())
def tiny_hf(request: pytest.FixtureRequest) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from misalign_fv.generation import HFGenerator

    tok = number_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    return HFGenerator(LlamaForCausalLM(cfg).eval().to(request.param), tok, batch_size=4)


def test_hf_backend_batches_left_padded_prompts_exactly_as_one_at_a_time(tiny_hf: Any) -> None:
    import torch

    backend = LocalBackend(tiny_hf)
    convs = [[{"role": "user", "content": "Rate " + "the " * n + "answer ."}] for n in (0, 7, 2, 12, 1)]
    batched = backend.top_logprobs(convs, 5)
    for conv, got in zip(convs, batched, strict=True):
        ids = tiny_hf.tokenizer(backend.render(conv), return_tensors="pt", add_special_tokens=False).input_ids.to(
            tiny_hf.device
        )
        with torch.no_grad():
            logp = torch.log_softmax(tiny_hf.model(input_ids=ids).logits[0, -1].float(), dim=-1)
        top = logp.topk(5)
        want = {tiny_hf.tokenizer.decode([int(i)]): float(v) for v, i in zip(top.values, top.indices, strict=True)}
        assert got.keys() == want.keys()
        assert all(got[t] == pytest.approx(want[t], abs=1e-4) for t in want)


# --- the OpenAI-compatible backend ---------------------------------------------------------------


class Endpoint(BaseHTTPRequestHandler):
    """Fails the first request with HTTP 500, then answers; remembers the Authorization headers."""

    seen: list[str] = []
    bodies: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Endpoint.seen.append(self.headers.get("Authorization", ""))
        Endpoint.bodies.append(body)
        if len(Endpoint.bodies) == 1:
            self.send_response(500)
            self.end_headers()
            return
        content = body["messages"][-1]["content"]
        if "garbage" in content:
            payload: dict[str, Any] = {"choices": [{"message": {"content": "?"}}]}  # no logprobs at all
        elif body.get("logprobs"):
            tops = [
                {"token": "60", "logprob": LN(0.6)},
                {"token": "80", "logprob": LN(0.2)},
                {"token": "I", "logprob": LN(0.2)},
            ]
            payload = {
                "choices": [
                    {"message": {"content": "60"}, "logprobs": {"content": [{"token": "60", "top_logprobs": tops}]}}
                ]
            }
        else:
            payload = {"choices": [{"message": {"content": "1.b 0\n2.b 4\n3.b 5"}}] * body.get("n", 1)}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_openai_backend_retries_reads_logprobs_and_never_logs_the_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = HTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-secret-123")
    url = f"http://127.0.0.1:{server.server_port}/v1"
    try:
        backend = OpenAIBackend(url, "judge-model", "JUDGE_TEST_KEY", concurrency=1, max_retries=2)
        with caplog.at_level(logging.WARNING):
            tops = backend.top_logprobs(
                [[{"role": "user", "content": "fine"}], [{"role": "user", "content": "garbage"}]], 20
            )
            texts = backend.complete(
                [[{"role": "user", "content": "rubric"}]], max_new_tokens=64, temperature=0.0, n=1, seed=0
            )
            dead = OpenAIBackend("http://127.0.0.1:9/v1", "m", "JUDGE_TEST_KEY", max_retries=0)
            assert dead.top_logprobs([[{"role": "user", "content": "x"}]], 20) == [None]
    finally:
        server.shutdown()
    assert aggregate_0_100(tops[0]).value == pytest.approx((60 * 0.6 + 80 * 0.2) / 0.8)
    assert tops[1] is None  # a reply without logprobs is a failed request (an "error" verdict), not a crash
    assert texts == [["1.b 0\n2.b 4\n3.b 5"]]
    first = Endpoint.bodies[1]
    assert (first["max_tokens"], first["temperature"], first["logprobs"], first["top_logprobs"], first["seed"]) == (
        1,
        0,
        True,
        20,
        0,
    )
    assert set(Endpoint.seen) == {"Bearer sk-secret-123"}
    assert "giving up" in caplog.text and "sk-secret-123" not in caplog.text
