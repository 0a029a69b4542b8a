"""The levers (trainers/levers), each against a reference: DiffAugment/ADA differentiable and one draw for real and
fake, ADA's p steered by r_t, R1 against autograd per image, LeCam against hand-computed averages, the G EMA
against the manual average, D's accuracy on training vs held-out images; config keys validated by name."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from trainers.checkpoint import LATER_KEY_DEFAULTS, config_changes
from trainers.config import TrialConfig
from trainers.errors import ConfigError
from trainers.levers import Levers
from trainers.levers.augment import AdaAugment, DiffAugment, translate
from trainers.levers.ema import GeneratorEMA
from trainers.levers.regularisers import LeCam, r1_penalty
from trainers.levers.signals import DAccuracy, real_sign

LEVER_KEYS = ("apply_g_ema", "g_ema_decay", "g_ema_start", "apply_diffaug", "diffaug_type", "apply_ada", "ada_target",
              "ada_kimg", "ada_interval", "apply_r1_reg", "r1_lambda", "r1_interval", "apply_lecam", "lecam_lambda",
              "lecam_ema_decay", "apply_bcr", "bcr_real_lambda", "bcr_fake_lambda", "d_acc_samples")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (as `num_threads=1` gives train()); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(**overrides) -> TrialConfig:
    base = dict(name="test", data="phantom", resolution=32, g_features=16, d_features=16, latent_dim=32, batch_size=8,
                iterations=8, report_every=4, eval_at_end=False, sample_grid=4, data_limit=64, d_acc_samples=16,
                num_threads=1)
    return TrialConfig.from_dict({**base, **overrides})


# ---------------------------------------------------------------- config
@pytest.mark.parametrize("values, fragment", [
    ({"diffaug_type": "translation,saturation"},
     "diffaug_type='saturation' is not allowed; allowed values: brightness, contrast, translation, cutout, flip"),
    ({"diffaug_type": "cutout,cutout"}, "names an op twice"),
    ({"apply_diffaug": True, "apply_ada": True}, "allowed: one of them on"),
    ({"g_ema_decay": 1.0}, "g_ema_decay=1.0 is out of range; allowed: 0.0 <= g_ema_decay <= 0.999999"),
    ({"r1_interval": 0}, "r1_interval=0 is out of range"),
    ({"ada_target": 1.5}, "ada_target=1.5 is out of range"),
    ({"lecam_lambda": -1}, "lecam_lambda=-1.0 is out of range"),
    ({"apply_bcr": "maybe"}, "apply_bcr='maybe' must be a boolean"),
])
def test_bad_lever_settings_are_rejected_by_name(values, fragment):
    with pytest.raises(ConfigError) as err:
        TrialConfig.from_dict(values)
    assert fragment in str(err.value)


def test_levers_are_off_by_default_and_older_checkpoints_still_resume():
    """An earlier run's config (no lever keys) is the same run as today's default: resume is allowed."""
    cfg = TrialConfig()
    assert not (cfg.apply_g_ema or cfg.apply_diffaug or cfg.apply_ada or cfg.apply_r1_reg or cfg.apply_lecam
                or cfg.apply_bcr)
    assert {k: LATER_KEY_DEFAULTS[k] for k in LEVER_KEYS} == {k: getattr(cfg, k) for k in LEVER_KEYS}
    older = {k: v for k, v in cfg.to_dict().items() if k not in LEVER_KEYS}
    assert config_changes(older, cfg.to_dict()) == {}
    assert config_changes(older, cfg.replace(apply_g_ema=True).to_dict()) == {"apply_g_ema": (False, True)}


# ---------------------------------------------------------------- augmentation
class _ImageSet:
    """A stand-in for trainers.data.ImageSet: random uint8 images (n, side, side) and labels."""

    def __init__(self, n: int, seed: int = 0, side: int = 32):
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
        self.labels = rng.integers(0, 2, n)

    def __len__(self) -> int:
        return len(self.images)


def _images(n=3, side=8, seed=0):
    return torch.rand(n, 1, side, side, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


@pytest.mark.parametrize("policy", ["brightness,contrast,translation,cutout", "flip,translation"])
def test_diffaugment_is_differentiable_for_every_op(policy):
    """An op that detached its input (or ran under no_grad) would give G no gradient: gradcheck catches it."""
    aug = DiffAugment(policy, torch.Generator().manual_seed(1))
    x = _images().requires_grad_(True)
    params = aug.draw(x)
    assert torch.autograd.gradcheck(lambda t: aug.apply(t, params), (x,))
    assert not torch.allclose(aug.apply(x, params), x)  # it did augment


def test_ada_pipeline_is_differentiable_at_full_probability():
    ada = AdaAugment(torch.Generator().manual_seed(2), torch.device("cpu"), target=0.6, kimg=1, interval=4,
                     batch_size=3)
    ada.p = torch.tensor(1.0)
    x = _images(seed=3).requires_grad_(True)
    params = ada.draw(x)
    assert all(params[k].all() for k in ("t", "s", "b", "c"))
    assert torch.autograd.gradcheck(lambda t: ada.apply(t, params), (x,), atol=1e-5)


def test_translation_and_cutout_match_diffaugment_definitions():
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    shifted = translate(x, torch.tensor([1]), torch.tensor([-1]))  # right by 1, up by 1, zero fill
    expected = torch.tensor([[0, 4, 5, 6], [0, 8, 9, 10], [0, 12, 13, 14], [0, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(shifted[0, 0], expected)
    mirrored = translate(x, torch.tensor([2]), torch.tensor([0]), reflect=True)
    assert torch.equal(mirrored[0, 0, 0], torch.tensor([2.0, 1.0, 0.0, 1.0]))
    aug = DiffAugment("cutout", torch.Generator().manual_seed(0))
    out = aug.apply(torch.ones(1, 1, 8, 8), {"cy": torch.tensor([6]), "cx": torch.tensor([-2])})
    assert out.sum() == 64 - 2 * 2  # a 4x4 square cut, clipped to the 2x2 inside the image
    assert out[0, 0, 6:, :2].sum() == 0


@pytest.mark.parametrize("overrides", [
    {"apply_diffaug": True, "diffaug_type": "brightness,contrast,translation,cutout,flip"}, {"apply_ada": True}])
def test_real_and_fake_get_the_same_augmentation_within_a_step(overrides):
    """Identical real and fake batches stay identical after augment_pair: one draw, the same ops on both."""
    cfg = tiny(**overrides)
    lv = Levers(cfg, nn.Linear(1, 1), 0.0, torch.Generator().manual_seed(0), torch.device("cpu"))
    if lv.ada is not None:
        lv.ada.p = torch.tensor(0.5)
    x = _images(n=16, side=32).float()
    real_in, fake_in = lv.augment_pair(x, x.clone())
    assert torch.equal(real_in, fake_in) and not torch.equal(real_in, x)
    assert not torch.equal(lv.augment(x), real_in)  # the G step draws afresh


def test_in_the_step_d_sees_identically_augmented_real_and_fake_and_g_learns_through_it(monkeypatch):
    """A G that copies the real batch: D's two inputs in the D step must be equal (augmenting only the reals, or
    two draws, fails), and in the G step G's gradient must pass through the augmentation (a detach fails)."""
    from trainers.loop import Batches, _null, gan_step
    from trainers.losses import GanLoss
    from trainers.models import build_discriminator
    from trainers.optimizers import build_optimizers

    cfg = tiny(apply_diffaug=True)
    gen = torch.Generator().manual_seed(0)
    batches = Batches(_ImageSet(64), cfg, gen, torch.device("cpu"))
    current = {}
    real_batch = batches.real

    def real_once():
        current["real"] = current.get("real") or real_batch()
        return current["real"]

    monkeypatch.setattr(batches, "real", real_once)

    class Copycat(nn.Module):  # G(z) = the real batch, times a parameter (1) G can learn
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, z, y):
            return current["real"][0] * self.scale

    G, D = Copycat(), build_discriminator(cfg)
    seen = []
    monkeypatch.setattr(D, "forward", lambda x, y=None, f=D.forward: (seen.append(x.detach().clone()), f(x, y))[1])
    opt_g, opt_d = build_optimizers(cfg, G, D)
    gan_step(G, D, opt_g, opt_d, GanLoss(cfg), batches, cfg, _null())
    d_real, d_fake, g_fake = seen
    assert torch.equal(d_real, d_fake) and not torch.equal(d_real, current["real"][0])
    assert not torch.equal(g_fake, d_fake)  # a fresh draw in the G step
    assert G.scale.grad is not None and G.scale.grad.abs() > 0


# ---------------------------------------------------------------- ADA
def test_ada_p_rises_when_r_t_is_above_target_and_falls_below_it():
    ada = AdaAugment(torch.Generator(), torch.device("cpu"), target=0.6, kimg=1, interval=4, batch_size=10)
    step = 10 * 4 / 1000  # batch x interval / (kimg x 1000)
    for _ in range(3):
        ada.observe(torch.tensor(1.0))
    assert float(ada.p) == 0.0  # adjusted only every `interval` D steps
    ada.observe(torch.tensor(1.0))
    assert float(ada.p) == pytest.approx(step)
    for r in (0.9, 0.7, 0.8, 0.65):  # mean 0.7625 > 0.6: up again
        ada.observe(torch.tensor(r))
    assert float(ada.p) == pytest.approx(2 * step)
    for r in (0.9, 0.1, 0.5, 0.5):  # mean 0.5 < 0.6: down
        ada.observe(torch.tensor(r))
    assert float(ada.p) == pytest.approx(step)
    for _ in range(12):
        ada.observe(torch.tensor(-1.0))
    assert float(ada.p) == 0.0  # clamped at 0
    ada.p = torch.tensor(0.999)
    for _ in range(4):
        ada.observe(torch.tensor(1.0))
    assert float(ada.p) == 1.0  # and at 1


def test_levers_feed_ada_the_r_t_of_the_real_logits_relative_to_the_loss_threshold():
    lv = Levers(tiny(apply_ada=True, ada_kimg=1), nn.Linear(1, 1), 0.5, torch.Generator(), torch.device("cpu"))
    for _ in range(4):
        lv.observe(torch.tensor([0.6, 0.7, 0.9, 0.4]))  # LSGAN threshold 0.5: signs +,+,+,- -> r_t = 0.5 < 0.6
    assert lv.ada_p == 0.0 and np.allclose(lv.drain_rt(), 0.5) and lv.drain_rt().size == 0
    for _ in range(4):
        lv.observe(torch.tensor([0.6, 0.7, 0.9, 0.8]))
    assert lv.ada_p == pytest.approx(8 * 4 / 1000)
    assert float(real_sign(torch.tensor([-2.0, 0.0, 3.0, 1.0]), 0.0)) == 0.25


# ---------------------------------------------------------------- regularisers
def test_r1_equals_an_autograd_reference_per_image():
    from trainers.models import build_discriminator

    torch.manual_seed(0)
    D = build_discriminator(tiny(d_norm="none")).double()
    x = _images(n=4, side=32, seed=5).requires_grad_(True)
    logits, _ = D(x, None)
    got = r1_penalty(x, logits, gamma=3.0)
    ref = []
    for i in range(4):  # without batch statistics each image's gradient is its own
        xi = x[i:i + 1].detach().requires_grad_(True)
        (g,) = torch.autograd.grad(D(xi, None)[0].sum(), xi)
        ref.append(g.pow(2).sum())
    assert float(got.detach()) == pytest.approx(3.0 / 2 * float(torch.stack(ref).mean()), rel=1e-10)
    (dw,) = torch.autograd.grad(got, next(D.parameters()))  # create_graph: D is trained on the penalty
    assert dw.abs().sum() > 0


def test_lazy_r1_runs_every_kth_d_step_with_k_times_the_weight():
    lv = Levers(tiny(apply_r1_reg=True, r1_lambda=2.0, r1_interval=3), nn.Linear(1, 1), 0.0, torch.Generator(),
                torch.device("cpu"))
    x = torch.ones(2, 1, 2, 2, requires_grad=True)
    logits = (x * 2.0).flatten(1).sum(1)  # grad = 2 everywhere: ||grad||^2 = 16 per image
    weights = []
    for _ in range(6):
        weights.append(float(lv.r1(x, logits)) / 16 if lv.r1_due else 0.0)
        assert lv.r1_due or float(lv.r1(x, logits)) == 0.0
        lv.observe(logits)
    assert weights == [3.0, 0.0, 0.0, 3.0, 0.0, 0.0]  # (gamma * k) / 2 = 3 on steps 0 and 3


def test_lecam_equals_its_formula_with_hand_computed_moving_averages():
    reg = LeCam(weight=0.5, decay=0.9, device=torch.device("cpu"))
    batches = [(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])),
               (torch.tensor([2.0, 2.0]), torch.tensor([-2.0, -4.0])),
               (torch.tensor([0.0, 4.0]), torch.tensor([1.0, 1.0]))]
    a_r, a_f = 2.0, -0.5  # the first batch's means
    for i, (real, fake) in enumerate(batches):
        if i:
            a_r, a_f = 0.9 * a_r + 0.1 * float(real.mean()), 0.9 * a_f + 0.1 * float(fake.mean())
        expected = 0.5 * (float(((real - a_f) ** 2).mean()) + float(((fake - a_r) ** 2).mean()))
        assert float(reg(real, fake)) == pytest.approx(expected, rel=1e-6)
    assert (float(reg.ema_real), float(reg.ema_fake)) == pytest.approx((a_r, a_f))


# ---------------------------------------------------------------- EMA
def test_generator_ema_equals_the_manual_average_after_k_steps():
    G = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = GeneratorEMA(G, decay=0.8, start=2)
    thetas = []
    for k in range(6):
        with torch.no_grad():
            for p in G.parameters():
                p.copy_(torch.full_like(p, float(k + 1)) * torch.arange(1, p.numel() + 1).view_as(p))
            G[1].running_mean.fill_(k)
        thetas.append([p.detach().clone() for p in G.parameters()])
        ema.update(G)
    expected = thetas[1]  # a copy of G for the first `start` steps
    for theta in thetas[2:]:
        expected = [0.8 * e + 0.2 * t for e, t in zip(expected, theta)]
    for got, want in zip(ema.module.parameters(), expected):
        assert torch.allclose(got, want, atol=1e-6)
    assert float(ema.module[1].running_mean[0]) == 5.0  # buffers are G's
    assert not any(p.requires_grad for p in ema.module.parameters())


# ---------------------------------------------------------------- D accuracy
class _Memoriser(nn.Module):
    """Calls an image real iff it is one of the training images: 100% on training, 0% on held-out."""

    def __init__(self, train_images: np.ndarray):
        super().__init__()
        self.register_buffer("known", torch.from_numpy(train_images).float().div(127.5).sub(1.0).flatten(1))
        self.bn = nn.BatchNorm1d(1)

    def forward(self, x, y=None):
        self.bn(x.flatten(1)[:, :1])  # updates running statistics in training mode
        dist = torch.cdist(x.flatten(1).double(), self.known.double(), compute_mode="donot_use_mm_for_euclid_dist")
        hit = (dist.min(1).values < 1e-6).float()
        return hit * 2 - 1, None


def test_d_accuracy_separates_training_from_held_out_images_and_leaves_d_untouched():
    train_set, heldout = _ImageSet(64, seed=1), _ImageSet(40, seed=2)
    D = _Memoriser(train_set.images).train()
    before = [b.clone() for b in D.buffers()]
    acc = DAccuracy(train_set, heldout, n=24, seed=0, batch_size=10, conditional=False, device=torch.device("cpu"))
    assert acc.measure(D, threshold=0.0) == (1.0, 0.0)
    assert acc.measure(D, threshold=1.5) == (0.0, 0.0)  # nothing is above the threshold
    assert all(torch.equal(a, b) for a, b in zip(before, D.buffers()))  # BatchNorm statistics restored
    none = DAccuracy(train_set, None, n=24, seed=0, batch_size=10, conditional=False, device=torch.device("cpu"))
    train_acc, held = none.measure(D, 0.0)
    assert train_acc == 1.0 and math.isnan(held)


def test_the_held_out_batch_comes_from_the_validation_split_and_is_none_without_one(tmp_path):
    from trainers.data import load_split
    from trainers.levers.signals import heldout_split

    held = heldout_split(tiny())
    assert len(held) == len(load_split("phantom", "val", 32)) and held.fingerprint != load_split(
        "phantom", "train", 32).fingerprint
    assert heldout_split(tiny(data=str(tmp_path / "missing.npz"))) is None  # no split: NaN accuracy, no crash
