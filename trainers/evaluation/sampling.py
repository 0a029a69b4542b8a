"""Synthetic images from a generator for evaluation and downstream classifiers, and their sanity check.

Its own module so that `evaluator` (FID & co.) and `protocols` (TSTR, augmentation) share it without
importing each other.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from trainers.config import TrialConfig
from trainers.errors import UserError
from trainers.evaluation import defaults as D


@torch.no_grad()
def sample_images(G: nn.Module, n: int, cfg: TrialConfig, device: torch.device | str, *,
                  labels: torch.Tensor | None = None, seed: int = D.LATENT_SEED,
                  batch_size: int = D.SAMPLE_BATCH) -> torch.Tensor:
    """n images (n, 1, R, R) in [-1, 1] on the CPU from a fixed latent seed, G in eval mode."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, cfg.latent_dim, generator=g)
    if cfg.conditioning != "none" and labels is None:
        labels = torch.arange(n) % cfg.num_classes
    was_training = G.training
    G.eval()
    out = []
    for i in range(0, n, batch_size):
        y = None if labels is None else labels[i:i + batch_size].to(device)
        out.append(G(z[i:i + batch_size].to(device), y).float().cpu())
    G.train(was_training)
    return torch.cat(out)


def check_images(images: torch.Tensor, resolution: int) -> None:
    """Wrong shape or range is a usage error, reported in one line."""
    if images.ndim != 4 or images.shape[1] != 1 or images.shape[2:] != (resolution, resolution):
        raise UserError(f"generated images have shape {tuple(images.shape)}; expected (N, 1, {resolution}, {resolution})")
    finite = images[torch.isfinite(images)]
    if finite.numel() and (finite.min() < -1 - D.RANGE_TOLERANCE or finite.max() > 1 + D.RANGE_TOLERANCE):
        raise UserError(f"generated images span [{finite.min():.3f}, {finite.max():.3f}]; expected values in [-1, 1]")
