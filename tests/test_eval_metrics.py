"""FID/KID/precision-recall/diversity/memorisation against references and known cases; the Evaluator."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn as nn

from trainers import metric_keys as K
from trainers.config import TrialConfig
from trainers.data import load_split
from trainers.errors import ConfigError, UserError
from trainers.evaluation import Evaluator, calculate_metrics, check_images
from trainers.evaluation.fid import fid_from_features, frechet_distance, gaussian_stats
from trainers.evaluation.kid import kid
from trainers.evaluation.memorisation import memorisation_audit
from trainers.evaluation.prc import precision_recall
from trainers.models import build_generator


def _gauss(n, d, shift=0.0, scale=1.0, seed=0):
    return np.random.default_rng(seed).normal(shift, scale, (n, d))


def test_fid_of_a_set_against_itself_is_zero_and_grows_with_noise():
    x = _gauss(600, 16)
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-8)
    noisy = [fid_from_features(x, x + _gauss(600, 16, scale=s, seed=1)) for s in (0.1, 0.3, 0.6, 1.0)]
    assert all(a < b for a, b in zip(noisy, noisy[1:])) and noisy[0] > 0


def test_fid_matches_scipy_sqrtm_and_the_gaussian_closed_form():
    a, b = _gauss(500, 12, seed=2), _gauss(500, 12, shift=0.3, scale=1.4, seed=3) @ np.diag(np.linspace(0.5, 2, 12))
    mu1, s1 = gaussian_stats(a)
    mu2, s2 = gaussian_stats(b)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    reference = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-8)
    # Closed form for diagonal Gaussians: |mu1-mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2.
    v1, v2 = np.linspace(0.5, 3, 8), np.linspace(1, 2, 8)
    m1, m2 = np.zeros(8), np.full(8, 0.5)
    expected = 8 * 0.25 + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance(m1, np.diag(v1), m2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)


class _FlatFeatures(nn.Module):
    """A fixed random projection, so torchmetrics and we see identical features."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3 * 16 * 16, 32)
        self.num_features = 32

    def forward(self, x):
        return self.proj(x.float().flatten(1) / 255.0).double()


def test_fid_equals_torchmetrics_given_the_same_features():
    from torchmetrics.image.fid import FrechetInceptionDistance

    torch.manual_seed(0)
    feat = _FlatFeatures()
    real = torch.randint(0, 256, (300, 3, 16, 16), dtype=torch.uint8)
    fake = (real.float() * 0.7 + 40).clamp(0, 255).to(torch.uint8)
    tm = FrechetInceptionDistance(feature=feat)
    tm.update(real, real=True)
    tm.update(fake, real=False)
    with torch.no_grad():
        ours = fid_from_features(feat(real).numpy(), feat(fake).numpy())
    assert ours == pytest.approx(float(tm.compute()), rel=1e-3)


def test_kid_is_zero_for_one_distribution_and_positive_for_two():
    same_mean, _ = kid(_gauss(400, 16, seed=4), _gauss(400, 16, seed=5), subsets=20, subset_size=200)
    diff_mean, diff_std = kid(_gauss(400, 16, seed=4), _gauss(400, 16, shift=0.5, seed=5), subsets=20, subset_size=200)
    assert abs(same_mean) < 0.02 and diff_mean > 10 * max(abs(same_mean), 1e-3) and diff_std >= 0


def test_precision_recall_identical_vs_collapsed():
    x = _gauss(300, 8)
    p, r = precision_recall(x, x + 1e-6)
    assert p > 0.99 and r > 0.99
    collapsed = np.repeat(x[:3], 100, axis=0) + _gauss(300, 8, scale=0.01, seed=9)
    p2, r2 = precision_recall(x, collapsed)
    assert p2 > 0.9 and r2 < 0.2  # realistic samples, but only a sliver of the data's variety


def test_memorisation_flags_copies_of_training_images():
    train = _gauss(300, 16, seed=6)
    copies_ratio, copies_min = memorisation_audit(train, train[:100] + 1e-4)
    fresh_ratio, _ = memorisation_audit(train, _gauss(100, 16, seed=7))
    assert copies_ratio < 0.01 and copies_min < 1e-3
    assert 0.7 < fresh_ratio < 1.5


def _cfg(**kw):
    base = dict(data="phantom", resolution=32, g_features=16, d_features=16, latent_dim=16, eval_samples=256,
                data_limit=600)
    base.update(kw)
    return TrialConfig.from_dict(base)


@pytest.fixture(scope="module")
def phantom_train(tmp_path_factory):
    return load_split("phantom", "train", 32, limit=600, cache_dir=tmp_path_factory.mktemp("c"))


@pytest.fixture(scope="module")
def eval_cache(tmp_path_factory):
    """One evaluation cache for the tests below that are not about caching: the extractor is trained once."""
    return tmp_path_factory.mktemp("eval-cache")


def test_evaluator_end_to_end_caches_extractor_and_real_statistics(phantom_train, tmp_path):
    cfg = _cfg()
    ev = Evaluator(cfg, phantom_train, cache_dir=tmp_path)
    G = build_generator(cfg)
    m = ev.evaluate(G)
    assert m[K.EVAL_N] == 256 and m[K.EVAL_EXTRACTOR].startswith("domain-") and m[K.FID] > 0
    for key in (K.KID_MEAN, K.KID_STD, K.PRECISION, K.RECALL, K.MS_SSIM_DIVERSITY, K.MEMORISATION_RATIO):
        assert math.isfinite(m[key]), key
    assert set(K.EVALUATED_METRICS) <= set(m)  # the declared set is what an evaluation measures
    assert ev.extractor.trained_now
    again = Evaluator(cfg, phantom_train, cache_dir=tmp_path)
    assert not again.extractor.trained_now and again.evaluate(G)[K.FID] == pytest.approx(m[K.FID])
    # Real images score far better than an untrained generator.
    real_fid = calculate_metrics(phantom_train.to_tensor()[:256], phantom_train.to_tensor()[256:512],
                                 extractor=again.extractor)[K.FID]
    assert real_fid < m[K.FID] / 5


def test_domain_extractor_is_the_same_in_every_process_and_leaves_the_rng_alone(phantom_train, tmp_path):
    """Nodes and resumed studies train their own copy: it must not depend on what the process ran before."""
    from trainers.evaluation.feature_domain import DomainExtractor

    small = phantom_train.select(np.arange(200), "first200")
    torch.manual_seed(1)
    a = DomainExtractor(small, tmp_path / "a")
    after_a = torch.rand(3)
    torch.manual_seed(2)
    torch.rand(100)  # a different global RNG history
    b = DomainExtractor(small, tmp_path / "b")
    assert a.trained_now and b.trained_now
    for (name, wa), wb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(wa, wb), name
    torch.manual_seed(1)
    assert torch.equal(torch.rand(3), after_a)  # building it consumed none of the trial's random numbers


def test_low_n_fid_is_refused_unless_allowed(phantom_train, eval_cache):
    with pytest.raises(ConfigError, match="allow_low_n"):
        Evaluator(_cfg(eval_samples=64), phantom_train, cache_dir=eval_cache).evaluate(build_generator(_cfg()))
    m = Evaluator(_cfg(eval_samples=64, allow_low_n=True), phantom_train, cache_dir=eval_cache).evaluate(build_generator(_cfg()))
    assert m[K.EVAL_N] == 64 and math.isfinite(m[K.FID])


def test_conditional_generator_gets_per_class_fid(phantom_train, eval_cache):
    cfg = _cfg(conditioning="acgan", eval_samples=300, allow_low_n=True)
    m = Evaluator(cfg, phantom_train, cache_dir=eval_cache).evaluate(build_generator(cfg))
    assert math.isfinite(m[K.FID_PER_CLASS_PREFIX + "NORMAL"]) and math.isfinite(m[K.FID_PER_CLASS_PREFIX + "PNEUMONIA"])


class _NaNG(nn.Module):
    def forward(self, z, y=None):
        return torch.full((z.shape[0], 1, 32, 32), float("nan"))


def test_diverged_generator_gives_nan_metrics_not_a_crash(phantom_train, eval_cache):
    m = Evaluator(_cfg(), phantom_train, cache_dir=eval_cache).evaluate(_NaNG())
    assert all(math.isnan(m[k]) for k in K.EVALUATED_METRICS) and "non-finite" in m["eval_error"]


def test_wrong_shape_or_range_is_a_clear_error():
    with pytest.raises(UserError, match=r"expected \(N, 1, 32, 32\)"):
        check_images(torch.zeros(4, 3, 32, 32), 32)
    with pytest.raises(UserError, match=r"expected values in \[-1, 1\]"):
        check_images(torch.full((4, 1, 32, 32), 2.0), 32)


def test_inception_offline_without_weights_says_what_is_missing(monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    monkeypatch.delenv("GAN_STUDY_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    from trainers.evaluation.feature_inception import InceptionExtractor

    with pytest.raises(UserError) as err:
        InceptionExtractor(2048)
    assert "GAN_STUDY_INCEPTION_WEIGHTS" in str(err.value) and "pt_inception" in str(err.value)
    monkeypatch.setenv("GAN_STUDY_INCEPTION_WEIGHTS", "/nonexistent/weights.pth")
    with pytest.raises(UserError, match="is not a file"):
        InceptionExtractor(2048)


@pytest.mark.skipif(not __import__("os").environ.get("GAN_STUDY_INCEPTION_WEIGHTS"),
                    reason="set GAN_STUDY_INCEPTION_WEIGHTS to the pt_inception-2015-12-05 file to run")
def test_inception_features_with_real_weights():
    from trainers.evaluation.feature_inception import InceptionExtractor

    ex = InceptionExtractor(768)
    feats = ex(torch.rand(4, 1, 32, 32) * 2 - 1)
    assert feats.shape == (4, 768) and ex.name == "inception-768"
