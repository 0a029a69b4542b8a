"""Exact running moments, the T0 definition and the divergence signals, on known sequences."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainers.divergence import DivergenceDetector
from trainers.run_stats import T0_FRACTION, T0_WINDOW, RunningMoments, T0Tracker


def test_running_moments_match_numpy_over_uneven_chunks():
    rng = np.random.default_rng(0)
    values = rng.gamma(2.0, 0.7, size=1001)
    m = RunningMoments()
    for chunk in np.split(values, [1, 7, 300, 301, 999]):
        m.update(chunk)
    assert m.count == 1001
    assert m.mean == pytest.approx(values.mean(), rel=1e-12)
    assert m.variance == pytest.approx(values.var(), rel=1e-10)
    assert m.std == pytest.approx(values.std(), rel=1e-10)
    restored = RunningMoments()
    restored.load_state_dict(m.state_dict())
    assert restored == m


def test_t0_is_the_end_of_the_initial_low_loss_phase():
    chance = 2 * math.log(2)
    seq = np.r_[np.full(10, chance), np.full(200, 0.05), np.full(100, 1.0)]
    t = T0Tracker(chance=chance)
    for chunk in np.array_split(seq, 13):
        t.update(chunk)
    # The trailing mean first reaches T0_FRACTION*chance once enough 1.0 values fill the window.
    k = next(k for k in range(1, T0_WINDOW + 1) if (k * 1.0 + (T0_WINDOW - k) * 0.05) / T0_WINDOW >= T0_FRACTION * chance)
    assert t.value() == 210 + k
    assert not t.censored


def test_t0_is_zero_without_a_low_phase_and_censored_when_never_left():
    chance = 2 * math.log(2)
    never_low = T0Tracker(chance=chance)
    never_low.update(np.full(100, 1.2))
    # Not known mid-run (D may still enter the phase): NaN, never 0 first and a number later.
    assert math.isnan(never_low.value()) and never_low.value(final=True) == 0.0
    stuck = T0Tracker(chance=chance)
    stuck.update(np.r_[np.full(5, chance), np.full(95, 0.01)])
    assert math.isnan(stuck.value()) and stuck.value(final=True) == 100 and stuck.censored
    assert math.isnan(T0Tracker(chance=0.0).value(final=True))  # WGAN-GP: undefined


def test_detector_flags_non_finite_losses_with_the_iteration():
    det = DivergenceDetector(window=5)
    assert det.check_losses(np.ones(7), np.ones(7)) == ""
    reason = det.check_losses(np.array([1.0, np.nan]), np.ones(2))
    assert "non-finite" in reason and "iteration 9" in reason


def test_detector_flags_sudden_exponential_rise_of_both_losses_only():
    det = DivergenceDetector(window=10, factor=20)
    calm = np.full(10, 0.7)
    assert det.check_losses(calm, calm) == ""
    assert "rose sharply" in det.check_losses(calm * 40, calm * 40)
    # The healthy end of T0: D loss jumps from 0.01 to 0.6 while G loss falls — not divergence.
    det2 = DivergenceDetector(window=10, factor=20)
    assert det2.check_losses(np.r_[np.full(10, 0.01), np.full(10, 0.6)], np.r_[np.full(10, 6.0), np.full(10, 1.5)]) == ""


def test_detector_flags_mode_collapse_from_samples():
    det = DivergenceDetector(collapse_threshold=0.05)
    torch.manual_seed(0)
    diverse = torch.rand(16, 1, 8, 8) * 2 - 1
    collapsed = diverse[:1].repeat(16, 1, 1, 1) + 0.001 * torch.randn(16, 1, 8, 8)
    untrained = 0.01 * torch.randn(1, 1, 8, 8).repeat(16, 1, 1, 1)  # near-blank: too early to judge
    assert det.check_samples(diverse) == ""
    assert det.check_samples(collapsed) == ""  # one report is not enough
    assert "mode collapse" in det.check_samples(collapsed)
    fresh = DivergenceDetector(collapse_threshold=0.05)
    assert fresh.check_samples(untrained) == "" and fresh.check_samples(untrained) == ""


def test_reported_t0_never_changes_once_a_number():
    """A late low phase: mid-run reports are NaN until the phase ends, then that value for good."""
    chance = 2 * math.log(2)
    t = T0Tracker(chance=chance)
    seen = []
    losses = np.r_[np.full(300, 1.3), np.full(200, 0.05), np.full(300, 1.3)]
    for chunk in np.split(losses, 16):
        t.update(chunk)
        seen.append(t.value())
    numbers = [v for v in seen if not math.isnan(v)]
    assert numbers and len(set(numbers)) == 1 and numbers[0] > 500
    first = seen.index(numbers[0])
    assert all(math.isnan(v) for v in seen[:first]) and all(v == numbers[0] for v in seen[first:])
