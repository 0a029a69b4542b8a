"""Every p-value and interval the analysis reports, against an independent computation, on data with outliers.

Independent means: scipy.stats.permutation_test / bootstrap, or a few lines of numpy written here, never
the analysis' own helpers. Outliers make a rank statistic differ from its raw-value twin, so computing
Spearman's permutation p on raw values (a mutant that once survived) fails here.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from analysis.multiplicity import bh_qvalues
from analysis.ranktests import kruskal_permutation
from analysis.stats import bootstrap_mean, corr_test
from analysis.weighted import weighted_ranks

EXACT = 50_000  # >= 8! = 40,320: every arrangement is enumerated, so p-values must agree exactly
X8 = np.array([0.21, 0.43, 0.35, 0.80, 0.57, 0.12, 0.95, 6.00])  # one gross outlier
Y8 = np.array([1.10, 0.70, 1.50, 0.40, 0.90, 1.90, 0.30, 0.20])


def _r(x, y, axis=-1):
    """Pearson r along an axis, straight from the definition."""
    xm = x - x.mean(axis=axis, keepdims=True)
    ym = y - y.mean(axis=axis, keepdims=True)
    return (xm * ym).sum(axis=axis) / np.sqrt((xm**2).sum(axis=axis) * (ym**2).sum(axis=axis))


def _rank(v, axis=-1):
    return stats.rankdata(v, axis=axis)


def _scipy_perm_p(data, statistic, permutation_type="pairings") -> float:
    res = stats.permutation_test(data, statistic, permutation_type=permutation_type, n_resamples=np.inf,
                                 alternative="greater", vectorized=True)
    return float(res.pvalue)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_plain_permutation_p_equals_scipy_exactly_with_an_outlier(method):
    ours = corr_test(X8, Y8, method=method, n_resamples=100, n_permutations=EXACT)
    if method == "spearman":
        stat = lambda xp, axis=-1: np.abs(_r(_rank(xp, axis), _rank(Y8)))  # ranks of the permuted pairing
    else:
        stat = lambda xp, axis=-1: np.abs(_r(xp, Y8))
    assert ours.p_perm == pytest.approx(_scipy_perm_p((X8,), stat), abs=1e-12)
    reference = stats.spearmanr(X8, Y8) if method == "spearman" else stats.pearsonr(X8, Y8)
    assert ours.r == pytest.approx(reference.statistic, abs=1e-12)
    assert ours.p_param == pytest.approx(reference.pvalue, rel=1e-9)


def test_spearman_permutation_p_uses_ranks_not_raw_values():
    spearman = corr_test(X8, Y8, method="spearman", n_resamples=100, n_permutations=EXACT).p_perm
    raw = _scipy_perm_p((X8,), lambda xp, axis=-1: np.abs(_r(xp, Y8)))
    ranks = _scipy_perm_p((X8,), lambda xp, axis=-1: np.abs(_r(_rank(xp, axis), _rank(Y8))))
    assert raw != pytest.approx(ranks, abs=0.01)  # the outlier makes the two nulls differ
    assert spearman == pytest.approx(ranks, abs=1e-12)


def _design_8() -> np.ndarray:
    """A 3-level factor (2 dummies) and a numeric covariate with its own outlier."""
    level = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    return np.column_stack([level == 1, level == 2, [0.3, 1.2, 0.1, 0.7, 0.4, 0.9, 2.5, 0.6]]).astype(float)


def _residuals(v, z):
    """v - Z b by lstsq with an intercept (independent of the analysis' residual helpers)."""
    zi = np.column_stack([np.ones(z.shape[0]), z])
    coef = np.linalg.lstsq(zi, np.moveaxis(np.atleast_2d(v), -1, 0), rcond=None)[0]
    return np.squeeze(np.atleast_2d(v) - (zi @ coef).T)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_partial_permutation_p_is_freedman_lane_exactly(method):
    z = _design_8()
    ours = corr_test(X8, Y8, method=method, covariates=z, n_resamples=100, n_permutations=EXACT)
    ex, ey = _residuals(X8, z), _residuals(Y8, z)
    post = _rank if method == "spearman" else (lambda v, axis=-1: v)

    def freedman_lane(ey_perm, axis=-1):
        refit = _residuals(ey_perm, z).reshape(ey_perm.shape)  # permuted residuals fitted on z again
        return np.abs(_r(post(ex), post(refit, axis)))

    assert ours.r == pytest.approx(_r(post(ex), post(ey)), abs=1e-9)
    assert ours.p_perm == pytest.approx(_scipy_perm_p((ey,), freedman_lane), abs=1e-12)


def test_partial_t_test_counts_the_rank_of_the_controls_not_their_columns():
    rng = np.random.default_rng(4)
    n = 14
    z = rng.normal(size=(n, 2))
    z = np.column_stack([z, z[:, 0] + z[:, 1], 2 * z[:, 0]])  # 4 columns, rank 2
    x = z[:, 0] + rng.normal(size=n)
    y = 0.6 * x - z[:, 1] + rng.normal(size=n)
    y[3] += 8.0  # outlier
    ours = corr_test(x, y, covariates=z, n_resamples=100, n_permutations=200)
    assert ours.n_covariates == 4 and ours.control_rank == 2
    # Independent: t-test of x's coefficient in y ~ 1 + x + Z (full-rank columns), df = n - rank.
    full = np.column_stack([np.ones(n), x, z[:, :2]])
    coef, rss, rank, _ = np.linalg.lstsq(full, y, rcond=None)
    dof = n - rank
    se = np.sqrt(rss[0] / dof * np.linalg.inv(full.T @ full)[1, 1])
    assert ours.p_param == pytest.approx(2 * stats.t.sf(abs(coef[1] / se), dof), rel=1e-8)


def _clustered(sizes, seed=0):
    """Rows of configurations with the given numbers of seeds, shuffled so clusters are not contiguous."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    a, b = rng.normal(size=len(sizes)), rng.normal(size=len(sizes))
    x = a[labels] + 0.3 * rng.normal(size=len(labels))
    y = b[labels] + 0.3 * rng.normal(size=len(labels))
    y[np.flatnonzero(labels == 0)[0]] += 6.0  # an outlying seed
    order = rng.permutation(len(labels))
    return x[order], y[order], labels[order]


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_trial_level_permutation_moves_whole_configurations_like_scipy(method):
    x, y, labels = _clustered([2] * 6)  # 6! = 720 block arrangements
    ours = corr_test(x, y, method=method, clusters=labels, n_resamples=100, n_permutations=1000)
    xs, ys = (_rank(x), _rank(y)) if method == "spearman" else (x, y)
    ids = np.unique(labels)
    xb = np.stack([xs[labels == c] for c in ids])  # (configurations, seeds), seeds in row order
    yb = np.stack([ys[labels == c] for c in ids])
    stat = lambda perm, axis=-1: np.abs(_r(np.broadcast_to(xb.ravel(), perm.shape[:-1] + (xb.size,)),
                                          yb[perm].reshape(perm.shape[:-1] + (-1,))))
    assert ours.p_perm == pytest.approx(_scipy_perm_p((ids,), stat), abs=1e-12)
    assert ours.n_configs == 6 and ours.n == 12


def test_unequal_configurations_are_exchanged_only_with_equal_sized_ones():
    x, y, labels = _clustered([2, 2, 2, 3, 3])
    ours = corr_test(x, y, clusters=labels, n_resamples=100, n_permutations=1000)
    blocks = {c: (x[labels == c], y[labels == c]) for c in range(5)}
    observed, extreme, total = abs(_r(x, y)), 0, 0
    for perm in itertools.permutations(range(5)):  # keep the arrangements that map sizes onto sizes
        if any(len(blocks[c][0]) != len(blocks[p][0]) for c, p in enumerate(perm)):
            continue
        xs = np.concatenate([blocks[c][0] for c in range(5)])
        ys = np.concatenate([blocks[p][1] for p in perm])
        extreme += abs(_r(xs, ys)) >= observed - 1e-12
        total += 1
    assert total == 12 and ours.p_perm == pytest.approx(extreme / total, abs=1e-12)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
@pytest.mark.parametrize("kind", ["percentile", "bca"])
def test_bootstrap_ci_matches_scipy_bootstrap(method, kind):
    rng = np.random.default_rng(9)
    x = rng.normal(size=25)
    y = 0.5 * x + rng.normal(size=25)
    x[0], y[1] = 7.0, -6.0  # outliers
    ours = corr_test(x, y, method=method, n_resamples=8000, n_permutations=100, ci_kind=kind, seed=1)
    post = _rank if method == "spearman" else (lambda v, axis=-1: v)
    res = stats.bootstrap((x, y), lambda a, b, axis=-1: _r(post(a, axis), post(b, axis)), paired=True,
                          vectorized=True, n_resamples=8000, method="BCa" if kind == "bca" else "percentile",
                          random_state=np.random.default_rng(2))
    assert ours.ci_kind == kind
    assert ours.ci_low == pytest.approx(res.confidence_interval.low, abs=0.03)
    assert ours.ci_high == pytest.approx(res.confidence_interval.high, abs=0.03)


def _scipy_cluster_ci(labels, statistic_of_rows, kind: str, n: int = 4000):
    """scipy.stats.bootstrap over configuration ids: a resample stacks the rows of the drawn configurations."""
    ids = np.unique(labels)
    rows = {c: np.flatnonzero(labels == c) for c in ids}
    stat = lambda drawn: statistic_of_rows(np.concatenate([rows[c] for c in drawn]))
    res = stats.bootstrap((ids,), stat, vectorized=False, n_resamples=n, method=kind,
                          random_state=np.random.default_rng(3))
    return res.confidence_interval


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_cluster_bootstrap_ci_matches_scipy_over_configurations(method):
    x, y, labels = _clustered([3] * 12, seed=5)
    ours = corr_test(x, y, method=method, clusters=labels, n_resamples=4000, n_permutations=100, seed=4)
    post = _rank if method == "spearman" else (lambda v, axis=-1: v)
    ci = _scipy_cluster_ci(labels, lambda idx: _r(post(x[idx]), post(y[idx])), "BCa")
    assert ours.ci_kind == "bca"
    assert ours.ci_low == pytest.approx(ci.low, abs=0.04) and ours.ci_high == pytest.approx(ci.high, abs=0.04)


def test_partial_cluster_bootstrap_ci_matches_scipy():
    x, y, labels = _clustered([3] * 12, seed=6)
    factor = (labels % 3).astype(float)  # a configuration-level factor, constant within configurations
    z = np.column_stack([factor == 1, factor == 2]).astype(float)
    y = y + factor
    x = x + factor
    ours = corr_test(x, y, covariates=z, clusters=labels, n_resamples=4000, n_permutations=100,
                     ci_kind="percentile", seed=8)
    ci = _scipy_cluster_ci(labels, lambda idx: _r(_residuals(x[idx], z[idx]), _residuals(y[idx], z[idx])),
                           "percentile")
    assert ours.ci_low == pytest.approx(ci.low, abs=0.04) and ours.ci_high == pytest.approx(ci.high, abs=0.04)


def test_cluster_bootstrap_mean_matches_scipy():
    _, y, labels = _clustered([2, 3, 3, 2, 4, 3, 3, 2], seed=7)
    mean, lo, hi = bootstrap_mean(y, clusters=labels, n_resamples=6000, seed=2)
    ci = _scipy_cluster_ci(labels, lambda idx: y[idx].mean(), "percentile", n=6000)
    assert mean == pytest.approx(y.mean())
    assert lo == pytest.approx(ci.low, abs=0.06) and hi == pytest.approx(ci.high, abs=0.06)


def test_kruskal_wallis_permutation_p_equals_scipy_exactly():
    samples = [np.array([101.0, 97.0, 240.0]), np.array([88.0, 92.0, 90.5]), np.array([110.0, 99.0])]
    h, p = kruskal_permutation(samples, n_permutations=EXACT)
    assert h == pytest.approx(stats.kruskal(*samples).statistic)
    reference = stats.permutation_test(samples, lambda *s: stats.kruskal(*s).statistic,
                                       permutation_type="independent", n_resamples=np.inf, alternative="greater")
    assert p == pytest.approx(reference.pvalue, abs=1e-12)


def test_weighted_ranks_equal_ranks_of_the_stacked_resample():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 5, size=(40, 12)).astype(float)  # many ties
    weights = rng.integers(0, 3, size=(40, 12)).astype(float)
    ranks = weighted_ranks(values, weights)
    for v, w, r in zip(values, weights, ranks):
        stacked = np.repeat(v, w.astype(int))
        stacked_ranks = stats.rankdata(stacked)
        for i in np.flatnonzero(w > 0):
            assert r[i] == pytest.approx(stacked_ranks[np.flatnonzero(stacked == v[i])[0]])


def test_benjamini_hochberg_q_values_by_hand_and_scipy():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan, 0.5])
    # sorted finite p: 0.005 0.01 0.03 0.04 0.5 (m = 5); p*m/rank: .025 .025 .05 .05 .5; running min from the top
    expected = np.array([0.025, 0.05, 0.05, 0.025, np.nan, 0.5])
    np.testing.assert_allclose(bh_qvalues(p), expected, rtol=1e-12)
    finite = p[np.isfinite(p)]
    np.testing.assert_allclose(bh_qvalues(finite), stats.false_discovery_control(finite), rtol=1e-12)
    assert np.isnan(bh_qvalues([np.nan])).all() and bh_qvalues([]).shape == (0,)
