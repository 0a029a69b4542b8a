"""AdaS minimises, classifies and adapts its step sizes; build_optimizers honours the config (TTUR)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from trainers.config import OPTIMIZERS, TrialConfig
from trainers.optimizers import ADAS_REFERENCE_LR, AdaS, build_optimizers


def test_adas_minimises_a_quadratic():
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    A = Q * torch.linspace(0.5, 2.0, 16)  # a rotated quadratic with condition number 16
    target = torch.randn(8, 16, generator=g)
    W = nn.Parameter(torch.zeros(8, 16))  # least squares in matrix form: step sizes per input column
    opt = AdaS([W])

    def loss() -> torch.Tensor:
        return (W @ A - target @ A).pow(2).mean()

    first = loss().item()
    for _ in range(1200):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < first * 1e-3  # orders of magnitude lower
    assert opt.state[W]["s"].mean() > 1e-3  # a consistent descent direction grew the step sizes


def test_adas_trains_a_classifier_and_adapts_its_step_sizes():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 2, generator=g)
    y = (x[:, 0] * x[:, 1] > 0).long()  # XOR quadrants: needs the hidden layer
    net = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 2))
    opt = AdaS(net.parameters())
    for _ in range(1200):
        idx = torch.randint(0, 512, (64,), generator=g)
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = (net(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.9
    steps = torch.cat([opt.state[p]["s"].flatten() for p in net.parameters()])
    assert not torch.allclose(steps, torch.full_like(steps, 1e-3))  # learned, not the initial 1e-3
    assert steps.std() > 0 and (steps > 0).all()
    assert any(opt.state[p]["m"].item() != 0.005 for p in net.parameters())  # meta-rates adapt too


def test_lr_scale_scales_the_update():
    def one_step(scale: float) -> torch.Tensor:
        p = nn.Parameter(torch.ones(3, 4, dtype=torch.float64))
        opt = AdaS([p], lr_scale=scale)
        p.grad = torch.arange(12.0, dtype=torch.float64).view(3, 4) - 5
        opt.step()
        return (p.detach() - 1).clone()

    base, double = one_step(1.0), one_step(2.0)
    assert base.abs().sum() > 0
    assert torch.allclose(double, 2 * base)
    # First step of AdaS: normalised gradient = sign(g), times the initial step 1e-3.
    assert base.abs().max().item() == pytest.approx(1e-3, rel=1e-6)


def test_adas_state_round_trips_through_state_dict():
    p = nn.Parameter(torch.randn(4, 3))
    opt = AdaS([p])
    for _ in range(3):
        p.grad = torch.randn(4, 3)
        opt.step()
    clone = nn.Parameter(p.detach().clone())
    opt2 = AdaS([clone])
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # as through torch.save/load
    grad = torch.randn(4, 3)
    p.grad, clone.grad = grad.clone(), grad.clone()
    opt.step()
    opt2.step()
    assert torch.equal(p, clone)


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_build_optimizers_sets_separate_rates(kind):
    cfg = TrialConfig(optimizer=kind, lr_g=1e-4, lr_d=4e-4, weight_decay=1e-5)
    G, D = nn.Linear(3, 3), nn.Linear(3, 1)
    opt_g, opt_d = build_optimizers(cfg, G, D)
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(4e-4)
    assert {id(p) for p in opt_g.param_groups[0]["params"]} == {id(p) for p in G.parameters()}
    assert opt_g.param_groups[0]["weight_decay"] == 1e-5
    if kind == "adas":
        assert isinstance(opt_g, AdaS)
        assert opt_g.param_groups[0]["lr_scale"] == pytest.approx(1e-4 / ADAS_REFERENCE_LR)
        assert opt_d.param_groups[0]["lr_scale"] == pytest.approx(2.0)
    if kind == "adam":
        assert opt_g.param_groups[0]["betas"] == (cfg.beta1, cfg.beta2)
    if kind in ("sgd", "rmsprop"):
        assert opt_g.param_groups[0]["momentum"] == cfg.momentum


def test_adas_default_lr_is_the_original_optimiser():
    opt_g, _ = build_optimizers(TrialConfig(optimizer="adas"), nn.Linear(2, 2), nn.Linear(2, 1))
    assert opt_g.param_groups[0]["lr_scale"] == pytest.approx(1.0)
