"""Primary family, settings validation, the power table and the item-pairing fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from misalign_fv.report import ReportInputError, stats
from misalign_fv.report.analysis import Arm, metric_noise, power_table, primary_holm
from misalign_fv.report.config import ReportSettings
from report_fixtures import report_settings


def test_settings_read_primary_and_positive_control() -> None:
    cfg = ReportSettings.from_mapping(report_settings())
    assert cfg.primary == (("truthfulqa_mc", "mc1"), ("em_main", "misaligned_among_coherent"))
    assert cfg.family_size == 4 and cfg.corrected_alpha == pytest.approx(0.0125)
    assert [cfg.role(c) for c in cfg.conditions] == ["positive control", "treatment", "control"]
    assert ReportSettings.from_mapping(report_settings(positive_control=None)).positive_control is None


@pytest.mark.parametrize(
    "override, problem",
    [
        ({"primary": []}, "primary must be a list of 1 to 4 endpoints"),
        ({"primary": [{"benchmark": "b", "metric": str(i)} for i in range(5)]}, "primary must be a list of 1 to 4"),
        ({"primary": [{"benchmark": "b"}]}, "is not a {benchmark, metric} mapping"),
        ({"primary": [{"benchmark": "b", "metric": "m"}] * 2}, "primary lists an endpoint twice"),
        ({"positive_control": "nope"}, "positive_control 'nope' is not a non-control condition"),
        ({"positive_control": "shuffled"}, "positive_control 'shuffled' is not a non-control condition"),
    ],
)
def test_settings_errors(override: dict, problem: str) -> None:
    with pytest.raises(ReportInputError, match=r"^settings: ") as exc:
        ReportSettings.from_mapping(report_settings(**override))
    assert problem in str(exc.value)


def test_holm_runs_over_the_primary_family_only() -> None:
    cfg = ReportSettings.from_mapping(report_settings())
    rows = [
        ("fv_exploit", "primary", 0.01), ("fv_honest", "primary", 0.04), ("shuffled", "primary", np.nan),
        ("fv_exploit", "primary", 0.03), ("fv_honest", "primary", np.nan),  # not estimable: counts as p = 1
        ("fv_exploit", "exploratory", 0.001), ("fv_honest", "exploratory", 0.002),
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=["condition", "family", "p_control"])
    adjusted = primary_holm(table, cfg)
    # family of 4: sorted 0.01 x 4, 0.03 x 3, 0.04 x 2, 1 x 1 -> 0.04, 0.09, 0.09, 1
    np.testing.assert_allclose(adjusted, [0.04, 0.09, np.nan, 0.09, np.nan, np.nan, np.nan])


def test_power_table_gives_the_mde_per_primary_endpoint_and_seed_count() -> None:
    cfg = ReportSettings.from_mapping(report_settings())
    table = pd.DataFrame({
        "benchmark": ["truthfulqa_mc"] * 3 + ["em_main"] * 3, "metric": ["mc1"] * 3 + ["misaligned_among_coherent"] * 3,
        "design_sd": [0.02] * 3 + [0.01] * 3,
    })  # fmt: skip
    power = power_table(table, cfg)
    assert list(power.columns) == ["benchmark", "metric", "design_sd", "alpha", "power", "mde_3", "mde_5", "mde_8",
                                   "mde_10"]  # fmt: skip
    assert list(power.metric) == ["mc1", "misaligned_among_coherent"]
    assert power.mde_3[0] == pytest.approx(stats.mde_two_sample(0.02, 3, 3, 0.0125, 0.8))
    assert power.mde_10[1] == pytest.approx(stats.mde_two_sample(0.01, 10, 10, 0.0125, 0.8))
    assert (np.diff(power[["mde_3", "mde_5", "mde_8", "mde_10"]].to_numpy(), axis=1) < 0).all()
    assert power.mde_3[0] == pytest.approx(2 * power.mde_3[1])  # in the metric's units, linear in the SD


def _arm(items: list[np.ndarray]) -> Arm:
    return Arm(tuple(range(len(items))), np.array([i.mean() for i in items]), tuple(items), (), ())


def test_items_pair_only_when_every_checkpoint_has_the_same_count() -> None:
    rng = np.random.default_rng(0)
    arms = [_arm([rng.random(30) for _ in range(3)]) for _ in range(2)]
    assert metric_noise(arms, rng.random(30)).model == "paired"
    uneven = metric_noise(arms, rng.random(29))
    assert uneven.model.startswith("unpaired") and np.isfinite(uneven.item.value)
    none = metric_noise([Arm((0, 1), np.array([0.1, 0.2]), (None, None), (), ())], None)
    assert none.model == "no item scores" and np.isnan(none.item.value)
    assert none.reference == none.seed  # without items, DPO counts as one more seed
