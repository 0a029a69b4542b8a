"""Held-out real images: the data source's test split, never trained on, as a second reference.

Two uses, both from the features an evaluation already has (the N real training-split images and the N
synthetic ones) plus the held-out images' features, extracted once per (extractor, split) and cached:

- FID against the test split beside FID against the training split *at the same n* (the test split is
  usually smaller than N; FID's bias depends on n): `fid_test` and `fid_train_at_test_n`, the first n of the
  N synthetic images against n held-out images and against n of the N reference images (as
  `trainers.evaluation.yardstick.Yardstick.score` draws them);
- the calibrated memorisation shares (`memorisation.calibrated_shares`): synthetic->train nearest distances
  against held-out->train ones, the "train" images being the N reference images FID uses.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from trainers import metric_keys as K
from trainers.atomic import atomic_path
from trainers.errors import DataError
from trainers.evaluation import defaults as D
from trainers.evaluation.fid import fid_from_features
from trainers.evaluation.memorisation import Calibration, calibrated_shares, nearest_distances

SHARE_KEYS = {1: (K.MEMORISATION_SHARE_P1, K.MEMORISATION_HELDOUT_SHARE_P1),
              5: (K.MEMORISATION_SHARE_P5, K.MEMORISATION_HELDOUT_SHARE_P5)}
PIXEL_SHARE_KEYS = {1: (K.MEMORISATION_PIXEL_SHARE_P1, K.MEMORISATION_PIXEL_HELDOUT_SHARE_P1),
                    5: (K.MEMORISATION_PIXEL_SHARE_P5, K.MEMORISATION_PIXEL_HELDOUT_SHARE_P5)}
assert set(SHARE_KEYS) == set(D.MEMORISATION_PERCENTILES), "metric keys name the percentiles: keep them in step"


def load_heldout(cfg: Any, cache_dir: Path | None) -> tuple[Any, str]:
    """(the test split of cfg's data, restricted to cfg.class_subset, or None; why it is None, else "")."""
    from trainers.data import load_split, task_options

    try:
        test = load_split(cfg.data, "test", cfg.resolution, hist_eq=cfg.hist_eq, cache_dir=cache_dir,
                          **task_options(cfg))
        test = test.subset_class(cfg.class_subset) if cfg.class_subset else test
    except DataError as exc:
        return None, f"no usable test split ({str(exc).splitlines()[0][:200]})"
    if len(test) < 2:
        return None, f"the test split holds {len(test)} image(s)"
    return test, ""


def heldout_index(n_heldout: int, n: int) -> np.ndarray:
    """Indices of the min(n, n_heldout) held-out images used (the yardstick's draw of the test split)."""
    return np.sort(np.random.default_rng(D.REAL_SUBSET_SEED).permutation(n_heldout)[:min(n, n_heldout)])


def heldout_features(extractor: Any, heldout: Any, n: int, cache_dir: Path) -> np.ndarray:
    """Features of the held-out images `heldout_index` picks, cached on disk (extractor weights in the key)."""
    idx = heldout_index(len(heldout), n)
    sha = getattr(extractor, "weights_sha256", "") or "nohash"
    key = hashlib.sha1(f"{heldout.fingerprint}|heldout|{extractor.name}|{sha}|{len(idx)}|{D.REAL_SUBSET_SEED}"
                       .encode()).hexdigest()[:16]
    path = Path(cache_dir) / "stats" / f"heldout-{extractor.name}-n{len(idx)}-{key}.npy"
    if path.is_file():
        return np.load(path)
    feats = extractor(heldout.select(idx, f"heldout-{len(idx)}").to_tensor())
    with atomic_path(path) as tmp:
        np.save(tmp, feats)
    return feats


def heldout_metrics(real: np.ndarray, fake: np.ndarray, heldout: np.ndarray | None, *,
                    fid_ok: bool = True) -> dict[str, float]:
    """fid_test, fid_train_at_test_n, eval_test_n and the feature-space memorisation shares and flag.

    real: the N reference (training-split) features in the evaluator's order; fake: the N synthetic ones;
    heldout: the held-out features (`heldout_features`), None when the source has no test split (NaN values).
    fid_ok=False leaves the two FIDs NaN (too few images for a covariance of that dimension)."""
    if heldout is None:
        return {K.FID_TEST: math.nan, K.FID_TRAIN_AT_TEST_N: math.nan, K.EVAL_TEST_N: math.nan,
                **calibration_row(Calibration.unmeasured(), pixel=False)}
    n_t = len(heldout)
    out: dict[str, float] = {K.EVAL_TEST_N: float(n_t)}
    out[K.FID_TEST] = fid_from_features(heldout, fake[:n_t]) if fid_ok else math.nan
    out[K.FID_TRAIN_AT_TEST_N] = fid_from_features(real[:n_t], fake[:n_t]) if fid_ok else math.nan
    fake_nn, _ = nearest_distances(fake, real)
    heldout_nn, _ = nearest_distances(heldout, real)
    out.update(calibration_row(calibrated_shares(fake_nn, heldout_nn), pixel=False))
    return out


def calibration_row(cal: Calibration, *, pixel: bool) -> dict[str, float]:
    """A Calibration as metric keys (feature space, or pixels with pixel=True)."""
    keys = PIXEL_SHARE_KEYS if pixel else SHARE_KEYS
    out = {}
    for p, (share, heldout_share) in keys.items():
        out[share] = cal.shares.get(p, math.nan)
        out[heldout_share] = cal.heldout_shares.get(p, math.nan)
    out[K.MEMORISATION_PIXEL_FLAG_P if pixel else K.MEMORISATION_FLAG_P] = cal.p_value
    out[K.MEMORISATION_PIXEL_FLAGGED if pixel else K.MEMORISATION_FLAGGED] = cal.flagged
    return out
