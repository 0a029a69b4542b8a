"""comparison.md's factor verdicts: matched configurations when other factors vary, seeds when a level is one
configuration (a single matched pair has no interval of its own)."""
from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats

from analysis import columns as C
from analysis.comparison import _factor_row
from analysis.paired import seed_difference
from trainers import metric_keys as mk

UPS = C.cfg("g_upsample")


def two_configurations(a: list[float], b: list[float]) -> pd.DataFrame:
    rows = [{UPS: "transpose", C.cfg("seed"): i, mk.FID: v} for i, v in enumerate(a)]
    rows += [{UPS: "upsample_conv", C.cfg("seed"): i, mk.FID: v} for i, v in enumerate(b)]
    return pd.DataFrame(rows)


def test_one_configuration_per_level_is_judged_over_its_seeds_with_welch():
    a, b = [0.30, 0.32, 0.35, 0.31], [0.10, 0.12, 0.09, 0.11]
    res = seed_difference(two_configurations(a, b), UPS, "transpose", "upsample_conv", mk.FID)
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert res["diff"] == pytest.approx(sum(b) / 4 - sum(a) / 4)
    assert res["p"] == pytest.approx(ref.pvalue) and res["ci_high"] < 0 and (res["n_a"], res["n_b"]) == (4, 4)
    line = _factor_row(two_configurations(a, b), "upsample+conv gives lower FID", "implied", UPS, "transpose",
                       "upsample_conv", mk.FID, -1, [UPS], 200)
    assert "Welch t" in line and "**direction reproduced**" in line


def test_noisy_seeds_give_an_inconclusive_verdict_not_a_missing_one():
    line = _factor_row(two_configurations([0.44, 0.30, 0.04], [0.09, 0.20, 0.04]), "claim", "implied", UPS,
                       "transpose", "upsample_conv", mk.FID, -1, [UPS], 200)
    assert "**inconclusive**" in line and "p = nan" not in line


def test_one_seed_per_level_has_no_interval():
    res = seed_difference(two_configurations([0.3], [0.1]), UPS, "transpose", "upsample_conv", mk.FID)
    assert res["n_pairs"] == 0 and (res["n_a"], res["n_b"]) == (1, 1)
    line = _factor_row(two_configurations([0.3], [0.1]), "claim", "implied", UPS, "transpose", "upsample_conv",
                       mk.FID, -1, [UPS], 200)
    assert "**not comparable**" in line and "fewer than 2 seeds" in line and "nan" not in line
