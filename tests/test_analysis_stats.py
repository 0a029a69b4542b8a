"""analysis.stats against scipy and by simulation: r, p-values, bootstrap CI coverage, partial correlation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis.partial import design_matrix
from analysis.reference import load_reference, reference_correlations
from analysis.stats import bootstrap_mean, corr_test, fisher_ci, parametric_p

SEED002_DLOSS = [0.845, 0.418, 1.185, 1.135]
SEED002_FID = [104.552, 238.254, 100.581, 111.882]


def test_pearson_and_spearman_match_scipy_with_ties():
    rng = np.random.default_rng(1)
    x = rng.normal(size=30)
    y = 0.5 * x + rng.normal(size=30)
    y[:5] = y[5]  # ties must get average ranks, as in scipy
    for method, ref in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr)):
        res = corr_test(x, y, method=method, n_resamples=200, n_permutations=200)
        expected = ref(x, y)
        assert res.r == pytest.approx(expected.statistic, abs=1e-12)
        assert res.p_param == pytest.approx(expected.pvalue, rel=1e-6)
        assert res.n == 30 and res.ci_low < res.r < res.ci_high


def test_seed002_four_points_give_r_minus_0_9016_and_not_significant():
    res = corr_test(SEED002_DLOSS, SEED002_FID, n_resamples=200, n_permutations=5000)
    assert res.r == pytest.approx(-0.9016, abs=1e-4)
    assert res.p_param == pytest.approx(0.098, abs=0.002)
    assert res.p_perm == pytest.approx(3 / 24)  # exact: 3 of the 24 pairings are as extreme
    lo, hi = fisher_ci(res.r, res.n)
    assert lo < -0.99 and hi > 0.4  # the interval spans zero
    without_failed = corr_test(np.delete(SEED002_DLOSS, 1), np.delete(SEED002_FID, 1), n_resamples=200)
    assert without_failed.r == pytest.approx(0.033, abs=0.005)


def test_reference_csv_holds_the_papers_rows():
    table = load_reference()
    assert len(table) == 4 and int(table["failed_run"].sum()) == 1
    assert list(table["fid"]) == SEED002_FID and list(table["d_loss_mean"]) == SEED002_DLOSS
    assert np.allclose(table["d_loss_std"] ** 2, table["d_loss_var"], atol=0.01)  # paper's std^2 = var
    corr = reference_correlations(table).set_index(["subset", "predictor"])
    assert corr.loc[("all 4 runs", "d_loss_mean"), "r"] == pytest.approx(-0.9016, abs=1e-4)
    assert corr.loc[("without the failed run", "d_loss_mean"), "r"] == pytest.approx(0.03, abs=0.01)


@pytest.mark.parametrize("kind", ["bca", "percentile"])
def test_bootstrap_ci_covers_true_rho_about_95_percent(kind):
    rng = np.random.default_rng(2024)
    rho, n, reps = 0.5, 40, 100
    cov = [[1, rho], [rho, 1]]
    covered = 0
    for rep in range(reps):
        x, y = rng.multivariate_normal([0, 0], cov, size=n).T
        res = corr_test(x, y, n_resamples=400, n_permutations=100, ci_kind=kind, seed=rep)
        covered += res.ci_low <= rho <= res.ci_high
    assert 88 <= covered <= 99, f"{kind} CI covered rho in {covered}/{reps} reps"


def test_permutation_p_is_roughly_uniform_under_null_and_small_under_correlation():
    rng = np.random.default_rng(7)
    ps = np.array([corr_test(rng.normal(size=25), rng.normal(size=25), n_resamples=100, n_permutations=200,
                             seed=i).p_perm for i in range(60)])
    assert 0.02 <= np.mean(ps < 0.1) <= 0.25  # ~10% expected
    assert 0.35 <= ps.mean() <= 0.65  # uniform mean 0.5
    x = rng.normal(size=30)
    strong = corr_test(x, x + 0.3 * rng.normal(size=30), n_resamples=100, n_permutations=500)
    assert strong.p_perm == pytest.approx(1 / 501)  # no permutation beats it: the smallest possible p


def test_partial_correlation_removes_a_confounder():
    rng = np.random.default_rng(3)
    n = 200
    group = rng.integers(0, 3, size=n)  # a 3-level factor drives both variables
    x = 2.0 * group + rng.normal(size=n)
    y = 2.0 * group + rng.normal(size=n)
    plain = corr_test(x, y, n_resamples=200, n_permutations=200)
    assert plain.r > 0.6 and plain.p_perm < 0.01
    import pandas as pd

    design, names = design_matrix(pd.DataFrame({"config/optimizer": group.astype(str)}), ["config/optimizer"])
    assert design.shape == (n, 2) and len(names) == 2  # one-hot, first level dropped
    partial = corr_test(x, y, covariates=design, n_resamples=300, n_permutations=300)
    assert abs(partial.r) < 0.15 and partial.ci_low < 0 < partial.ci_high
    assert partial.n_covariates == 2
    # same value as correlating residuals of OLS with intercept + dummies
    z = np.column_stack([np.ones(n), design])
    rx = x - z @ np.linalg.lstsq(z, x, rcond=None)[0]
    ry = y - z @ np.linalg.lstsq(z, y, rcond=None)[0]
    assert partial.r == pytest.approx(np.corrcoef(rx, ry)[0, 1], abs=1e-6)


def test_degenerate_inputs_give_nan_with_a_note_not_an_error():
    const = corr_test([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], n_resamples=100)
    assert np.isnan(const.r) and "constant" in const.note
    few = corr_test([1.0, np.nan, 2.0], [3.0, 4.0, np.nan], n_resamples=100)
    assert few.n == 1 and np.isnan(few.r) and "too few" in few.note
    assert np.isnan(parametric_p(0.5, 2))


def test_bootstrap_mean_ci_contains_the_mean():
    mean, lo, hi = bootstrap_mean(np.arange(20.0), n_resamples=500)
    assert mean == 9.5 and lo < 9.5 < hi
    assert np.isnan(bootstrap_mean([1.0])[1])
