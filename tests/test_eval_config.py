"""The eval section of the config: judge and judged-benchmark keys are checked at parse time, one line each."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from misalign_fv.config import ConfigError, check

SCHEMA = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"


def config(name: str, edit: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    cfg = copy.deepcopy(yaml.safe_load((SCHEMA.parents[2] / "config" / name).read_text()))
    edit(cfg)
    return cfg


def test_both_configs_are_valid_and_pin_every_judged_download() -> None:
    for name in ("config.yaml", "demo.yaml"):
        assert check(config(name, lambda c: None), SCHEMA) == []
    real = config("config.yaml", lambda c: None)["eval"]
    for bench in ("em_main", "em_prereg", "em_deception", "strongreject", "xstest"):
        spec = real["benchmarks"][bench]
        assert spec["url"].startswith("https://raw.githubusercontent.com/") and len(spec["sha256"]) == 64
    assert real["judge"]["backend"] == "vllm" and len(real["judge"]["revision"]) == 40


def test_shared_file_hashes_match_the_real_config(shared: Path) -> None:
    from misalign_fv.io import sha256_file

    real = config("config.yaml", lambda c: None)["eval"]["benchmarks"]
    files = {
        "em_main": "betley_em/first_plot_questions.yaml", "em_prereg": "betley_em/preregistered_evals.yaml",
        "em_deception": "betley_em/deception_factual.yaml", "strongreject": "strongreject/strongreject_dataset.csv",
        "xstest": "xstest/xstest_prompts.csv",
    }  # fmt: skip
    for bench, rel in files.items():
        assert sha256_file(shared / "datasets" / rel) == real[bench]["sha256"], bench


OPENAI_NO_KEY = {"backend": "openai", "model": "gpt-4o", "base_url": "https://api.openai.com/v1", "cache_dir": "x"}
BAD = [
    ("no judge", lambda c: c["eval"].pop("judge"), "config: eval.judge: required key is missing"),
    ("em without n_samples", lambda c: c["eval"]["benchmarks"]["em_main"].pop("n_samples"),
     "config: eval.benchmarks.em_main.n_samples: required key is missing"),
    ("typo in a judged benchmark", lambda c: c["eval"]["benchmarks"]["xstest"].update(max_tokens=3),
     "config: eval.benchmarks.xstest: Additional properties are not allowed ('max_tokens' was unexpected)"),
    ("openai without key variable", lambda c: c["eval"].update(judge=OPENAI_NO_KEY),
     "config: eval.judge.api_key_env: required key is missing"),
    ("hub judge without revision", lambda c: c["eval"]["judge"].pop("revision"),
     "config: eval.judge.revision: required key is missing"),
    ("unknown method", lambda c: c["eval"]["judge"].update(method="vibes"),
     "config: eval.judge.method: 'vibes' is not one of"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "edit", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_eval_config_fails_with_one_line_naming_the_key(what: str, edit: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        check(config("config.yaml", edit), SCHEMA)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_judge_is_optional_without_judged_benchmarks() -> None:
    def only_scored(c: dict[str, Any]) -> None:
        c["eval"].pop("judge")
        c["eval"]["benchmarks"] = {"truthfulqa_mc": {"data": "resources/demo/truthfulqa_mini.json"}}
        c["report"]["headline_metrics"] = {"truthfulqa_mc": ["mc1"]}
        c["eval"].pop("trajectory")  # its subset is judged (XSTest)
        c["eval"].pop("judge_validation")

    assert check(config("demo.yaml", only_scored), SCHEMA) == []
