"""DCGAN-family generator and discriminator, built from one TrialConfig.

Shapes (R = cfg.resolution, n = log2(R / 4) up/down-sampling stages):

    G: z (B, latent_dim) [+ label embedding] -> project to (g_features * 2^(n-1), 4, 4)
       -> n-1 hidden stages, channels halving, spatial doubling -> output stage to (1, R, R)
    D: x (B, 1, R, R) -> n stages, channels d_features, 2x, 4x ... -> (d_features * 2^(n-1), 4, 4)
       -> 4x4 conv to one logit (no sigmoid: the losses apply it)

At R = 64, base 64 this is pytorch/examples' DCGAN and seed 002's Table II.

Choices worth knowing (each is a documented decision, not an accident):
- kernel_size 4 uses stride 2 / padding 1; kernel_size 5 uses stride 2 / padding 2 (+ output_padding 1
  for transposed convs), so every resolution has exact shapes. The projection of z (1x1 -> 4x4) and D's
  final 4x4 -> 1x1 conv always use a 4x4 kernel: they are dense layers written as convolutions.
- norm "layer" is GroupNorm(1, C): LayerNorm over (C, H, W) per sample with a per-channel affine, so the
  parameter count does not depend on resolution. "instance" is InstanceNorm2d(affine=True).
  "spectral" adds no norm layer; it puts spectral_norm on every conv (and embedding) of that network,
  including D's first and last layers (SN-GAN), because it constrains weights, not activations.
- Conv biases are dropped only in front of batch/instance norm, which subtract per-channel means anyway.
- Conditioning: G concatenates a learned label embedding to z for both acgan and cgan (seed 000
  concatenates noise and label). ACGAN's D has an extra class head on its 4x4 features. cGAN's D is a
  projection discriminator (Miyato & Koyama 2018): logit += <embed(y), sum-pooled features>; the
  label-as-extra-input-channel variant let D dominate and collapse in our tests (see REFERENCE.md).
- Output "sigmoid" is rescaled to 2*sigmoid(x)-1 so G's range is always [-1, 1], like the data.
"""
from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from trainers.config import TrialConfig

LABEL_EMBED_DIM = 50  # size of G's label embedding (concatenated to z)


def num_stages(resolution: int) -> int:
    """Up/down-sampling stages between 4x4 and `resolution` (32 -> 3, 64 -> 4, 128 -> 5, 256 -> 6)."""
    return round(math.log2(resolution // 4))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameter elements (spectral-norm u/v vectors are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv/linear weights N(0, 0.02), norm weights N(1, 0.02), biases 0.

    Embeddings keep their own init (G's label embedding N(0, 1) to match z; D's projection sets its own).
    Works on spectral-normed layers too (initialises the underlying `original` weight).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
            nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------------------
# building blocks
def _activation(name: str, slope: float) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(slope)
    if name == "elu":
        return nn.ELU()
    raise ValueError(f"unknown activation {name!r}")


def _norm(kind: str, channels: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "layer":
        return [nn.GroupNorm(1, channels)]
    if kind == "instance":
        return [nn.InstanceNorm2d(channels, affine=True)]
    return []  # "none", and "spectral" (which acts on weights instead)


def _bias(norm: str) -> bool:
    # batch/instance norm remove per-channel means, so a conv bias in front of them is dead weight.
    return norm not in ("batch", "instance")


def _padding(kernel: int) -> int:
    return (kernel - 1) // 2  # 4 -> 1, 5 -> 2: with stride 2 both halve / double exactly


def _up(cin: int, cout: int, kernel: int, mode: str, bias: bool) -> list[nn.Module]:
    """Double the spatial size: a strided transposed conv, or nearest upsampling + 'same' conv (seed 004)."""
    if mode == "transpose":
        # out = 2*(H-1) - 2p + k + op = 2H for (k, p, op) = (4, 1, 0) and (5, 2, 1)
        return [nn.ConvTranspose2d(cin, cout, kernel, 2, _padding(kernel), output_padding=kernel % 2, bias=bias)]
    layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")]
    if kernel % 2 == 0:
        # An even kernel needs asymmetric 'same' padding; pad explicitly (padding='same' copies the input).
        layers += [nn.ZeroPad2d((kernel // 2 - 1, kernel // 2, kernel // 2 - 1, kernel // 2))]
        layers += [nn.Conv2d(cin, cout, kernel, 1, 0, bias=bias)]
    else:
        layers += [nn.Conv2d(cin, cout, kernel, 1, kernel // 2, bias=bias)]
    return layers


def _down(cin: int, cout: int, kernel: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, 2, _padding(kernel), bias=bias)


def _apply_spectral_norm(module: nn.Module) -> None:
    """Put spectral_norm on every weight layer; called after init so its power iteration sees final weights."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            spectral_norm(m)


def _check_labels(labels: torch.Tensor | None, conditioning: str, who: str) -> torch.Tensor:
    if labels is None:
        raise ValueError(f"{who} was built with conditioning={conditioning!r} and needs labels (LongTensor (B,))")
    return labels


# ----------------------------------------------------------------------------------------
class Generator(nn.Module):
    """G(z, labels=None) -> (B, 1, R, R) images in [-1, 1]."""

    def __init__(self, cfg: TrialConfig) -> None:
        super().__init__()
        self.conditioning = cfg.conditioning
        self.output = cfg.g_output
        n = num_stages(cfg.resolution)
        channels = [cfg.g_features * 2 ** (n - 1 - i) for i in range(n)]  # at 4x4, 8x8, ..., R/2
        bias = _bias(cfg.g_norm)

        in_dim = cfg.latent_dim
        self.embed: nn.Embedding | None = None
        if cfg.conditioning != "none":
            self.embed = nn.Embedding(cfg.num_classes, LABEL_EMBED_DIM)
            in_dim += LABEL_EMBED_DIM

        # Project z (as a 1x1 map) to 4x4: a dense layer written as a 4x4 transposed conv (DCGAN).
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_dim, channels[0], 4, 1, 0, bias=bias)]
        layers += _norm(cfg.g_norm, channels[0]) + [_activation(cfg.g_activation, cfg.leaky_slope)]
        for cin, cout in pairwise(channels):
            layers += _up(cin, cout, cfg.kernel_size, cfg.g_upsample, bias)
            layers += _norm(cfg.g_norm, cout) + [_activation(cfg.g_activation, cfg.leaky_slope)]
        # No norm on the output layer (DCGAN): it would pin the image statistics of every batch.
        layers += _up(channels[-1], 1, cfg.kernel_size, cfg.g_upsample, True)
        self.net = nn.Sequential(*layers)

        init_weights(self)
        if cfg.g_norm == "spectral":
            _apply_spectral_norm(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(_check_labels(labels, self.conditioning, "G"))], dim=1)
        x = self.net(z[:, :, None, None])
        if self.output == "sigmoid":
            return 2.0 * torch.sigmoid(x) - 1.0  # seed 000's sigmoid output, mapped onto the data's [-1, 1]
        return torch.tanh(x)


class Discriminator(nn.Module):
    """D(x, labels=None) -> (logits (B,), class_logits (B, num_classes) for ACGAN else None)."""

    def __init__(self, cfg: TrialConfig) -> None:
        super().__init__()
        self.conditioning = cfg.conditioning
        n = num_stages(cfg.resolution)
        channels = [cfg.d_features * 2**i for i in range(n)]  # at R/2, R/4, ..., 4x4

        # No norm after the first conv (DCGAN): normalising the raw-image layer made training oscillate,
        # and D must see the true statistics of real vs fake inputs.
        layers: list[nn.Module] = [_down(1, channels[0], cfg.kernel_size, True)]
        layers += [_activation(cfg.d_activation, cfg.leaky_slope)]
        for cin, cout in pairwise(channels):
            layers += [_down(cin, cout, cfg.kernel_size, _bias(cfg.d_norm))]
            layers += _norm(cfg.d_norm, cout) + [_activation(cfg.d_activation, cfg.leaky_slope)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(channels[-1], 1, 4, 1, 0)  # 4x4 -> one logit

        self.class_head: nn.Conv2d | None = None
        self.embed: nn.Embedding | None = None
        if cfg.conditioning == "acgan":
            self.class_head = nn.Conv2d(channels[-1], cfg.num_classes, 4, 1, 0)
        elif cfg.conditioning == "cgan":
            self.embed = nn.Embedding(cfg.num_classes, channels[-1])

        init_weights(self)
        if self.embed is not None:
            # Same scale as the head's weights, so the projection term does not swamp the logit at init.
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
        if cfg.d_norm == "spectral":
            _apply_spectral_norm(self)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.features(x)
        logits = self.head(h).view(x.shape[0])
        if self.embed is not None:
            # Projection discriminator: a class-dependent linear term on the sum-pooled features.
            y = _check_labels(labels, self.conditioning, "D")
            logits = logits + (self.embed(y) * h.sum(dim=(2, 3))).sum(dim=1)
        class_logits = self.class_head(h).view(x.shape[0], -1) if self.class_head is not None else None
        return logits, class_logits


def build_generator(cfg: TrialConfig) -> Generator:
    """The generator for `cfg`, DCGAN-initialised. Example: `build_generator(TrialConfig())(torch.randn(2, 100))`."""
    return Generator(cfg)


def build_discriminator(cfg: TrialConfig) -> Discriminator:
    """The discriminator for `cfg`, DCGAN-initialised; ACGAN's returns class logits too."""
    return Discriminator(cfg)
