"""Re-scoring a trial's kept generator with any extractor (`gan-study rescore`), as its evaluation measured it.

A `Rescorer` is one measurement setting (the trial config's data source, resolution, preprocessing and class
subset, and N) with one extractor (`extractors.ExtractorChoice`): the same N real reference images, the same
latent seed and class labels as `Evaluator.evaluate`, so the domain extractor with seed 0 reproduces the FID the
trial recorded. Beside the feature metrics (`evaluator.feature_metrics`: FID, KID, precision/recall,
density/coverage, test-split FID, calibrated memorisation shares) it measures the memorisation shares in pixels
and finds the closest synthetic/training pairs (pictures for the dashboard); those two need no extractor.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainers import metric_keys as K
from trainers.atomic import atomic_path
from trainers.evaluation import defaults as D
from trainers.evaluation.extractors import ExtractorChoice, build
from trainers.evaluation.heldout import calibration_row, heldout_features, heldout_index, load_heldout
from trainers.evaluation.memorisation import (Calibration, NearestPairs, calibrated_shares, nearest_distances,
                                              nearest_pairs, pixel_vectors)


def setting_of(cfg: Any, n: int) -> tuple:
    """What a Rescorer depends on besides the extractor: trials sharing it share one."""
    return (cfg.data, cfg.resolution, cfg.hist_eq, cfg.class_subset, cfg.data_task, cfg.data_uncertain,
            cfg.data_views, int(n))


class Rescorer:
    """Scores generated images of one setting with one extractor; every real-image feature is cached on disk.

    Example:
        >>> r = Rescorer(cfg, 1024, ExtractorChoice("domain", seed=1))  # doctest: +SKIP
        >>> r.score(r.images(G, cfg))["fid"]                               # doctest: +SKIP
    """

    def __init__(self, cfg: Any, n: int, choice: ExtractorChoice, *, cache_dir: str | Path | None = None,
                 device: torch.device | str = "cpu", reference: Any = None, heldout: Any = None):
        from trainers.data import default_cache_dir
        from trainers.evaluation.evaluator import reference_set

        self.cfg, self.choice, self.device = cfg, choice, torch.device(device)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.reference_all = reference if reference is not None else reference_set(cfg, self.cache_dir)
        self.real_set = self.reference_all.subset_class(cfg.class_subset) if cfg.class_subset else self.reference_all
        self.n = min(int(n), len(self.real_set))
        self.real_index = np.sort(np.random.default_rng(D.REAL_SUBSET_SEED).permutation(len(self.real_set))[:self.n])
        self.heldout_missing = ""
        if heldout is None:
            heldout, self.heldout_missing = load_heldout(cfg, self.cache_dir)
        self.heldout = heldout
        self._extractor: Any = None
        self._real: np.ndarray | None = None
        self._heldout_feats: np.ndarray | None = None
        self._pixel_heldout_nn: np.ndarray | None = None

    @property
    def extractor(self) -> Any:
        if self._extractor is None:
            self._extractor = build(self.choice, reference=self.reference_all, cache_dir=self.cache_dir,
                                    device=self.device, hist_eq=self.cfg.hist_eq)
        return self._extractor

    def real_features(self) -> np.ndarray:
        """Features of the N reference images (the evaluator's draw), cached under the extractor's weight hash."""
        if self._real is None:
            ex = self.extractor
            key = hashlib.sha1(f"{self.real_set.fingerprint}|reference|{ex.name}|{ex.weights_sha256}|{self.n}|"
                               f"{D.REAL_SUBSET_SEED}".encode()).hexdigest()[:16]
            path = self.cache_dir / "stats" / f"rescore-real-{ex.name}-n{self.n}-{key}.npy"
            if path.is_file():
                self._real = np.load(path)
            else:
                self._real = ex(self.real_set.select(self.real_index, f"eval-real-{self.n}").to_tensor())
                with atomic_path(path) as tmp:
                    np.save(tmp, self._real)
        return self._real

    def heldout_features(self) -> np.ndarray | None:
        if self.heldout is not None and self._heldout_feats is None:
            self._heldout_feats = heldout_features(self.extractor, self.heldout, self.n, self.cache_dir)
        return self._heldout_feats

    def images(self, G: torch.nn.Module, cfg: Any) -> torch.Tensor:
        """The N images `Evaluator.evaluate` draws from G (fixed latent seed; the real class labels if conditional)."""
        from trainers.evaluation.sampling import check_images, sample_images

        labels = (torch.as_tensor(self.real_set.labels[self.real_index], dtype=torch.long)
                  if cfg.conditioning != "none" else None)
        images = sample_images(G, self.n, cfg, self.device, labels=labels)
        check_images(images, self.cfg.resolution)
        return images

    def score(self, images: torch.Tensor) -> dict[str, Any]:
        """The feature metrics of N generated images with this extractor, with its name, N and weight hash."""
        from trainers.evaluation.evaluator import extractor_identity, feature_metrics

        ex = self.extractor
        out: dict[str, Any] = {K.EVAL_EXTRACTOR: ex.name, K.EVAL_N: self.n, **extractor_identity(ex)}
        if not torch.isfinite(images).all():
            return {**out, **{k: math.nan for k in K.RESCORED_METRICS if k not in out}}
        from trainers.evaluation.yardstick import _blas_threads

        real, fake, heldout = self.real_features(), ex(images), self.heldout_features()
        with _blas_threads(ex.dim):  # small eigendecompositions: one BLAS thread (see yardstick._blas_threads)
            out.update(feature_metrics(real, fake, heldout))
        return out

    # ---- pixels: no extractor
    def pixel_memorisation(self, images: torch.Tensor) -> dict[str, float]:
        """The calibrated memorisation shares in pixels: against the same N reference images and held-out images."""
        if self.heldout is None or not torch.isfinite(images).all():
            return calibration_row(Calibration.unmeasured(), pixel=True)
        train = pixel_vectors(np.asarray(self.real_set.images[self.real_index]))
        if self._pixel_heldout_nn is None:
            held = self.heldout.images[heldout_index(len(self.heldout), self.n)]
            self._pixel_heldout_nn, _ = nearest_distances(pixel_vectors(np.asarray(held)), train)
        fake_nn, _ = nearest_distances(pixel_vectors(images), train)
        return calibration_row(calibrated_shares(fake_nn, self._pixel_heldout_nn), pixel=True)

    def pairs(self, images: torch.Tensor, k: int = D.NEAREST_PAIRS) -> NearestPairs:
        """The k closest synthetic/training pairs in pixels, searched over the whole reference split (a fixed
        random PAIRS_MAX_TRAIN of it when larger), with the held-out distance percentiles for scale."""
        train = np.asarray(self.real_set.images)
        if len(train) > D.PAIRS_MAX_TRAIN:
            train = train[np.sort(np.random.default_rng(0).permutation(len(train))[:D.PAIRS_MAX_TRAIN])]
        held = (np.asarray(self.heldout.images[heldout_index(len(self.heldout), self.n)])
                if self.heldout is not None else None)
        return nearest_pairs(images, train, k=k, heldout=held)
