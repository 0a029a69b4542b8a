"""The trial's evaluation entry point: how good (FID, KID, precision/recall, diversity, memorisation)
are a generator's synthetic X-rays. How useful they are (downstream classifiers) is
`protocols.run_downstream`, which the training loop calls itself.

What each FID compares: N generated images (fixed latent seed; conditional generators in the real
class ratio) against N real images drawn with a fixed seed from the yardstick's reference split
(`load_reference_split`: the data source's whole labelled training split at the trial's resolution and
preprocessing, restricted to `class_subset` when the trial trains on one class), both through one
extractor per (source, resolution, preprocessing). N = min(eval_samples, reference size). The trial's
seed, data_limit and validation carve change neither side, so values with the same `eval_extractor`
and `eval_n` are comparable across every trial of a dataset. Real-data features are cached on disk;
each evaluation then costs only the N generated samples' features.

Beside them, from the same features (cheap: no extra image through the extractor but, once per dataset, the
held-out images): density and coverage (Naeem et al. 2020) next to precision/recall, FID against the held-out
test split beside the training split at the same n, and the held-out calibrated memorisation shares
(`heldout.py`). Pixel-space memorisation and other extractors are `gan-study rescore` (study/rescore_command.py).
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from trainers import metric_keys as K
from trainers.atomic import atomic_path
from trainers.config import TrialConfig
from trainers.errors import ConfigError
from trainers.evaluation import defaults as D
from trainers.evaluation.diversity import diversity
from trainers.evaluation.fid import fid_from_features
from trainers.evaluation.kid import kid
from trainers.evaluation.heldout import heldout_features, heldout_metrics, load_heldout
from trainers.evaluation.memorisation import memorisation_audit
from trainers.evaluation.prc import density_coverage, precision_recall
from trainers.evaluation.sampling import check_images, sample_images

EVAL_ERROR = "eval_error"
DIVERSITY_KIND = "diversity_kind"


def reference_set(cfg: TrialConfig, cache_dir: Path | None = None) -> Any:
    """The yardstick's real images for cfg's data source, resolution and preprocessing (every class)."""
    from trainers.data import load_reference_split, task_options

    return load_reference_split(cfg.data, cfg.resolution, hist_eq=cfg.hist_eq, cache_dir=cache_dir,
                                **task_options(cfg))


def build_extractor(cfg: TrialConfig, reference: Any, device: torch.device | str, cache_dir: Path, *,
                    seed: int = 0) -> Any:
    """cfg's feature extractor; the domain one is trained on `reference` (all classes) once per dataset.

    `seed` seeds the domain extractor's initialisation and training (trials use 0; the yardstick's
    extractor-seed check retrains with others); a pretrained extractor has none and ignores it."""
    if cfg.extractor == "inception":
        from trainers.evaluation.feature_inception import InceptionExtractor

        return InceptionExtractor(cfg.inception_dims, device)
    if cfg.extractor == "xrv":
        from trainers.evaluation.feature_xrv import XrvExtractor

        return XrvExtractor(device)
    from trainers.evaluation.feature_domain import DomainExtractor

    return DomainExtractor(reference, cache_dir, device, seed=seed, hist_eq=cfg.hist_eq)


class Evaluator:
    """Evaluate a trial's generator against its dataset's fixed reference images.

    `reference` defaults to `reference_set(cfg)`; pass a preloaded ImageSet (every class) to reuse one.

    Example:
        >>> ev = Evaluator(cfg)  # doctest: +SKIP
        >>> ev.evaluate(G)["fid"]  # doctest: +SKIP
    """

    def __init__(self, cfg: TrialConfig, reference: Any = None, *, device: torch.device | str = "cpu",
                 cache_dir: str | Path | None = None, heldout: Any = None):
        from trainers.data import default_cache_dir

        self.cfg, self.device = cfg, torch.device(device)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.reference = reference if reference is not None else reference_set(cfg, self.cache_dir)
        # FID compares like with like: a generator trained on one class meets that class's images.
        self.real_set = self.reference.subset_class(cfg.class_subset) if cfg.class_subset else self.reference
        self.n = min(cfg.eval_samples, len(self.real_set))
        self._extractor = None
        self._real: tuple[np.ndarray, np.ndarray] | None = None
        # The held-out images (test split; `heldout` preloads them, class_subset applied): loaded at the first
        # evaluation, with why they are absent when the source has none.
        self._heldout, self._heldout_loaded, self.heldout_missing = heldout, heldout is not None, ""
        self._heldout_feats: np.ndarray | None = None

    @property
    def extractor(self) -> Any:
        if self._extractor is None:
            self._extractor = build_extractor(self.cfg, self.reference, self.device, self.cache_dir)
            if self.n < self._extractor.dim and not self.cfg.allow_low_n:
                raise ConfigError(
                    f"eval_samples={self.n} is below the feature dimension {self._extractor.dim} of "
                    f"{self._extractor.name}: the covariance is rank-deficient; raise eval_samples or set allow_low_n=true"
                )
        return self._extractor

    def real_features(self) -> tuple[np.ndarray, np.ndarray]:
        """(features, labels) of N real training images, cached on disk by a descriptive key."""
        if self._real is None:
            ex = self.extractor
            # The weight hash in the key: an extractor retrained under the same name never reads stale features.
            key = hashlib.sha1(f"{self.real_set.fingerprint}|reference|{self.cfg.resolution}|{ex.name}|"
                               f"{getattr(ex, 'weights_sha256', '')}|{self.n}|"
                               f"{D.REAL_SUBSET_SEED}".encode()).hexdigest()[:16]
            path = self.cache_dir / "stats" / f"real-{ex.name}-n{self.n}-{key}.npz"
            if path.is_file():
                with np.load(path) as f:
                    self._real = (f["features"], f["labels"])
            else:
                idx = np.sort(np.random.default_rng(D.REAL_SUBSET_SEED).permutation(len(self.real_set))[:self.n])
                sub = self.real_set.select(idx, f"eval-real-{self.n}")
                self._real = (ex(sub.to_tensor()), sub.labels)
                with atomic_path(path) as tmp:
                    np.savez(tmp, features=self._real[0], labels=self._real[1])
        return self._real

    def heldout_features(self) -> np.ndarray | None:
        """Features of min(N, test size) held-out images, cached on disk; None without a test split."""
        if not self._heldout_loaded:
            self._heldout, self.heldout_missing = load_heldout(self.cfg, self.cache_dir)
            self._heldout_loaded = True
        if self._heldout is not None and self._heldout_feats is None:
            self._heldout_feats = heldout_features(self.extractor, self._heldout, self.n, self.cache_dir)
        return self._heldout_feats

    def evaluate(self, G: nn.Module) -> dict[str, Any]:
        """FID, KID, precision/recall, density/coverage, diversity, per-class FID (conditional), memorisation,
        FID against the held-out test split and the held-out calibrated memorisation shares; NaN for NaN images."""
        cfg = self.cfg
        real, real_labels = self.real_features()
        fake_labels = _labels_like(real_labels, cfg) if cfg.conditioning != "none" else None
        images = sample_images(G, self.n, cfg, self.device, labels=fake_labels)
        check_images(images, cfg.resolution)
        out: dict[str, Any] = {K.EVAL_EXTRACTOR: self.extractor.name, K.EVAL_N: self.n, **extractor_identity(self.extractor)}
        if not torch.isfinite(images).all():
            out.update({k: math.nan for k in K.EVALUATED_METRICS})
            out[EVAL_ERROR] = "generator produced non-finite images"
            return out
        fake = self.extractor(images)
        out.update(feature_metrics(real, fake, self.heldout_features()))
        out[K.MS_SSIM_DIVERSITY], out[DIVERSITY_KIND] = diversity(images)
        if fake_labels is not None:
            for c, name in enumerate(self.real_set.class_names):
                r, f = real[real_labels == c], fake[fake_labels.numpy() == c]
                enough = min(len(r), len(f)) > (2 if cfg.allow_low_n else self.extractor.dim)
                out[f"{K.FID_PER_CLASS_PREFIX}{name}"] = fid_from_features(r, f) if enough else math.nan
        return out


def feature_metrics(real: np.ndarray, fake: np.ndarray, heldout: np.ndarray | None = None) -> dict[str, float]:
    """Every metric of real (N reference) vs fake (N synthetic) features: FID, KID, precision/recall,
    density/coverage, the memorisation ratio, and with held-out features (`heldout.heldout_features`) the
    test-split FIDs and the calibrated memorisation shares (NaN without). `gan-study rescore` calls it too."""
    out: dict[str, float] = {K.FID: fid_from_features(real, fake)}
    out[K.KID_MEAN], out[K.KID_STD] = kid(real, fake)
    out[K.PRECISION], out[K.RECALL] = precision_recall(real, fake)
    enough = min(len(real), len(fake)) > D.DC_K
    out[K.DENSITY], out[K.COVERAGE] = density_coverage(real, fake) if enough else (math.nan, math.nan)
    out[K.MEMORISATION_RATIO], out[K.MEMORISATION_MIN_DIST] = memorisation_audit(real, fake)
    out.update(heldout_metrics(real, fake, heldout))
    return out


def calculate_metrics(real_images: torch.Tensor, fake_images: torch.Tensor, *, extractor: Any) -> dict[str, float]:
    """Functional API for notebooks: metrics between two image sets (N, 1, R, R) in [-1, 1]."""
    real, fake = extractor(real_images), extractor(fake_images)
    out = {K.FID: fid_from_features(real, fake), K.EVAL_EXTRACTOR: extractor.name, K.EVAL_N: min(len(real), len(fake)),
           **extractor_identity(extractor)}
    out[K.KID_MEAN], out[K.KID_STD] = kid(real, fake)
    out[K.PRECISION], out[K.RECALL] = precision_recall(real, fake)
    return out


def extractor_identity(extractor: Any) -> dict[str, Any]:
    """The extractor's weight hash and training-set size, as every FID row records them."""
    return {K.EVAL_EXTRACTOR_SHA256: getattr(extractor, "weights_sha256", ""),
            K.EVAL_EXTRACTOR_TRAIN_N: float(getattr(extractor, "train_n", math.nan))}


def _labels_like(real_labels: np.ndarray, cfg: TrialConfig) -> torch.Tensor:
    """Class labels for conditional samples in the real class ratio, so FID compares like with like."""
    return torch.as_tensor(np.asarray(real_labels), dtype=torch.long)
