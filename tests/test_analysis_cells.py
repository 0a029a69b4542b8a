"""Within design cells, the collapse rule and the verdict rules, each against an independent computation
or a constructed case whose answer is known."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import columns as C
from analysis.cells import between_share, design_cells, leave_one_cell_out
from analysis.collapse import clopper_pearson, collapse_by_factor, collapse_flags, collapse_table
from analysis.correlation import signal_correlations
from analysis.family import drop_duplicate_tests
from analysis.verdicts import CONSISTENT, CONTRADICTED, DIFFERS, INCONCLUSIVE, NOT_COMPARABLE, REPRODUCED, verdict
from trainers import metric_keys as mk

OPT, ACT, TTUR, BATCH = (C.cfg(k) for k in ("optimizer", "g_activation", "ttur", "batch_size"))
FACTORS = [OPT, ACT, TTUR, BATCH]


def factorial(rng: np.random.Generator, *, seeds: int = 3, within: float = 0.0) -> pd.DataFrame:
    """Seed 002's 2x2x2x2 design. The optimizer x activation cell sets most of the D loss and of log FID
    (a between-cell association); `within` adds a within-cell link between them for every configuration."""
    rows = []
    for i, (opt, act, ttur, batch) in enumerate(itertools.product(("adam", "adas"), ("relu", "elu"), (False, True),
                                                                   (64, 128))):
        cell = {("adam", "elu"): (0.1, 4.5), ("adam", "relu"): (0.6, 1.0), ("adas", "elu"): (1.1, 2.0),
                ("adas", "relu"): (1.3, 0.3)}[(opt, act)]
        u = rng.normal()  # the configuration's own deviation inside its cell
        d = cell[0] + 0.1 * u
        logf = cell[1] - within * u + 0.2 * rng.normal()
        for s in range(seeds):
            rows.append({OPT: opt, ACT: act, TTUR: ttur, BATCH: batch, C.SEED: s, C.LOSS: "bce",
                         C.TRIAL_KEY: f"c{i}s{s}", "trial_id": f"c{i}s{s}",
                         mk.D_LOSS_MEAN: d + 0.02 * rng.normal(), mk.FID: math.exp(logf + 0.05 * rng.normal()),
                         mk.STATUS: mk.STATUS_FINISHED})
    out = pd.DataFrame(rows)
    out[C.LOG_FID] = np.log(out[mk.FID])
    return out


def _config_means(t: pd.DataFrame) -> pd.DataFrame:
    return t.groupby(FACTORS, as_index=False)[[mk.D_LOSS_MEAN, C.LOG_FID]].mean()


def test_saturated_crossing_falls_back_to_the_factors_that_explain_the_predictor():
    conf = _config_means(factorial(np.random.default_rng(0)))
    cells = design_cells(conf, FACTORS, mk.D_LOSS_MEAN)
    assert sorted(cells.columns) == sorted([OPT, ACT]) and cells.n_cells == 4 and cells.r2 > 0.9
    assert "saturated" in cells.rule
    # With two seeds per configuration at trial level the cells are the 16 configurations.
    trial = design_cells(factorial(np.random.default_rng(0)), FACTORS, mk.D_LOSS_MEAN, level="trial")
    assert trial.n_cells == 16 and trial.columns == []


@pytest.mark.parametrize("within", [0.0, 0.8])
def test_within_cell_partial_r_equals_an_independent_regression(within):
    t = factorial(np.random.default_rng(1), within=within)
    res = signal_correlations(t, targets=[C.LOG_FID], predictors=[mk.D_LOSS_MEAN], methods=["pearson"],
                              levels=("config",), factors=FACTORS, n_resamples=200, n_permutations=400)
    row = res.loc[res.control_kind == "cells"].iloc[0]
    conf = _config_means(t)
    # Independent: OLS of log FID on D-loss mean plus one intercept per optimizer x activation cell; the
    # partial r is t / sqrt(t^2 + df), df = n - cells - 1.
    cell = pd.get_dummies(conf[OPT] + conf[ACT], dtype=float).to_numpy()
    X = np.column_stack([conf[mk.D_LOSS_MEAN], cell])
    y = conf[C.LOG_FID].to_numpy()
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    df = len(y) - X.shape[1]
    se = math.sqrt(resid @ resid / df * np.linalg.inv(X.T @ X)[0, 0])
    tval = beta[0] / se
    assert row["r"] == pytest.approx(tval / math.sqrt(tval**2 + df), abs=1e-9)
    assert row["p_param"] == pytest.approx(2 * stats.t.sf(abs(tval), df), rel=1e-6)
    plain = res.loc[res.control_kind == ""].iloc[0]
    assert plain["r"] < -0.6  # the between-cell association is strong either way
    if within == 0.0:
        assert row["p_perm"] > 0.05 and row["between_share"] > 0.9
    else:
        assert row["r"] < -0.5 and row["p_perm"] < 0.05


def test_leave_one_cell_out_names_the_cell_that_carries_the_association():
    x = np.array([0, 0.1, 0.2, 5, 5.1, 5.2, 1, 1.1, 1.2])
    y = np.array([0, 0.3, 0.1, 9, 9.2, 9.1, 0.2, 0.1, 0.3])
    labels = np.array(["a"] * 3 + ["far"] * 3 + ["b"] * 3)
    loco = leave_one_cell_out(x, y, labels)
    assert loco["loco_min_cell"] == "far" and loco["loco_min"] < loco["loco_max"]
    assert between_share(x, y, labels) > 0.95
    assert between_share(x, y, np.arange(9).astype(str)) == pytest.approx(1.0)  # every point its own cell
    assert between_share(x, y, np.zeros(9).astype(str)) == pytest.approx(0.0)  # one cell: all within


def test_collapse_rule_flags_runs_above_k_times_the_median_configuration():
    t = factorial(np.random.default_rng(2))
    t[mk.FID] = np.random.default_rng(3).uniform(3.0, 8.0, len(t))
    t.loc[[0, 1, 5], mk.FID] = [400.0, 300.0, 900.0]  # three collapsed seeds, two in one configuration
    flags, threshold = collapse_flags(t, {"rule": "fid_ratio", "k": 10})
    med = t.assign(c=t[C.TRIAL_KEY].str.split("s").str[0]).groupby("c")[mk.FID].median().median()
    assert threshold == pytest.approx(10 * med)
    assert set(np.flatnonzero(flags.astype(bool).to_numpy())) == {0, 1, 5}
    table = collapse_table(t, flags, FACTORS)
    assert table["collapsed"].sum() == 3 and table["runs"].sum() == 48 and table["rate"].max() == pytest.approx(2 / 3)
    by = collapse_by_factor(t, flags, FACTORS, n_resamples=200)
    # The rate is over configurations (2 of 16 have a collapsed seed), exact Clopper-Pearson; the run share beside it.
    assert by.iloc[0]["rate"] == pytest.approx(2 / 16) and by.iloc[0]["run_share"] == pytest.approx(3 / 48)
    assert by.iloc[0]["ci_low"] <= 2 / 16 <= by.iloc[0]["ci_high"] and by.iloc[0]["ci_low"] > 0
    diverged = t.assign(**{mk.STATUS: np.where(np.arange(48) == 7, mk.STATUS_DIVERGED, mk.STATUS_FINISHED)})
    assert list(np.flatnonzero(collapse_flags(diverged, {"rule": "diverged"})[0].astype(bool))) == [7]


def test_clopper_pearson_matches_the_beta_quantiles():
    lo, hi = clopper_pearson(2, 3)
    assert lo == pytest.approx(stats.beta.ppf(0.025, 2, 2)) and hi == pytest.approx(stats.beta.ppf(0.975, 3, 1))
    assert clopper_pearson(0, 3)[0] == 0.0 and clopper_pearson(3, 3)[1] == 1.0


@pytest.mark.parametrize("lo, hi, q, paper, expected", [
    (-0.8, -0.3, 0.01, math.nan, REPRODUCED),
    (-0.8, -0.3, 0.01, -0.9, DIFFERS),  # the CI misses the paper's -0.90
    (-0.95, -0.3, 0.01, -0.9, CONSISTENT),
    (-0.8, -0.3, 0.061, -0.9, INCONCLUSIVE),  # excludes 0, but q > alpha: never 'reproduced'
    (-0.2, 0.4, 0.5, -0.9, INCONCLUSIVE),
    (0.2, 0.6, 0.01, -0.9, CONTRADICTED),
    (math.nan, math.nan, 0.01, -0.9, NOT_COMPARABLE),
])
def test_verdicts_judge_direction_and_magnitude_apart(lo, hi, q, paper, expected):
    assert verdict(lo, hi, -1, q=q, paper=paper)[0] == expected


def test_a_sensitivity_test_identical_to_another_leaves_the_family():
    family = pd.DataFrame({"section": ["s"] * 3, "test": ["primary", "diverged included", "other"],
                           "group": ["g"] * 3, "n": [16] * 3, "n_configs": [16] * 3, "statistic": ["r"] * 3,
                           "value": [-0.645, -0.645, -0.5], "p": [0.0005, 0.0005, 0.0005]})
    kept, dropped = drop_duplicate_tests(family)
    assert list(kept["test"]) == ["primary", "other"]
    assert dropped == ["diverged included (s) is identical to primary (s)"]
