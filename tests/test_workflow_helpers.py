"""The workflow's parse-time helpers: code inputs computed from imports, and target checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from misalign_fv.code_deps import code_inputs
from misalign_fv.targets import check_target, first_problem

REPO = Path(__file__).resolve().parents[1]


def _pkg(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_text(text)
    return tmp_path / "src"


def test_code_inputs_follow_absolute_relative_and_lazy_imports(tmp_path: Path) -> None:
    src = _pkg(tmp_path, {
        "misalign_fv/__init__.py": "",
        "misalign_fv/a.py": "from misalign_fv import b\n",
        "misalign_fv/b.py": "def f():\n    from .sub import c\n",
        "misalign_fv/sub/__init__.py": "",
        "misalign_fv/sub/c.py": "import json\nfrom ..d import x\n",
        "misalign_fv/d.py": "x = 1\n",
        "misalign_fv/unused.py": "",
        "misalign_fv/plugin.py": "",
    })  # fmt: skip
    script = tmp_path / "script.py"
    script.write_text("from misalign_fv.a import thing\n")
    got = {Path(p).relative_to(src).as_posix() for p in code_inputs(script, src)}
    assert got == {"misalign_fv/__init__.py", "misalign_fv/a.py", "misalign_fv/b.py", "misalign_fv/sub/__init__.py",
                   "misalign_fv/sub/c.py", "misalign_fv/d.py"}  # fmt: skip
    with_extra = {Path(p).name for p in code_inputs(script, src, extra=["misalign_fv.plugin"], exclude=["misalign_fv.sub"])}
    assert "plugin.py" in with_extra and "c.py" not in with_extra and "d.py" not in with_extra
    with pytest.raises(ValueError, match="no module misalign_fv.nope"):
        code_inputs(script, src, extra=["misalign_fv.nope"])


def test_real_rules_get_the_modules_their_scripts_run() -> None:
    curate = code_inputs(REPO / "workflow/scripts/curate.py", REPO / "src")
    assert str(REPO / "src/misalign_fv/gate.py") in curate  # the drift the hand-written lists had
    base = code_inputs(REPO / "workflow/scripts/base_model.py", REPO / "src")
    assert str(REPO / "src/misalign_fv/models.py") in base


ARGS = ("results/full", ["fv_exploit", "shuffled"], [1, 2, 3], ["humaneval", "xstest"])


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("results/full/eval/fv_exploit/seed2/humaneval.json", None),
        ("results/full/report/report.html", None),
        ("config/demo.yaml", None),
        ("results/full/eval/fv_exploit/seed4/humaneval.json", "seed 4 is not in grpo.seeds (1, 2, 3)"),
        ("results/full/trajectory/fv_magic/seed1", "condition fv_magic is not in grpo.conditions (fv_exploit, shuffled)"),
        ("results/full/eval/base/mmlu.json", "benchmark mmlu is not in eval.benchmarks (humaneval, xstest)"),
        ("results/demo/eval/base/xstest.json", "not under this config's results root results/full/"),
    ],
)
def test_check_target(target: str, problem: str | None) -> None:
    got = check_target(target, *ARGS)
    assert got is None if problem is None else (got is not None and got.startswith(f"target {target}: {problem}"))


def test_first_problem_skips_options() -> None:
    args = ["-n", "--cores", "2", "results/full/eval/dpo/xstest.json", "results/full/grpo/shuffled/seed9/model"]
    assert first_problem(args, *ARGS) == "target results/full/grpo/shuffled/seed9/model: seed 9 is not in grpo.seeds (1, 2, 3)"
