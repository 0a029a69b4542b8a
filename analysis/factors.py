"""Factor effects: FID and TSTR accuracy per level of each factor the study varied, with bootstrap CIs.

Levels are compared on trials pooled over the other factors (a marginal effect, as in seed 002's
Table I). The configuration is the unit: the CI of a level's mean resamples configurations (keeping
their seeds together), and the Kruskal-Wallis test, which says whether any level differs without
assuming normal FIDs, ranks configuration means (seeds are repeats, not extra observations) and takes
its p-value from permutations of the level labels.
FID measured with different extractors or sample sizes is analysed per measurement setting.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from analysis import columns as C
from analysis.groups import at_level, configuration_codes, measurement_groups, varied
from analysis.ranktests import kruskal_permutation
from analysis.stats import bootstrap_mean
from trainers import metric_keys as mk

DEFAULT_METRICS = (C.LOG_FID, mk.FID, C.TSTR_ACCURACY)  # log FID first: its effects read as ratios


def factor_effects(
    trials: pd.DataFrame,
    *,
    factors: Sequence[str] = C.FACTORS,
    metrics: Sequence[str] = DEFAULT_METRICS,
    n_resamples: int = 2000,
    n_permutations: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Rows: [measurement,] factor, level, metric, n, n_configs, mean, ci_low, ci_high, median, std, kruskal_h/_p.

    `kruskal_p` is one test per factor and metric (repeated on each level's row): Kruskal-Wallis over
    configuration means with a permutation p-value.
    """
    rows: list[dict] = []
    metrics = [m for m in metrics if m in trials.columns and trials[m].notna().any()]
    for measurement, part in measurement_groups(trials):
        part = part.assign(_config=configuration_codes(part))
        for factor in varied(part, factors):
            for metric in metrics:
                sub = part[[factor, metric, "_config"]].dropna()
                configs = at_level(part.loc[sub.index], "config", [metric]).dropna(subset=[metric])
                h, p = kruskal_permutation([g[metric].to_numpy() for _, g in configs.groupby(factor, sort=True)],
                                           n_permutations=n_permutations, seed=seed + len(rows))
                for lvl, g in sub.groupby(factor, sort=True):
                    v = g[metric].to_numpy(dtype=float)
                    mean, lo, hi = bootstrap_mean(v, clusters=g["_config"].to_numpy(), n_resamples=n_resamples,
                                                  seed=seed + len(rows))
                    row = {"measurement": measurement} if measurement else {}
                    rows.append({**row, "factor": factor, "level": _level_text(lvl), "metric": metric, "n": len(v),
                                 "n_configs": int(g["_config"].nunique()), "mean": mean, "ci_low": lo,
                                 "ci_high": hi, "median": float(np.median(v)),
                                 "std": float(np.std(v, ddof=1)) if len(v) > 1 else np.nan, "kruskal_h": h,
                                 "kruskal_p": p})
    return _with_ratios(pd.DataFrame(rows))


def _with_ratios(rows: pd.DataFrame) -> pd.DataFrame:
    """For log metrics: the geometric mean per level (exp of the mean log, CI likewise) and its ratio to the
    factor's first level, so an effect on log FID reads 'x 0.4 the FID'."""
    if rows.empty:
        return rows
    logs = rows["metric"].isin(list(C.LOG_OF))
    rows["geo_mean"] = np.where(logs, np.exp(rows["mean"]), np.nan)
    rows["geo_ci_low"] = np.where(logs, np.exp(rows["ci_low"]), np.nan)
    rows["geo_ci_high"] = np.where(logs, np.exp(rows["ci_high"]), np.nan)
    keys = [k for k in ("measurement", "factor", "metric") if k in rows.columns]
    first = rows.groupby(keys, sort=False)["mean"].transform("first")
    rows["ratio_to_first_level"] = np.where(logs, np.exp(rows["mean"] - first), np.nan)
    return rows


def _level_text(level) -> str:
    if isinstance(level, (bool, np.bool_)):
        return "yes" if level else "no"
    return str(level)
