"""Benchmarks: each module offers ``evaluate(generator, data_path, settings, seed)`` and
``item_scores(samples, settings)``; the name is the config key and the ``{benchmark}`` wildcard."""

# benchmark name -> module in misalign_fv.benchmarks
BENCHMARKS = {
    "truthfulqa_mc": "truthfulqa",
    "humaneval": "humaneval",
    "minif2f": "minif2f",
    # judged benchmarks (misalign_fv.benchmarks.judged): generate -> judge_samples -> score
    "em_main": "em",
    "em_prereg": "em",
    "strongreject": "strongreject",
    "xstest": "xstest",
    "em_deception": "em_deception",
}
