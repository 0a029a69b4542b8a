"""Factor effects: FID and TSTR accuracy per level of each factor the study varied, with bootstrap CIs.

Levels are compared on trials pooled over the other factors (a marginal effect, as in seed 002's
Table I); the Kruskal-Wallis p-value says whether any level differs, without assuming normal FIDs.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis import columns as C
from analysis.groups import varied
from analysis.stats import bootstrap_mean
from trainers import metric_keys as mk

DEFAULT_METRICS = (mk.FID, C.TSTR_ACCURACY)


def factor_effects(
    trials: pd.DataFrame,
    *,
    factors: Sequence[str] = C.FACTORS,
    metrics: Sequence[str] = DEFAULT_METRICS,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Rows: factor, level, metric, n, mean, ci_low, ci_high, median, std, kruskal_p (same for all levels)."""
    rows: list[dict] = []
    metrics = [m for m in metrics if m in trials.columns and trials[m].notna().any()]
    for factor in varied(trials, factors):
        for metric in metrics:
            sub = trials[[factor, metric]].dropna()
            groups = {lvl: g[metric].to_numpy(dtype=float) for lvl, g in sub.groupby(factor, sort=True)}
            p = _kruskal(list(groups.values()))
            for lvl, v in groups.items():
                mean, lo, hi = bootstrap_mean(v, n_resamples=n_resamples, seed=seed + len(rows))
                rows.append({"factor": factor, "level": _level_text(lvl), "metric": metric, "n": len(v), "mean": mean,
                                 "ci_low": lo, "ci_high": hi, "median": float(np.median(v)),
                                 "std": float(np.std(v, ddof=1)) if len(v) > 1 else np.nan, "kruskal_p": p})
    return pd.DataFrame(rows)


def _kruskal(samples: list[np.ndarray]) -> float:
    samples = [s for s in samples if len(s) > 0]
    if len(samples) < 2 or sum(len(s) for s in samples) <= len(samples):
        return float("nan")
    try:
        return float(sps.kruskal(*samples).pvalue)
    except ValueError:  # every value identical
        return float("nan")


def _level_text(level) -> str:
    if isinstance(level, (bool, np.bool_)):
        return "yes" if level else "no"
    return str(level)
