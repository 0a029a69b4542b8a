"""Sample diversity (seed 001): 1 - mean SSIM / MS-SSIM over random pairs of samples.

MS-SSIM needs images large enough for its scales: with an 11-pixel window, a scale s needs
side >= 11 * 2^(s-1); we use as many of the standard 5 scales as fit (weights renormalised), and
plain SSIM when only one fits (e.g. 32 px). The kind used is returned with the value.
"""
from __future__ import annotations

import math

import torch
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as ms_ssim
from torchmetrics.functional.image import structural_similarity_index_measure as ssim

from trainers.evaluation import defaults as D

_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def diversity(images: torch.Tensor, pairs: int = D.DIVERSITY_PAIRS, seed: int = 0) -> tuple[float, str]:
    """(1 - mean pairwise similarity, "ms-ssim-<scales>" or "ssim"); images in [-1, 1], (N, 1, R, R)."""
    n = images.shape[0]
    if n < 2:
        return math.nan, "none"
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, n, (pairs,), generator=g)
    b = (a + torch.randint(1, n, (pairs,), generator=g)) % n  # never a sample with itself
    x, y = (images[a].float() + 1) / 2, (images[b].float() + 1) / 2
    scales = min(5, int(math.log2(images.shape[-1] / 11)) + 1) if images.shape[-1] >= 11 else 0
    if scales >= 2:
        betas = tuple(v / sum(_BETAS[:scales]) for v in _BETAS[:scales])
        sim = ms_ssim(x, y, data_range=1.0, betas=betas, reduction="elementwise_mean", normalize="relu")
        return float(1 - sim), f"ms-ssim-{scales}"
    sim = ssim(x, y, data_range=1.0, kernel_size=min(11, images.shape[-1] // 2 * 2 - 1))
    return float(1 - sim), "ssim"
