"""Memorisation calibrated against held-out real images (issue 23 section 2): a generator that returns training
images must be flagged, one that returns held-out images (never trained on) must not, in feature space (at every
evaluation) and in pixels (`Rescorer`, what `gan-study rescore` runs); the nearest pairs show the copies."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from fast_eval import one_epoch_extractors

from trainers import metric_keys as K
from trainers.config import TrialConfig
from trainers.data import load_split
from trainers.evaluation import Evaluator
from trainers.evaluation import defaults as D
from trainers.evaluation.extractors import ExtractorChoice
from trainers.evaluation.memorisation import (calibrated_shares, load_pairs, nearest_distances, nearest_pairs,
                                              save_pairs)
from trainers.evaluation.rescore import Rescorer


class BankGenerator(nn.Module):
    """Returns the images of a bank in order (cycling), whatever z: a perfect copier of that bank."""

    def __init__(self, images: torch.Tensor):
        super().__init__()
        self.register_buffer("bank", images)
        self.next = 0

    def forward(self, z, y=None):
        idx = (torch.arange(len(z)) + self.next) % len(self.bank)
        self.next = int(idx[-1]) + 1
        return self.bank[idx]


@pytest.fixture(scope="module", autouse=True)
def _one_epoch_extractors():
    """Extractors train 1 epoch and KID uses 5 subsets here: these tests check memorisation, not those."""
    with one_epoch_extractors():
        yield


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    cache = tmp_path_factory.mktemp("mem-cache")
    train = load_split("phantom", "train", 32, limit=600, cache_dir=cache)
    test = load_split("phantom", "test", 32, cache_dir=cache)  # 400 images, never trained on
    cfg = TrialConfig.from_dict(dict(data="phantom", resolution=32, g_features=16, d_features=16, latent_dim=16,
                                     eval_samples=256))
    return cfg, train, test, cache


def _shuffled(images: np.ndarray, seed: int) -> torch.Tensor:
    """Images as a generator would return them: float in [-1, 1], in an order unrelated to the reference draw."""
    x = torch.from_numpy(np.array(images)).float().div(127.5).sub(1).unsqueeze(1)
    return x[torch.from_numpy(np.random.default_rng(seed).permutation(len(x)))]


def test_shares_of_copies_and_of_fresh_draws_against_the_held_out_percentiles():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(400, 16))
    heldout_nn, _ = nearest_distances(rng.normal(size=(300, 16)), train)
    fresh_nn, _ = nearest_distances(rng.normal(size=(500, 16)), train)
    copies_nn, idx = nearest_distances(train[:500 // 2].repeat(2, axis=0) + 1e-9, train)
    assert np.all(copies_nn < 1e-6) and np.array_equal(idx, np.arange(250).repeat(2))
    fresh, copies = calibrated_shares(fresh_nn, heldout_nn), calibrated_shares(copies_nn, heldout_nn)
    assert copies.shares == {1: 1.0, 5: 1.0} and copies.flagged == 1.0 and copies.p_value < 1e-100
    assert fresh.flagged == 0.0 and fresh.shares[1] < 0.04 and fresh.shares[5] < 0.12
    # The held-out reference share is cross-fitted (thresholds from one half, share of the other): near p%, not
    # exactly p% as in-sample, and the same for every generator of the setting.
    assert 0.0 <= fresh.heldout_shares[1] < 0.04 and 0.01 < fresh.heldout_shares[5] < 0.12
    assert fresh.heldout_shares == copies.heldout_shares and fresh.thresholds == copies.thresholds
    # A share just under chance is not flagged; many more than 1% below the 1st percentile is.
    borderline = np.concatenate([np.zeros(3), np.full(297, 99.0)])  # 1% of 300 below any threshold
    assert calibrated_shares(borderline, heldout_nn).flagged == 0.0
    assert calibrated_shares(np.concatenate([np.zeros(15), np.full(285, 99.0)]), heldout_nn).flagged == 1.0
    assert math.isnan(calibrated_shares(fresh_nn, heldout_nn[:1]).flagged)  # too few held-out images: not measured


def test_evaluator_flags_a_generator_that_returns_training_images(phantom):
    cfg, train, test, cache = phantom
    ev = Evaluator(cfg, train, cache_dir=cache)
    m = ev.evaluate(BankGenerator(_shuffled(train.images, 1)))
    assert m[K.EVAL_TEST_N] == 256
    # About 256/600 of the copies are of the N reference images: distance 0, below any held-out percentile.
    assert m[K.MEMORISATION_SHARE_P1] > 0.3 and m[K.MEMORISATION_SHARE_P5] >= m[K.MEMORISATION_SHARE_P1]
    assert m[K.MEMORISATION_FLAGGED] == 1.0 and m[K.MEMORISATION_FLAG_P] < 1e-6
    assert m[K.MEMORISATION_HELDOUT_SHARE_P1] < 0.05  # the reference beside it


def test_evaluator_does_not_flag_a_generator_that_returns_held_out_images(phantom):
    cfg, train, test, cache = phantom
    m = Evaluator(cfg, train, cache_dir=cache).evaluate(BankGenerator(_shuffled(test.images, 2)))
    assert m[K.MEMORISATION_FLAGGED] == 0.0 and m[K.MEMORISATION_SHARE_P1] < 0.05
    assert abs(m[K.MEMORISATION_SHARE_P5] - m[K.MEMORISATION_HELDOUT_SHARE_P5]) < 0.06
    # Real held-out images are close to both references: FID against the test split beside the training split.
    assert m[K.FID_TEST] < m[K.FID_TRAIN_AT_TEST_N] and m[K.FID_TRAIN_AT_TEST_N] < 5 * m[K.FID_TEST] + 1


def test_pixel_shares_and_nearest_pairs_flag_copies_and_not_held_out_images(phantom, tmp_path):
    cfg, train, test, cache = phantom
    r = Rescorer(cfg, 256, ExtractorChoice("domain"), cache_dir=cache, reference=train, heldout=test)
    copies, fresh = _shuffled(train.images, 3)[:256], _shuffled(test.images, 4)[:256]
    pc, pf = r.pixel_memorisation(copies), r.pixel_memorisation(fresh)
    assert pc[K.MEMORISATION_PIXEL_FLAGGED] == 1.0 and pc[K.MEMORISATION_PIXEL_SHARE_P1] > 0.3
    assert pf[K.MEMORISATION_PIXEL_FLAGGED] == 0.0 and pf[K.MEMORISATION_PIXEL_SHARE_P1] < 0.05
    pairs = r.pairs(copies)  # searched over the whole reference split: every copy finds its original
    assert pairs.fake.shape == pairs.train.shape == (D.NEAREST_PAIRS, 32, 32) and pairs.fake.dtype == np.uint8
    assert np.all(pairs.distances < 1e-3) and np.array_equal(pairs.fake, pairs.train)
    assert np.array_equal(pairs.train, np.asarray(train.images)[pairs.train_index])
    held = r.pairs(fresh)
    assert held.distances.min() > 10 * pairs.distances.max() + 1e-6 and np.all(np.diff(held.distances) >= 0)
    assert set(held.heldout_thresholds) == {1, 5} and held.heldout_thresholds[1] > 0
    back = load_pairs(save_pairs(tmp_path / "p.npz", held))
    assert np.array_equal(back.fake, held.fake) and back.heldout_thresholds == held.heldout_thresholds


def test_near_copies_are_flagged_too_not_only_exact_ones():
    """A memorising GAN reproduces training images up to small noise: still far below the held-out distances."""
    rng = np.random.default_rng(5)
    train = rng.integers(0, 256, size=(300, 16, 16), dtype=np.uint8)
    held = rng.integers(0, 256, size=(200, 16, 16), dtype=np.uint8)
    noisy = torch.from_numpy(train[:100].copy()).float().div(127.5).sub(1).unsqueeze(1)
    noisy = noisy + 0.05 * torch.randn(100, 1, 16, 16)
    pairs = nearest_pairs(noisy.clamp(-1, 1), train, k=8, heldout=held)
    assert pairs.distances.max() < pairs.heldout_thresholds[1] / 5
