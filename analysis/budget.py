"""Budget curves (compare_gan, Lucic et al. 2018): best score found as a function of trials run.

Trial order is resampled with replacement B times; for each draw the running best over the first k
trials is taken, and the curve is the mean with a percentile band over draws. Every draw is monotone,
so the mean and every quantile are monotone too (non-increasing for FID, non-decreasing for accuracy).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis import columns as C
from trainers import metric_keys as mk

DEFAULT_METRICS = ((mk.FID, "min"), (C.TSTR_ACCURACY, "max"))


def budget_curve(values, *, mode: str = "min", n_resamples: int = 1000, ci: float = 0.95,
                 seed: int = 0) -> pd.DataFrame:
    """Columns k, mean, median, low, high for k = 1..n (n = number of finite values)."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode={mode!r}; allowed: min, max")
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return pd.DataFrame(columns=["k", "mean", "median", "low", "high"])
    rng = np.random.default_rng(seed)
    draws = v[rng.integers(0, len(v), size=(n_resamples, len(v)))]
    best = np.minimum.accumulate(draws, axis=1) if mode == "min" else np.maximum.accumulate(draws, axis=1)
    lo, med, hi = np.quantile(best, [(1 - ci) / 2, 0.5, (1 + ci) / 2], axis=0)
    k = np.arange(1, len(v) + 1)
    return pd.DataFrame({"k": k, "mean": best.mean(axis=0), "median": med, "low": lo, "high": hi})


def budget_curves(
    trials: pd.DataFrame,
    *,
    metrics: Sequence[tuple[str, str]] = DEFAULT_METRICS,
    by: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Long frame: metric, mode, group, k, mean, median, low, high; one curve per level of `by` plus 'all'."""
    parts = []
    for metric, mode in metrics:
        if metric not in trials.columns or not trials[metric].notna().any():
            continue
        groups = [("all", trials)]
        if by and by in trials.columns and trials[by].nunique() > 1:
            groups += [(f"{C.label(by)}={lvl}", g) for lvl, g in trials.groupby(by, sort=True)]
        for group, sub in groups:
            curve = budget_curve(sub[metric], mode=mode, n_resamples=n_resamples, seed=seed)
            if not curve.empty:
                parts.append(curve.assign(metric=metric, mode=mode, group=group))
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    return out[["metric", "mode", "group", "k", "mean", "median", "low", "high"]]
