"""study/cost.py: FLOPs counted on one real training step, for every loss and lever (reproduce --plan sizes by it)."""
from __future__ import annotations

import pytest

from study.cost import estimate_cost, step_flops
from trainers.config import TrialConfig

BASE = {"resolution": 32, "g_features": 16, "d_features": 16, "latent_dim": 16, "batch_size": 4}


def _flops(**overrides) -> float:
    return step_flops(TrialConfig.from_dict({**BASE, **overrides}))


def test_gradient_penalties_are_counted_not_crashed():
    """R1 and WGAN-GP take torch.autograd.grad inside the step; FlopCounterMode's module tracker used to make
    that raise (pytorch/pytorch#131753). The penalty's double backward costs more than the plain step."""
    plain = _flops(d_norm="layer")
    assert _flops(loss="wgan_gp", d_norm="layer") > plain
    assert _flops(apply_r1_reg=True, d_norm="layer") > plain


@pytest.mark.parametrize("lever", ["apply_diffaug", "apply_ada", "apply_lecam", "apply_bcr", "apply_g_ema"])
def test_every_lever_has_a_count(lever):
    assert _flops(**{lever: True}) >= _flops() > 0


def test_cost_scales_with_iterations_and_counts_each_structure_once():
    a = TrialConfig.from_dict({**BASE, "iterations": 10, "eval_at_end": False})
    b = TrialConfig.from_dict({**BASE, "iterations": 30, "eval_at_end": False, "seed": 1})
    one, both = estimate_cost([a], "cpu"), estimate_cost([a, b], "cpu")
    assert both["train_tflop"] == pytest.approx(4 * one["train_tflop"])
    assert both["images"] == 40 * 4
