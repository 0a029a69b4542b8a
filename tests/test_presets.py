"""Every preset validates, builds and runs; unknown names fail with the list of allowed ones."""
from __future__ import annotations

import pytest
import torch

from trainers.config import ConfigError, TrialConfig
from trainers.models import build_discriminator, build_generator
from trainers.optimizers import AdaS, build_optimizers
from trainers.presets import PRESETS, get_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_validates_and_builds(name):
    cfg = get_preset(name)
    assert isinstance(cfg, TrialConfig) and cfg.name == name
    # Build at the smallest size so the test stays fast; the preset's own settings are otherwise kept.
    small = cfg.replace(resolution=32, g_features=16, d_features=16)
    G, D = build_generator(small), build_discriminator(small)
    y = torch.arange(2) % small.num_classes if small.conditioning != "none" else None
    logits, _ = D(G(torch.randn(2, small.latent_dim), y), y)
    assert logits.shape == (2,)
    build_optimizers(small, G, D)


def test_paper_settings():
    best = get_preset("belmekki_adas_elu_ttur")  # seed 002 Table II
    assert (best.g_activation, best.d_activation, best.g_norm, best.d_norm) == ("elu", "elu", "none", "batch")
    assert best.optimizer == "adas" and best.ttur
    assert not get_preset("belmekki_adas_elu").ttur
    assert get_preset("belmekki_adas_relu").g_activation == "relu"
    acgan = get_preset("acgan_seed000")
    assert (acgan.conditioning, acgan.kernel_size, acgan.g_norm, acgan.loss) == ("acgan", 5, "layer", "lsgan")
    assert (acgan.lr_g, acgan.batch_size, acgan.weight_decay) == (1e-4, 16, 6e-9)
    assert (get_preset("dcgan_seed003").beta1, get_preset("dcgan_seed003").batch_size) == (0.55, 50)
    up = get_preset("upsample_seed004")
    assert (up.g_upsample, up.resolution) == ("upsample_conv", 128)
    assert get_preset("dcgan").to_dict() == TrialConfig(name="dcgan").to_dict()  # defaults are DCGAN


def test_smoke_preset_is_tiny():
    smoke = get_preset("smoke")
    assert (smoke.resolution, smoke.g_features, smoke.batch_size, smoke.iterations) == (32, 16, 16, 40)
    assert not smoke.eval_at_end and smoke.fid_every == 0


def test_adas_preset_builds_adas_with_ttur_scales():
    cfg = get_preset("belmekki_adas_elu_ttur").replace(resolution=32, g_features=16, d_features=16)
    opt_g, opt_d = build_optimizers(cfg, build_generator(cfg), build_discriminator(cfg))
    assert isinstance(opt_g, AdaS) and opt_g.param_groups[0]["lr_scale"] < opt_d.param_groups[0]["lr_scale"]


def test_unknown_preset_names_the_allowed_ones():
    with pytest.raises(ConfigError, match="smoke"):
        get_preset("no_such_preset")


def test_overrides_apply_and_validate():
    assert get_preset("smoke", {"seed": 3}).seed == 3
    with pytest.raises(ConfigError, match="resolution"):
        get_preset("smoke", {"resolution": 48})
