"""Improved precision and recall (Kynkaanniemi et al. 2019): k-NN manifolds in feature space.

Precision: share of fake samples inside the real manifold (union of balls reaching each real
sample's k-th nearest real neighbour). Recall: share of real samples inside the fake manifold.
"""
from __future__ import annotations

import numpy as np
import torch

from trainers.evaluation import defaults as D


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = D.PRC_K) -> tuple[float, float]:
    r = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    return _coverage(r, f, k), _coverage(f, r, k)


def _coverage(manifold: torch.Tensor, probes: torch.Tensor, k: int) -> float:
    """Share of `probes` within the k-NN radius of at least one `manifold` point."""
    d_mm = torch.cdist(manifold, manifold)
    radii = d_mm.kthvalue(k + 1, dim=1).values  # +1: each point is its own nearest neighbour
    d_pm = torch.cdist(probes, manifold)
    return float((d_pm <= radii[None, :]).any(dim=1).double().mean())
