"""The benchmark registry: every benchmark's name (the config key and the ``{benchmark}``
wildcard) and its facts, in one place.

A scored benchmark's module offers ``evaluate(generator, data_path, settings, seed)`` and
``item_scores(samples, settings)``; a judged one's offers ``generate`` -> ``judge_samples`` ->
``score`` (see :mod:`misalign_fv.benchmarks.judged`). Everything else (evaluation, the rules, the
report) asks the registry, never a list of names of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's facts.

    ``module``: its module in :mod:`misalign_fv.benchmarks`; ``judged``: an LLM judge scores it;
    ``sandboxed``: it runs model-written code (its JSON records the isolation level);
    ``em``: Betley et al.'s EM questions (per-answer aligned and coherent scores);
    ``judge_free``: prefixes of its metrics that need no judge (a judge flag leaves them alone).
    """

    module: str
    judged: bool = False
    sandboxed: bool = False
    em: bool = False
    judge_free: tuple[str, ...] = ()


REGISTRY: dict[str, Benchmark] = {
    "truthfulqa_mc": Benchmark("truthfulqa"),
    "humaneval": Benchmark("humaneval", sandboxed=True),
    "minif2f": Benchmark("minif2f", sandboxed=True),
    "em_main": Benchmark("em", judged=True, em=True),
    "em_prereg": Benchmark("em", judged=True, em=True),
    "strongreject": Benchmark("strongreject", judged=True),
    "xstest": Benchmark("xstest", judged=True, judge_free=("strmatch_",)),
    "em_deception": Benchmark("em_deception", judged=True),
}

BENCHMARKS = {name: b.module for name, b in REGISTRY.items()}  # name -> module
JUDGED_BENCHMARKS = frozenset(name for name, b in REGISTRY.items() if b.judged)
SANDBOXED_BENCHMARKS = frozenset(name for name, b in REGISTRY.items() if b.sandboxed)
EM_BENCHMARKS = tuple(name for name, b in REGISTRY.items() if b.em)
JUDGE_FREE_PREFIXES = {name: b.judge_free for name, b in REGISTRY.items() if b.judge_free}
