"""Memorisation audit: is any training image reproduced?

GANs are sold as privacy-preserving. Two views, both on nearest-neighbour distances to the training images:

- `memorisation_audit` (ratio): for each synthetic sample the distance to its nearest training image; for
  each training image, the distance to its nearest *other* training image. `memorisation_ratio` =
  median(synthetic->train) / median(train->train): near or above 1 means samples are as far from the
  training set as training images are from each other; well below 1 means copies.
  `memorisation_min_dist` is the closest any sample came.
- `calibrated_shares` (held-out calibrated, Dar et al. 2024 style): the same synthetic->train distances
  against those of *held-out* real images (the test split, never trained on) to the same training images.
  The share of synthetic images closer to a training image than the 1st (5th) percentile of the held-out
  distances is about 1% (5%) for a generator that does not copy; a generator that copies puts far more
  there. The held-out images' own share (cross-fitted: thresholds from one random half, share of the
  other) is the calibrated reference beside it. Flagged: the 1st-percentile share is above 1% beyond
  chance (one-sided exact binomial p < MEMORISATION_FLAG_ALPHA).

Distances are Euclidean, in a feature space or in pixels (images in [-1, 1], flattened: `pixel_vectors`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainers.evaluation import defaults as D


def memorisation_audit(train: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    t = torch.as_tensor(np.asarray(train), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    d_tt = torch.cdist(t, t)
    d_tt.fill_diagonal_(float("inf"))
    nn_train = d_tt.min(dim=1).values
    nn_fake = torch.cdist(f, t).min(dim=1).values
    ratio = float(nn_fake.median() / nn_train.median().clamp_min(1e-12))
    return ratio, float(nn_fake.min())


def nearest_distances(queries: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor, *,
                      batch: int = D.DISTANCE_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of each query row's nearest reference row, Euclidean, in float64.

    Blocks of `batch` queries (|q|^2 + |r|^2 - 2 q.r, clipped at 0): memory stays batch x len(reference)
    however many queries; an exact copy gets a distance of ~1e-6 or less, not a float32 rounding error."""
    q = torch.as_tensor(np.asarray(queries), dtype=torch.float64).flatten(1)
    r = torch.as_tensor(np.asarray(reference), dtype=torch.float64).flatten(1)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dimensions, the reference {r.shape[1]}")
    r2 = (r * r).sum(dim=1)
    dist, idx = [], []
    for i in range(0, len(q), batch):
        block = q[i:i + batch]
        d2 = (block * block).sum(dim=1, keepdim=True) + r2[None, :] - 2.0 * block @ r.T
        best = d2.min(dim=1)
        dist.append(best.values.clamp_min(0).sqrt())
        idx.append(best.indices)
    if not dist:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return torch.cat(dist).numpy(), torch.cat(idx).numpy().astype(np.int64)


def pixel_vectors(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """Images as flat float64 rows in [-1, 1]: uint8 (N, R, R) or float (N, 1, R, R) already in [-1, 1]."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.dtype == np.uint8:
        return x.reshape(len(x), -1).astype(np.float64) / 127.5 - 1.0
    return x.reshape(len(x), -1).astype(np.float64)


@dataclass
class Calibration:
    """Synthetic images' copy shares beside the held-out reference (see the module docstring)."""

    percentiles: tuple[int, ...]
    thresholds: dict[int, float] = field(default_factory=dict)  # percentile -> held-out->train distance
    shares: dict[int, float] = field(default_factory=dict)  # synthetic share below each threshold
    heldout_shares: dict[int, float] = field(default_factory=dict)  # held-out share (cross-fitted halves)
    p_value: float = math.nan  # one-sided binomial test of shares[p0] against p0 / 100 (p0: the first percentile)
    flagged: float = math.nan  # 1.0 when p_value < alpha, 0.0 when not, NaN when not measured

    @classmethod
    def unmeasured(cls, percentiles: tuple[int, ...] = D.MEMORISATION_PERCENTILES) -> "Calibration":
        nan = {p: math.nan for p in percentiles}
        return cls(tuple(percentiles), dict(nan), dict(nan), dict(nan))


def calibrated_shares(fake_nn: np.ndarray, heldout_nn: np.ndarray, *,
                      percentiles: tuple[int, ...] = D.MEMORISATION_PERCENTILES,
                      alpha: float = D.MEMORISATION_FLAG_ALPHA, seed: int = D.HELDOUT_SPLIT_SEED) -> Calibration:
    """Shares of synthetic images nearer a training image than the held-out percentiles, with the held-out
    reference share and the flag. fake_nn / heldout_nn: nearest-training-image distances (`nearest_distances`)
    of the synthetic and of the held-out images, in one space and against the same training images."""
    from scipy.stats import binom

    fake_nn, heldout_nn = np.asarray(fake_nn, np.float64), np.asarray(heldout_nn, np.float64)
    if len(fake_nn) == 0 or len(heldout_nn) < 2 or not (np.isfinite(fake_nn).all() and np.isfinite(heldout_nn).all()):
        return Calibration.unmeasured(tuple(percentiles))
    out = Calibration(tuple(percentiles))
    halves = np.array_split(np.random.default_rng(seed).permutation(len(heldout_nn)), 2)
    a, b = heldout_nn[halves[0]], heldout_nn[halves[1]]
    for p in percentiles:
        t = float(np.percentile(heldout_nn, p))
        out.thresholds[p] = t
        out.shares[p] = float((fake_nn < t).mean())
        # Thresholds from one half, share of the other (both ways): what a non-copying sample of the
        # held-out size scores, noise included; in-sample it would be p% by construction.
        out.heldout_shares[p] = float(((b < np.percentile(a, p)).mean() + (a < np.percentile(b, p)).mean()) / 2)
    p0 = percentiles[0]
    below = int((fake_nn < out.thresholds[p0]).sum())
    out.p_value = float(binom.sf(below - 1, len(fake_nn), p0 / 100.0))
    out.flagged = float(out.p_value < alpha)
    return out


@dataclass
class NearestPairs:
    """The closest synthetic/training pairs in pixel space: pictures for a reviewer, distances beside them."""

    fake: np.ndarray  # uint8 (k, R, R) synthetic images, closest first
    train: np.ndarray  # uint8 (k, R, R) each one's nearest training image
    distances: np.ndarray  # float64 (k,) pixel distances (images in [-1, 1])
    train_index: np.ndarray  # int64 (k,) index into the training images searched
    heldout_thresholds: dict[int, float] = field(default_factory=dict)  # held-out pixel-distance percentiles


def nearest_pairs(fake: np.ndarray | torch.Tensor, train: np.ndarray, *, k: int = D.NEAREST_PAIRS,
                  heldout: np.ndarray | None = None,
                  percentiles: tuple[int, ...] = D.MEMORISATION_PERCENTILES) -> NearestPairs:
    """The k synthetic images nearest to a training image (each synthetic image once), in pixels.

    fake: float (N, 1, R, R) in [-1, 1] or uint8 (N, R, R); train, heldout: uint8 (M, R, R). With `heldout`
    the held-out->train distance percentiles come along, so a picture's distance has its yardstick."""
    fv, tv = pixel_vectors(fake), pixel_vectors(train)
    dist, idx = nearest_distances(fv, tv)
    order = np.argsort(dist, kind="stable")[:k]
    thresholds = {}
    if heldout is not None and len(heldout) >= 2:
        h, _ = nearest_distances(pixel_vectors(heldout), tv)
        thresholds = {p: float(np.percentile(h, p)) for p in percentiles}
    return NearestPairs(fake=to_uint8(fake)[order], train=np.asarray(train)[idx[order]], distances=dist[order],
                        train_index=idx[order], heldout_thresholds=thresholds)


def to_uint8(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 (N, R, R) from float (N, 1, R, R) in [-1, 1] (as `gan-study generate` writes them) or uint8."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.dtype == np.uint8:
        return x.reshape(len(x), x.shape[-2], x.shape[-1])
    return np.round((np.clip(x, -1, 1) + 1) * 127.5).astype(np.uint8).reshape(len(x), x.shape[-2], x.shape[-1])


def save_pairs(path: str | Path, pairs: NearestPairs) -> Path:
    """Write NearestPairs as an .npz (uint8 images, distances, indices, the held-out percentiles) atomically."""
    from trainers.atomic import atomic_path

    pct = sorted(pairs.heldout_thresholds)
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, fake=pairs.fake, train=pairs.train, distances=pairs.distances,
                                train_index=pairs.train_index, percentiles=np.asarray(pct, dtype=np.int64),
                                thresholds=np.asarray([pairs.heldout_thresholds[p] for p in pct], dtype=np.float64))
    return Path(path)


def load_pairs(path: str | Path) -> NearestPairs:
    with np.load(path) as f:
        return NearestPairs(fake=f["fake"], train=f["train"], distances=f["distances"], train_index=f["train_index"],
                            heldout_thresholds=dict(zip(f["percentiles"].tolist(), f["thresholds"].tolist())))
