"""Downstream usefulness of synthetic X-rays, always tested on the official real test split.

* TRTR: train on real train, validate on real val (the baseline). Trained once per (data, resolution,
  classifier, epochs, patience, seed) and cached as JSON, so a study pays for it once, not per trial.
* TSTR (seed 000): train only on `tstr_samples` synthetic labelled images from a conditional generator
  (in a trial) or from one generator per class (`gan-study tstr`), labels in the real training split's ratio; validate on a held-out synthetic set (a fifth as many,
  another latent seed) or on real val (`tstr_validation`).
* augment (seed 001): real train plus `augment_samples` synthetic images of the minority class (fewest
  real training images); `augment_gain` = its accuracy minus TRTR's.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from trainers import metric_keys as K
from trainers.atomic import atomic_path, build_lock
from trainers.config import TrialConfig
from trainers.errors import ConfigError
from trainers.evaluation.classifier_models import classification_report, fit_classifier, seeded_classifier
from trainers.evaluation.sampling import sample_images

DOWNSTREAM_ERROR = "downstream_error"
TSTR_SEED, TSTR_VAL_SEED, AUGMENT_SEED = 2024, 2025, 2026  # latent seeds, distinct from FID's
Sampler = Callable[[torch.Tensor, int], torch.Tensor]  # (labels, latent seed) -> images (N, 1, R, R) in [-1, 1]


def run_downstream(cfg: TrialConfig, G: nn.Module, *, device: torch.device | str = "cpu",
                   cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Metrics of every protocol in cfg.downstream, plus the TRTR baseline (keys prefixed tstr_/augment_/trtr_).

    The real splits are loaded here (from the on-disk cache), not taken from the trial: a trial
    trained on one class (class_subset) still needs every class for the classifiers.
    """
    real_train, real_val, real_test = real_splits(cfg)
    names = real_train.class_names
    out: dict[str, Any] = {}
    trtr = trtr_baseline(cfg, real_train, real_val, real_test, device, cache_dir)
    out.update({K.TRTR_PREFIX + k: v for k, v in trtr.items()})
    protocols = cfg.downstream_protocols

    if "tstr" in protocols:
        out.update(tstr(cfg, conditional_sampler(G, cfg, device), real_train, real_val, real_test, device))

    if "augment" in protocols:
        minority = int(np.argmin(np.bincount(real_train.labels, minlength=len(names))))
        if cfg.conditioning == "none" and cfg.class_subset != names[minority]:
            raise ConfigError(
                f"downstream='augment' adds synthetic {names[minority]} images: an unconditional generator must be "
                f"trained with class_subset={names[minority]!r} (got {cfg.class_subset!r}), or use conditioning='acgan'"
            )
        labels = torch.full((cfg.augment_samples,), minority, dtype=torch.long)
        x_syn = sample_images(G, len(labels), cfg, device,
                              labels=labels if cfg.conditioning != "none" else None, seed=AUGMENT_SEED)
        x = torch.cat([real_train.to_tensor(), x_syn])
        y = torch.cat([torch.as_tensor(real_train.labels), labels])
        m = _protocol(K.AUGMENT_PREFIX, cfg, x, y, real_val.to_tensor(), torch.as_tensor(real_val.labels),
                      real_test, names, device)
        out.update(m)
        out[K.AUGMENT_GAIN] = m[K.AUGMENT_PREFIX + K.ACCURACY] - trtr[K.ACCURACY]
    return out


def conditional_sampler(G: nn.Module, cfg: TrialConfig, device: torch.device | str) -> Sampler:
    """Labelled images from one conditional generator."""
    return lambda labels, seed: sample_images(G, len(labels), cfg, device, labels=labels, seed=seed)


def per_class_sampler(generators: dict[int, tuple[nn.Module, TrialConfig]], device: torch.device | str) -> Sampler:
    """Labelled images from one generator per class (label -> (G, its config)), e.g. two
    unconditional GANs trained with class_subset NORMAL and PNEUMONIA."""
    def sample(labels: torch.Tensor, seed: int) -> torch.Tensor:
        out: torch.Tensor | None = None
        for label in labels.unique().tolist():
            G, gcfg = generators[label]
            idx = (labels == label).nonzero().flatten()
            own = labels[idx] if gcfg.conditioning != "none" else None
            x = sample_images(G, len(idx), gcfg, device, labels=own, seed=seed + 7919 * label)
            out = x.new_empty((len(labels), *x.shape[1:])) if out is None else out
            out[idx] = x
        assert out is not None
        return out
    return sample


def tstr(cfg: TrialConfig, sampler: Sampler, real_train: Any, real_val: Any, real_test: Any,
         device: torch.device | str) -> dict[str, Any]:
    """Train on cfg.tstr_samples synthetic images (labels in the real train ratio), test on real test."""
    counts = np.bincount(real_train.labels, minlength=len(real_train.class_names))
    labels = _labels_in_ratio(counts, cfg.tstr_samples)
    x = sampler(labels, TSTR_SEED)
    if cfg.tstr_validation == "synthetic":
        val_y = _labels_in_ratio(counts, max(2, cfg.tstr_samples // 5))
        val_x = sampler(val_y, TSTR_VAL_SEED)
    else:
        val_x, val_y = real_val.to_tensor(), torch.as_tensor(real_val.labels)
    return _protocol(K.TSTR_PREFIX, cfg, x, labels, val_x, val_y, real_test, real_train.class_names, device)


def real_splits(cfg: TrialConfig) -> tuple[Any, Any, Any]:
    """The real train (all classes, cfg.data_limit), val and test splits at the trial's resolution."""
    from trainers.data import load_split, task_options

    split = lambda s, **kw: load_split(cfg.data, s, cfg.resolution, hist_eq=cfg.hist_eq, seed=cfg.seed,  # noqa: E731
                                       **task_options(cfg), **kw)
    return split("train", limit=cfg.data_limit), split("val"), split("test")


def trtr_baseline(cfg: TrialConfig, train: Any, val: Any, test: Any, device: torch.device | str,
                  cache_dir: str | Path | None = None) -> dict[str, float]:
    """The real-data baseline, trained once per node and cached under cache_dir/downstream/."""
    from trainers.data import default_cache_dir

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    # v2: seeded initial weights and classifier_repeats (baselines cached before are not comparable)
    key = hashlib.sha1(f"v2|{train.fingerprint}|{val.fingerprint}|{test.fingerprint}|{cfg.classifier}|"
                       f"{cfg.classifier_epochs}|{cfg.classifier_patience}|{cfg.seed}|{cfg.classifier_repeats}"
                       .encode()).hexdigest()[:16]
    path = cache / "downstream" / f"trtr-{cfg.classifier}-{cfg.resolution}px-{key}.json"
    with build_lock(path):
        if path.is_file():
            return json.loads(path.read_text())
        return _train_trtr(cfg, train, val, test, device, path)


def _train_trtr(cfg: TrialConfig, train: Any, val: Any, test: Any, device: torch.device | str,
                path: Path) -> dict[str, float]:
    report = fit_and_report(cfg, train.to_tensor(), torch.as_tensor(train.labels), val.to_tensor(),
                            torch.as_tensor(val.labels), test, train.class_names, device)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    return report


def _protocol(prefix: str, cfg: TrialConfig, x: torch.Tensor, y: torch.Tensor, val_x: torch.Tensor,
              val_y: torch.Tensor, test: Any, names: tuple[str, ...], device: torch.device | str) -> dict[str, Any]:
    """Fit on (x, y), early-stop on (val_x, val_y), report on the real `test` split (named by its fingerprint)."""
    if not (torch.isfinite(x).all() and torch.isfinite(val_x).all()):
        return {prefix + K.ACCURACY: math.nan, prefix + K.BALANCED_ACCURACY: math.nan, prefix + K.ROC_AUC: math.nan,
                DOWNSTREAM_ERROR: f"{prefix.rstrip('_')}: generator produced non-finite images"}
    report = fit_and_report(cfg, x, torch.as_tensor(y), val_x, torch.as_tensor(val_y), test, names, device)
    return {prefix + k: v for k, v in report.items()}


def classifier_seeds(cfg: TrialConfig) -> list[int]:
    """One seed per fit; TRTR and a trial's protocols use the same ones, so fit k of each is paired."""
    return [cfg.seed + 1000 * k for k in range(cfg.classifier_repeats)]


def fit_and_report(cfg: TrialConfig, x: torch.Tensor, y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
                   test: Any, names: tuple[str, ...], device: torch.device | str) -> dict[str, Any]:
    """classifier_repeats fits (seeded weights and batches), each tested on the real `test` split; every
    metric averaged over the fits, plus the number of fits and (from two fits) the spread of their accuracies."""
    reports, test_x = [], test.to_tensor()
    for seed in classifier_seeds(cfg):
        model, _ = fit_classifier(seeded_classifier(cfg.classifier, cfg.resolution, len(names), seed), x, y,
                                  val_x, val_y, epochs=cfg.classifier_epochs, patience=cfg.classifier_patience,
                                  seed=seed, device=device)
        reports.append(classification_report(model, test_x, test.labels, names, device))
    accuracies = [r[K.ACCURACY] for r in reports]
    out: dict[str, Any] = {k: float(np.mean([r[k] for r in reports])) for k in reports[0]}
    out[K.FITS] = float(len(reports))
    if len(reports) > 1:
        out[K.ACCURACY_FIT_SD] = float(np.std(accuracies, ddof=1))
    out[K.TEST_SPLIT] = test.fingerprint
    return out


def _labels_in_ratio(counts: np.ndarray, n: int) -> torch.Tensor:
    """n labels following the class counts' ratio (largest-remainder rounding), grouped by class."""
    share = counts / counts.sum() * n
    k = np.floor(share).astype(int)
    k[np.argsort(share - k)[::-1][: n - k.sum()]] += 1
    return torch.as_tensor(np.repeat(np.arange(len(counts)), k), dtype=torch.long)
