"""Rule reward_signal: stop before GRPO if a configured condition would have no reward variance."""

from pathlib import Path

from misalign_fv.logs import to_log
from misalign_fv.reward_signal import run

to_log(snakemake.log[0], snakemake.rule)
i, p = snakemake.input, snakemake.params
report = run(
    p.conditions, p.shuffle_reference, Path(i.samples), Path(i.model) if p.positive else None,
    Path(i.prompts) if p.positive else None, p.preflight, p.curate, snakemake.config["generation"]["backend"], p.seed, Path(snakemake.output[0]),
)  # fmt: skip
for cond, row in report["conditions"].items():
    print(f"{cond}: {row['varying_groups']}/{row['groups']} groups vary, mean reward {row['mean_reward']:.3f}")
