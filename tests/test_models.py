"""Generator/discriminator shapes, ranges and options: every combination the config allows builds and runs."""
from __future__ import annotations

import itertools

import pytest
import torch

from trainers.config import ACTIVATIONS, NORMS, TrialConfig
from trainers.models import build_discriminator, build_generator, count_parameters, init_weights

SMALL = {"g_features": 16, "d_features": 16, "latent_dim": 8}


def _labels(cfg: TrialConfig, n: int) -> torch.Tensor | None:
    return torch.arange(n) % cfg.num_classes if cfg.conditioning != "none" else None


@pytest.mark.parametrize(
    "resolution,kernel,upsample",
    list(itertools.product((32, 64, 128, 256), (4, 5), ("transpose", "upsample_conv"))),
)
def test_exact_shapes_every_resolution_kernel_upsample_conditioning(resolution, kernel, upsample):
    for conditioning in ("none", "acgan", "cgan"):
        cfg = TrialConfig(resolution=resolution, kernel_size=kernel, g_upsample=upsample,
                          conditioning=conditioning, **SMALL)
        G, D = build_generator(cfg), build_discriminator(cfg)
        y = _labels(cfg, 2)
        x = G(torch.randn(2, cfg.latent_dim), y)
        assert x.shape == (2, 1, resolution, resolution)
        logits, class_logits = D(x, y)
        assert logits.shape == (2,)
        if conditioning == "acgan":
            assert class_logits is not None and class_logits.shape == (2, cfg.num_classes)
        else:
            assert class_logits is None  # only ACGAN has a class head


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_and_norm_trains_one_step(activation, norm):
    cfg = TrialConfig(resolution=32, g_activation=activation, d_activation=activation, g_norm=norm, d_norm=norm,
                      **SMALL)
    G, D = build_generator(cfg), build_discriminator(cfg)
    fake = G(torch.randn(4, cfg.latent_dim))
    logits, _ = D(fake)
    logits.sum().backward()
    for net in (G, D):
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


def test_norm_layers_follow_config_and_dcgan_rules():
    cfg = TrialConfig(resolution=32, g_norm="batch", d_norm="batch", **SMALL)
    G, D = build_generator(cfg), build_discriminator(cfg)
    # G: a BN after the projection and after each hidden stage, none after the output layer.
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in G.modules()) == 3
    # D: no BN after the first conv (DCGAN), one per later stage.
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules()) == 2
    assert not isinstance(D.features[1], torch.nn.BatchNorm2d)
    layer = build_generator(cfg.replace(g_norm="layer"))
    assert any(isinstance(m, torch.nn.GroupNorm) and m.num_groups == 1 for m in layer.modules())
    spectral = build_discriminator(cfg.replace(d_norm="spectral"))
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)) for m in spectral.modules())
    assert hasattr(spectral.head, "parametrizations")  # every conv is spectral-normed


@pytest.mark.parametrize("output", ["tanh", "sigmoid"])
def test_generator_output_in_minus_one_one(output):
    cfg = TrialConfig(resolution=32, g_output=output, **SMALL)
    G = build_generator(cfg)
    with torch.no_grad():
        for layer in G.net:  # blow up the weights so the output saturates at both ends
            if hasattr(layer, "weight") and layer.weight is not None and layer.weight.dim() == 4:
                layer.weight.mul_(50)
        x = G(torch.randn(16, cfg.latent_dim))
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert x.min() < -0.9 and x.max() > 0.9


def test_conditional_networks_need_labels_and_use_them():
    cfg = TrialConfig(resolution=32, conditioning="cgan", **SMALL)
    G, D = build_generator(cfg).eval(), build_discriminator(cfg).eval()
    z = torch.randn(1, cfg.latent_dim).repeat(2, 1)
    with pytest.raises(ValueError, match="labels"):
        G(z)
    x = G(z, torch.tensor([0, 1]))
    assert not torch.allclose(x[0], x[1])  # same z, different class -> different image
    logits, _ = D(x[:1].repeat(2, 1, 1, 1), torch.tensor([0, 1]))
    assert logits[0] != logits[1]  # projection term depends on the label
    with pytest.raises(ValueError, match="labels"):
        D(x)


def test_dcgan_parameter_count_and_init():
    cfg = TrialConfig()  # 64 px, base 64: pytorch/examples' DCGAN with one channel
    G, D = build_generator(cfg), build_discriminator(cfg)
    assert 3.5e6 < count_parameters(G) < 3.65e6
    assert 2.7e6 < count_parameters(D) < 2.8e6
    conv = G.net[0].weight
    assert abs(conv.std().item() - 0.02) < 0.002
    bn = next(m for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert abs(bn.weight.mean().item() - 1.0) < 0.01
    init_weights(D)  # re-initialising an already built network works, spectral or not
    init_weights(build_discriminator(cfg.replace(d_norm="spectral")))
