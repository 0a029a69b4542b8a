"""GAN losses against hand-computed values, and the WGAN-GP gradient penalty."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainers.config import LOSSES, TrialConfig
from trainers.losses import GanLoss
from trainers.models import build_discriminator


def _loss(kind: str, **kw) -> GanLoss:
    return GanLoss(TrialConfig(loss=kind, d_norm="none" if kind == "wgan_gp" else "batch", **kw))


def test_bce_known_values():
    loss = _loss("bce")
    zero = torch.zeros(8)
    assert loss.d_loss(zero, zero).item() == pytest.approx(2 * math.log(2))  # chance level
    assert loss.g_loss(zero).item() == pytest.approx(math.log(2))
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sig = torch.sigmoid
    want_d = -(torch.log(sig(real)).mean() + torch.log(1 - sig(fake)).mean())
    assert loss.d_loss(real, fake).item() == pytest.approx(want_d.item(), rel=1e-6)
    assert loss.g_loss(fake).item() == pytest.approx(-torch.log(sig(fake)).mean().item(), rel=1e-6)
    # Stable at extreme logits where log(sigmoid) would underflow.
    assert torch.isfinite(loss.d_loss(torch.tensor([-200.0]), torch.tensor([200.0])))


def test_bce_minimax_generator_is_log_one_minus_d():
    loss = _loss("bce_minimax")
    fake = torch.tensor([0.5, -3.0])
    want = torch.log(1 - torch.sigmoid(fake)).mean().item()
    assert loss.g_loss(fake).item() == pytest.approx(want, rel=1e-6)
    assert loss.d_loss(torch.zeros(2), torch.zeros(2)).item() == pytest.approx(2 * math.log(2))


def test_lsgan_known_values():
    loss = _loss("lsgan")
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    assert loss.d_loss(real, fake).item() == pytest.approx((0 + 4) / 2 + (0 + 4) / 2)
    assert loss.g_loss(fake).item() == pytest.approx((1 + 9) / 2)
    assert loss.d_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(1.0)
    assert torch.equal(loss.score(real), real)  # raw output: 1 = real, 0 = fake


def test_hinge_and_wgan_known_values():
    hinge = _loss("hinge")
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert hinge.d_loss(real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1.5) / 2)
    assert hinge.g_loss(fake).item() == pytest.approx(0.75)
    assert hinge.d_loss(torch.zeros(2), torch.zeros(2)).item() == pytest.approx(2.0)
    wgan = _loss("wgan_gp")
    assert wgan.d_loss(real, fake).item() == pytest.approx(-0.75 - 1.25)
    assert wgan.g_loss(fake).item() == pytest.approx(0.75)


@pytest.mark.parametrize("kind", LOSSES)
def test_score_is_probability_only_for_bce(kind):
    logits = torch.tensor([-3.0, 0.0, 4.0])
    score = _loss(kind).score(logits)
    if kind.startswith("bce"):
        assert torch.allclose(score, torch.sigmoid(logits))
    else:
        assert torch.equal(score, logits)


def test_aux_loss_is_cross_entropy():
    loss = _loss("bce")
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1])
    assert loss.aux_loss(logits, labels).item() == pytest.approx(nn.functional.cross_entropy(logits, labels).item())


class _LinearD(nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor, labels=None):
        return (x.flatten(1) * self.w.flatten()).sum(1), None


def test_gradient_penalty_zero_for_unit_gradient_positive_otherwise():
    loss = _loss("wgan_gp", gp_weight=10.0)
    real, fake = torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)
    w = torch.randn(1, 8, 8)
    unit = _LinearD(w / w.norm())
    assert loss.gradient_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-8)
    double = _LinearD(2 * w / w.norm())
    assert loss.gradient_penalty(double, real, fake).item() == pytest.approx(10.0, rel=1e-4)  # 10 * (2 - 1)^2
    # It is differentiable w.r.t. D's weights (create_graph), so D learns to satisfy it.
    loss.gradient_penalty(double, real, fake).backward()
    assert double.w.grad is not None and double.w.grad.abs().sum() > 0


def test_gradient_penalty_on_real_discriminator_and_zero_for_other_losses():
    cfg = TrialConfig(loss="wgan_gp", d_norm="layer", resolution=32, d_features=16, conditioning="cgan")
    D = build_discriminator(cfg)
    real, fake, y = torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 0, 1])
    gp = GanLoss(cfg).gradient_penalty(D, real, fake, y)
    assert gp.item() > 0 and gp.dim() == 0
    assert _loss("bce").gradient_penalty(D, real, fake, y).item() == 0.0


@pytest.mark.parametrize("kind", ["bce", "bce_minimax", "lsgan", "hinge", "wgan_gp"])
def test_chance_level_is_the_loss_of_the_best_non_discriminating_d(kind):
    """T0's chance level: a D with one constant output for real and fake alike, at its best constant."""
    loss = GanLoss(TrialConfig(loss=kind, d_norm="layer"))
    grid = torch.linspace(-3, 3, 6001)  # constant outputs c, step 0.001
    values = torch.stack([loss.d_loss(c.repeat(8), c.repeat(8)) for c in grid])
    assert float(values.min()) == pytest.approx(loss.chance_level(), abs=1e-6)
    # No non-discriminating D does better, and one that knows real from fake does.
    assert float(values.min()) >= loss.chance_level() - 1e-6
    real_out, fake_out = {"lsgan": (1.0, 0.0)}.get(kind, (3.0, -3.0))  # a D that tells them apart
    assert float(loss.d_loss(torch.full((8,), real_out), torch.full((8,), fake_out))) < loss.chance_level()
    if kind == "lsgan":  # the logit-0 D is not at chance for least squares
        assert float(loss.d_loss(torch.zeros(8), torch.zeros(8))) == pytest.approx(1.0) != loss.chance_level()
