"""Measuring the FID yardstick itself: what FID two samples of *real* images get (the floor), and how
much a study's FIDs move when the domain extractor is retrained with another seed.

- **Floor**: FID between two disjoint random halves of the reference split (the images every trial's
  FID is measured against), at the study's N and at N/2 and 2N (FID's positive bias shrinks with N),
  and between the real train split and the real test split. A half needs 2n reference images; when the
  split holds fewer the row is skipped with the reason, never measured at a smaller n. The test split
  is usually smaller than N: the train-vs-test row is then measured at n = the test split's size, says
  so, and gets a halves row at that same n beside it, so the two compare like with like.
- **Re-scoring**: FID of each trial's generated images with extractors trained with several seeds,
  against the training-split reference at N (seed 0 is what the trial itself measured) and against the
  held-out test split (beside the training split at the same n).

Interpreting these numbers (relative FID, rank agreement, ICC) is `analysis.yardstick`.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainers.atomic import atomic_path
from trainers.config import TrialConfig
from trainers.errors import DataError
from trainers.evaluation import defaults as D
from trainers.evaluation.fid import fid_from_features

VERSION = 1  # bump when a floor's definition changes: part of the cache keys of analysis.yardstick
FLOOR_REPEATS = 50  # random disjoint draws per floor row: the row gives their mean, sd, min and max
FLOOR_SEED = 0  # seeds those draws
EXTRACTOR_SEEDS = (0, 1, 2)  # domain-extractor seeds of the robustness check; 0 is the one trials use
SEEDED_EXTRACTORS = ("domain",)  # extractors trained by the project; pretrained ones have no seed to vary
# TrialConfig keys besides data/resolution/hist_eq/class_subset that change which images a source gives
# (label-sheet sources' task, uncertain-label policy, views); those TrialConfig has are part of a Setting.
DATA_OPTIONS = tuple(f.name for f in fields(TrialConfig) if f.name in ("data_task", "data_uncertain", "data_views"))
HALVES = "train halves"
TRAIN_VS_TEST = "train vs test"


@dataclass(frozen=True)
class Setting:
    """A study's FID measurement setting: what `Evaluator` measured against (data source, resolution,
    preprocessing, class subset), with which extractor kind, at which N."""

    data: str
    resolution: int
    n: int
    extractor: str = "domain"
    inception_dims: int = 2048
    hist_eq: bool = False
    class_subset: str = ""
    data_options: tuple[tuple[str, Any], ...] = ()  # other TrialConfig keys that select the data (DATA_OPTIONS)

    def config(self) -> TrialConfig:
        """A TrialConfig with this setting, for `build_extractor` and `reference_set` (what trials use)."""
        return TrialConfig.from_dict({"data": self.data, "resolution": self.resolution, "hist_eq": self.hist_eq,
                                      "class_subset": self.class_subset, "extractor": self.extractor,
                                      "inception_dims": self.inception_dims, "eval_samples": self.n,
                                      "allow_low_n": True, **dict(self.data_options)})


@dataclass
class FloorRow:
    """One real-vs-real FID: `repeats` random draws of n images per side (NaN values when skipped)."""

    comparison: str  # HALVES or TRAIN_VS_TEST
    n: int  # images per side
    n_label: str  # "N/2", "N", "2N" or "test size"
    fid_mean: float = math.nan
    fid_sd: float = math.nan
    fid_min: float = math.nan
    fid_max: float = math.nan
    repeats: int = 0
    skipped: str = ""  # why the row was not measured ("" when it was)
    note: str = ""


@dataclass
class Floor:
    """The real-vs-real floor of one measurement setting."""

    setting: Setting
    extractor_name: str  # the name every FID of this setting carries (`eval_extractor`)
    extractor_seed: int
    reference_fingerprint: str  # the reference split's fingerprint (source + split + preprocessing)
    test_fingerprint: str
    reference_size: int
    test_size: int
    feature_dim: int
    rows: list[FloorRow] = field(default_factory=list)
    version: int = VERSION

    def at(self, n: int, comparison: str = HALVES) -> FloorRow | None:
        """The measured row of `comparison` at n images per side, if any."""
        return next((r for r in self.rows if r.comparison == comparison and r.n == n and not r.skipped), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Floor":
        d = dict(d)
        setting = dict(d["setting"])
        setting["data_options"] = tuple(tuple(kv) for kv in setting.get("data_options", ()))
        d["setting"] = Setting(**setting)
        d["rows"] = [FloorRow(**r) for r in d["rows"]]
        return cls(**d)


class Yardstick:
    """The reference and test splits of a setting and its extractors (one per seed), with every real
    image's features computed once and cached on disk beside the evaluator's statistics."""

    def __init__(self, setting: Setting, *, reference: Any = None, test: Any = None,
                 cache_dir: str | Path | None = None, device: torch.device | str = "cpu"):
        """reference/test default to the setting's reference split (every class: the extractor learns them
        all, as in `Evaluator`) and test split; pass preloaded ImageSets to reuse or restrict them."""
        from trainers.data import default_cache_dir, load_split, task_options
        from trainers.evaluation.evaluator import reference_set

        self.setting, self.device = setting, torch.device(device)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        s, cfg = setting, setting.config()
        self.reference_all = reference if reference is not None else reference_set(cfg, self.cache_dir)
        self.reference = (self.reference_all.subset_class(s.class_subset) if s.class_subset else self.reference_all)
        if test is None:
            try:
                test = load_split(s.data, "test", s.resolution, hist_eq=s.hist_eq, cache_dir=self.cache_dir,
                                  **task_options(cfg))
            except DataError as exc:
                raise DataError(f"{s.data} has no usable test split for the train-vs-test floor ({exc})") from None
        self.test = test.subset_class(s.class_subset) if s.class_subset else test
        self._extractors: dict[int, Any] = {}
        self._features: dict[tuple[int, str], np.ndarray] = {}

    def extractor(self, seed: int = 0) -> Any:
        from trainers.evaluation.evaluator import build_extractor

        if seed not in self._extractors:
            if seed != 0 and self.setting.extractor not in SEEDED_EXTRACTORS:
                raise ValueError(f"extractor {self.setting.extractor!r} is pretrained: it has no seed to vary")
            self._extractors[seed] = build_extractor(self.setting.config(), self.reference_all, self.device,
                                                     self.cache_dir, seed=seed)
        return self._extractors[seed]

    def features(self, which: str, seed: int = 0) -> np.ndarray:
        """Features of every image of the reference ("reference") or test ("test") split, cached on disk."""
        if (seed, which) not in self._features:
            images = self.reference if which == "reference" else self.test
            ex = self.extractor(seed)
            path = self.cache_dir / "stats" / f"split-{ex.name}-{images.fingerprint}-{len(images)}.npy"
            if path.is_file():
                feats = np.load(path)
            else:
                feats = ex(images.to_tensor())
                with atomic_path(path) as tmp:
                    np.save(tmp, feats)
            self._features[(seed, which)] = feats
        return self._features[(seed, which)]

    def real_subset(self, n: int) -> np.ndarray:
        """Indices into the reference split of the N real images `Evaluator` measures against."""
        return np.sort(np.random.default_rng(D.REAL_SUBSET_SEED).permutation(len(self.reference))[:n])

    # ---- the floor
    def floor(self, *, seed: int = 0, repeats: int = FLOOR_REPEATS, draw_seed: int = FLOOR_SEED) -> Floor:
        """Halves of the reference split at N/2, N, 2N and train vs test (see the module docstring)."""
        s, ex = self.setting, self.extractor(seed)
        ref, test = self.features("reference", seed), self.features("test", seed)
        with _blas_threads(ex.dim):
            return self._floor(s, ex, seed, ref, test, repeats, np.random.default_rng(draw_seed))

    def _floor(self, s: Setting, ex: Any, seed: int, ref: np.ndarray, test: np.ndarray, repeats: int,
               rng: np.random.Generator) -> Floor:
        rows: list[FloorRow] = []
        for label, n in (("N/2", s.n // 2), ("N", s.n), ("2N", 2 * s.n)):
            rows.append(_halves_row(ref, n, label, repeats, rng, ex.dim))
        n_tt = min(s.n, len(test))
        if n_tt < 2:
            rows.append(FloorRow(TRAIN_VS_TEST, n_tt, "test size",
                                 skipped=f"the test split holds {len(test)} image(s)"))
        else:
            note = "" if n_tt == s.n else (f"test split holds {len(test)} < N = {s.n} images: measured at n = {n_tt}; "
                                           f"compare with the halves row at n = {n_tt}")
            values = []
            for _ in range(repeats):
                a = rng.choice(len(ref), n_tt, replace=False)
                b = rng.choice(len(test), n_tt, replace=False)
                values.append(fid_from_features(ref[a], test[b]))
            rows.append(_row(TRAIN_VS_TEST, n_tt, "N" if n_tt == s.n else "test size", values,
                             _low_n_note(n_tt, ex.dim, note)))
            if n_tt != s.n and all(r.n != n_tt for r in rows if r.comparison == HALVES):
                rows.append(_halves_row(ref, n_tt, "test size", repeats, rng, ex.dim))
        return Floor(setting=s, extractor_name=ex.name, extractor_seed=seed,
                     reference_fingerprint=self.reference.fingerprint, test_fingerprint=self.test.fingerprint,
                     reference_size=len(ref), test_size=len(test), feature_dim=int(ex.dim), rows=rows)

    # ---- re-scoring generated images
    def test_n(self) -> int:
        return min(self.setting.n, len(self.test))

    def score(self, images: torch.Tensor, seed: int = 0) -> dict[str, float]:
        """FIDs of generated images (at least N of them, in [-1, 1]) with the seed's extractor:
        `fid` against the N real reference images trials use, `fid_train_at_test_n` against that many
        reference images as the test split offers, `fid_test` against the test split at that n."""
        n, n_t = self.setting.n, self.test_n()
        if len(images) < n:
            raise ValueError(f"{len(images)} generated images given; the setting needs N = {n}")
        ex = self.extractor(seed)
        fake = ex(images[:n])
        ref, test = self.features("reference", seed), self.features("test", seed)
        idx = self.real_subset(n)
        sub = np.random.default_rng(D.REAL_SUBSET_SEED).permutation(len(test))[:n_t]
        with _blas_threads(ex.dim):
            return {"fid": fid_from_features(ref[idx], fake),
                    "fid_train_at_test_n": fid_from_features(ref[idx[:n_t]], fake[:n_t]),
                    "fid_test": fid_from_features(test[np.sort(sub)], fake[:n_t])}

    def real_labels(self, n: int) -> np.ndarray:
        return self.reference.labels[self.real_subset(n)]


def rescore_images(yardstick: Yardstick, images: Mapping[str, torch.Tensor],
                   seeds: Sequence[int] = EXTRACTOR_SEEDS) -> dict[str, dict[int, dict[str, float]]]:
    """{key: {extractor seed: `Yardstick.score`}} for generated images per trial (or configuration)."""
    return {key: {seed: yardstick.score(x, seed) for seed in seeds} for key, x in images.items()}


def generator_images(yardstick: Yardstick, G: torch.nn.Module, cfg: TrialConfig, *,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """The N images `Evaluator.evaluate` draws from a generator (same latent seed and, for a
    conditional generator, the real class ratio); `study.generate_command.load_generator` reads one
    from a trial checkpoint."""
    from trainers.evaluation.sampling import check_images, sample_images

    labels = (torch.as_tensor(yardstick.real_labels(yardstick.setting.n), dtype=torch.long)
              if cfg.conditioning != "none" else None)
    images = sample_images(G, yardstick.setting.n, cfg, device, labels=labels)
    check_images(images, yardstick.setting.resolution)
    return images


def setting_key(setting: Setting, *parts: object) -> str:
    """A short hash naming a setting (and anything else) in cache file names; it changes with the versions
    of the domain extractor and of the data cache, whose changes make cached floors stale."""
    from trainers.data import CACHE_VERSION
    from trainers.evaluation.feature_domain import VERSION as DOMAIN_VERSION

    parts = (VERSION, DOMAIN_VERSION, CACHE_VERSION, *asdict(setting).values(), *parts)
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _blas_threads(dim: int) -> Any:
    """One BLAS thread for small matrices: after torch ran, its idle OpenMP threads spin and make
    multi-threaded 128 x 128 eigendecompositions ~5x slower; large ones (Inception's 2048) keep them all."""
    from contextlib import nullcontext

    if dim > 512:
        return nullcontext()
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn, which the project requires

    return threadpool_limits(1, user_api="blas")


def _halves_row(features: np.ndarray, n: int, label: str, repeats: int, rng: np.random.Generator,
                dim: int) -> FloorRow:
    if n < 2:
        return FloorRow(HALVES, n, label, skipped=f"n = {n} is too small for a covariance")
    if 2 * n > len(features):
        return FloorRow(HALVES, n, label, skipped=f"the reference split holds {len(features)} images < 2n = {2 * n}: "
                                                  "two disjoint halves of n do not fit")
    values = []
    for _ in range(repeats):
        perm = rng.permutation(len(features))
        values.append(fid_from_features(features[perm[:n]], features[perm[n:2 * n]]))
    return _row(HALVES, n, label, values, _low_n_note(n, dim, ""))


def _row(comparison: str, n: int, label: str, values: list[float], note: str) -> FloorRow:
    v = np.asarray(values, dtype=np.float64)
    return FloorRow(comparison, n, label, float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan,
                    float(v.min()), float(v.max()), len(v), "", note)


def _low_n_note(n: int, dim: int, note: str) -> str:
    if n >= dim:
        return note
    low = f"n = {n} is below the feature dimension {dim}: rank-deficient covariances"
    return f"{note}; {low}" if note else low
