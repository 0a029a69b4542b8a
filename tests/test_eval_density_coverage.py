"""Density and coverage (Naeem et al. 2020, k = 5): the paper's formulas on a hand-worked case, the authors'
`prdc` package where installed, and the properties the metrics exist for."""
from __future__ import annotations

import math

import numpy as np
import pytest

from trainers import metric_keys as K
from trainers.evaluation import defaults as D
from trainers.evaluation.evaluator import feature_metrics
from trainers.evaluation.prc import density_coverage, precision_recall


def _gauss(n, d, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(shift, 1.0, (n, d))


def test_hand_worked_case_follows_the_papers_formulas():
    """Reals 0..6 on a line, k = 2: 2-NN radii (2, 1, 1, 1, 1, 1, 2). Fake 0.5 lies strictly inside the balls of
    reals 0 and 1, fake 6 inside real 6's only (real 5's radius 1 is not < 1), fake 10 inside none:
    density = (2 + 1 + 0) / (k M) = 3 / 6, coverage = reals 0, 1, 6 of 7."""
    real = np.arange(7.0)[:, None]
    fake = np.array([[0.5], [6.0], [10.0]])
    density, coverage = density_coverage(real, fake, k=2)
    assert density == pytest.approx(0.5) and coverage == pytest.approx(3 / 7)


def test_matches_the_authors_prdc_package():
    prdc = pytest.importorskip("prdc")  # pip install prdc (0.2): the reference implementation of the paper
    for n, m, d, shift, seed in [(300, 200, 16, 0.0, 1), (250, 250, 8, 0.5, 2), (200, 300, 32, 1.0, 3)]:
        real, fake = _gauss(n, d, seed=seed), _gauss(m, d, shift, seed=seed + 10)
        ref = prdc.compute_prdc(real, fake, nearest_k=D.DC_K)
        assert density_coverage(real, fake) == pytest.approx((ref["density"], ref["coverage"]), abs=1e-12)
        ref3 = prdc.compute_prdc(real, fake, nearest_k=D.PRC_K)
        assert precision_recall(real, fake) == pytest.approx((ref3["precision"], ref3["recall"]), abs=1e-12)


def test_one_distribution_scores_about_one_and_a_collapse_loses_coverage_not_density():
    real, fake = _gauss(600, 16, seed=4), _gauss(600, 16, seed=5)
    density, coverage = density_coverage(real, fake)
    assert 0.85 < density < 1.15 and coverage > 0.9  # Naeem et al.: E[coverage] = 1 - 1/2^k ~ 0.97 for M = N
    collapsed = np.repeat(real[:3], 200, axis=0) + _gauss(600, 16, seed=6) * 0.01
    d_col, c_col = density_coverage(real, collapsed)
    assert c_col < 0.05 and d_col > 0.5  # realistic samples of a sliver of the data


def test_fake_outliers_inflate_recall_but_not_coverage():
    """The paper's motivation: a collapsed generator with a few far outliers. The outliers' huge k-NN balls hold
    most reals, so recall looks fine; coverage counts only real balls holding a fake and stays low."""
    real = _gauss(300, 8, seed=7)
    outliers = _gauss(10, 8, seed=9)
    outliers = 12 * outliers / np.linalg.norm(outliers, axis=1, keepdims=True)
    fake = np.vstack([real[0] + 0.05 * _gauss(290, 8, seed=8), outliers])
    _, recall = precision_recall(real, fake)
    density, coverage = density_coverage(real, fake)
    assert recall > 0.8 and coverage < 0.15 and density > 1.0


def test_feature_metrics_reports_them_beside_precision_recall_on_the_same_features():
    real, fake = _gauss(64, 8, seed=10), _gauss(64, 8, seed=11)
    m = feature_metrics(real, fake)
    assert (m[K.DENSITY], m[K.COVERAGE]) == pytest.approx(density_coverage(real, fake))
    assert (m[K.PRECISION], m[K.RECALL]) == pytest.approx(precision_recall(real, fake))
    tiny = feature_metrics(real[:5], fake[:5])  # <= k points: no k-NN radius, NaN rather than a crash
    assert math.isnan(tiny[K.DENSITY]) and math.isnan(tiny[K.COVERAGE])
