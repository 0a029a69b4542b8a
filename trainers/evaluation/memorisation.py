"""Memorisation audit: is any training image reproduced?

GANs are sold as privacy-preserving. For each synthetic sample we take the distance to its nearest
training image (feature space); for each training image, the distance to its nearest *other*
training image. `memorisation_ratio` = median(synthetic->train) / median(train->train): near or
above 1 means samples are as far from the training set as training images are from each other;
well below 1 means copies. `memorisation_min_dist` is the closest any sample came.
"""
from __future__ import annotations

import numpy as np
import torch


def memorisation_audit(train: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    t = torch.as_tensor(np.asarray(train), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    d_tt = torch.cdist(t, t)
    d_tt.fill_diagonal_(float("inf"))
    nn_train = d_tt.min(dim=1).values
    nn_fake = torch.cdist(f, t).min(dim=1).values
    ratio = float(nn_fake.median() / nn_train.median().clamp_min(1e-12))
    return ratio, float(nn_fake.min())
