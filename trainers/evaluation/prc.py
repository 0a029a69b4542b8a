"""Improved precision and recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020):
k-NN manifolds in feature space.

Precision: share of fake samples inside the real manifold (union of balls reaching each real
sample's k-th nearest real neighbour). Recall: share of real samples inside the fake manifold.
Density: how many real balls a fake sample lies in, on average, divided by k (about 1 when fakes are
distributed like the reals; above 1 when they crowd dense real regions; not bounded by 1). Coverage:
share of real samples whose ball holds at least one fake sample (robust to real outliers, which inflate
recall). Density and coverage use strict inequalities (`d < radius`), as the authors' `prdc` package.
"""
from __future__ import annotations

import numpy as np
import torch

from trainers.evaluation import defaults as D


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = D.PRC_K) -> tuple[float, float]:
    r = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    return _coverage(r, f, k), _coverage(f, r, k)


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = D.DC_K) -> tuple[float, float]:
    """(density, coverage) of fake features against real features (Naeem et al. 2020, eqs. 3 and 4):

    density = 1/(k M) sum_j sum_i 1[|Y_j - X_i| < NND_k(X_i)],  coverage = 1/N sum_i 1[min_j |Y_j - X_i| < NND_k(X_i)]
    with X the N real and Y the M fake features and NND_k(X_i) the distance from X_i to its k-th nearest
    other real feature."""
    r = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    radii = _knn_radii(r, k)
    inside = torch.cdist(f, r) < radii[None, :]  # (M fake, N real): fake j in real i's ball
    return float(inside.double().sum() / (k * len(f))), float(inside.any(dim=0).double().mean())


def _knn_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point (+1: each point is its own nearest)."""
    if len(points) <= k:
        raise ValueError(f"{len(points)} points: a k-NN radius with k = {k} needs at least {k + 1}")
    return torch.cdist(points, points).kthvalue(k + 1, dim=1).values


def _coverage(manifold: torch.Tensor, probes: torch.Tensor, k: int) -> float:
    """Share of `probes` within the k-NN radius of at least one `manifold` point."""
    radii = _knn_radii(manifold, k)
    d_pm = torch.cdist(probes, manifold)
    return float((d_pm <= radii[None, :]).any(dim=1).double().mean())
