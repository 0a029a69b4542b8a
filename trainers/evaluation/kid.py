"""Kernel Inception Distance: unbiased MMD^2 with a cubic polynomial kernel, over random subsets."""
from __future__ import annotations

import numpy as np
import torch

from trainers.evaluation import defaults as D


def kid(real: np.ndarray, fake: np.ndarray, *, subsets: int = D.KID_SUBSETS, subset_size: int = D.KID_SUBSET_SIZE,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 estimate over `subsets` random subsets."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    m = min(subset_size, len(real), len(fake))
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        values[i] = _mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    # Kernels in float32 (torch matmul, ~2x numpy float64 here); sums accumulate in float64.
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    d = x.shape[1]

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a @ b.T / d + D.KID_COEF0).pow_(D.KID_DEGREE).double()

    k_xx, k_yy, k_xy = k(xt, xt), k(yt, yt), k(xt, yt)
    m = x.shape[0]
    return float((k_xx.sum() - k_xx.trace()) / (m * (m - 1)) + (k_yy.sum() - k_yy.trace()) / (m * (m - 1))
                 - 2 * k_xy.mean())
