"""Effect of one two-level factor from matched configurations (a factorial design's natural contrast).

A configuration at level b is paired with the configuration that differs from it only in the factor
(level a); seeds are averaged within each configuration first, so the pair is the unit. The effect is
the mean paired difference; its p flips the signs of whole pairs (exact up to 2^16 pairs' worth of flips),
and its CI inverts that same test (the shifts mu whose sign-flip p exceeds 0.05) up to 16 pairs, so the
interval and the p never disagree; above 16 pairs the CI bootstraps pairs. Valid whatever the seed-to-seed
noise, since configurations are the unit. (With 8 pairs a bootstrap interval can exclude 0 while the
exact p is 0.19: it resamples only 8 values.)
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.stats import bootstrap_mean

MAX_EXACT_PAIRS = 16


def paired_difference(trials: pd.DataFrame, factor: str, a, b, metric: str, *, pair_on: Sequence[str],
                      n_resamples: int = 2000, seed: int = 0) -> dict:
    """metric(level b) - metric(level a) over configurations matched on `pair_on` columns.

    Returns n_pairs, diff (mean), ci_low, ci_high, p (two-sided sign-flip), and the level means.
    """
    cols = [c for c in pair_on if c in trials.columns and c != factor]
    sub = trials.loc[trials[factor].isin([a, b]) & trials[metric].notna(), [*cols, factor, metric]]
    if not cols:  # nothing else varies: one pair, the two levels' means
        sub, cols = sub.assign(_all=0), ["_all"]
    config_means = sub.groupby([*cols, factor], dropna=False)[metric].mean().unstack(factor)
    if a not in config_means.columns or b not in config_means.columns:
        return _empty()
    pairs = config_means.reindex(columns=[a, b]).dropna()  # labels, never a boolean mask (TTUR False/True)
    d = (pairs[b] - pairs[a]).to_numpy(dtype=float)
    if len(d) == 0:
        return _empty()
    if len(d) <= MAX_EXACT_PAIRS:
        mean, (lo, hi) = float(d.mean()), sign_flip_interval(d)
    else:
        mean, lo, hi = bootstrap_mean(d, n_resamples=n_resamples, seed=seed)
    return {"n_pairs": len(d), "diff": mean, "ci_low": lo, "ci_high": hi, "p": sign_flip_p(d, n_resamples, seed),
            "mean_a": float(pairs[a].mean()), "mean_b": float(pairs[b].mean())}


def seed_difference(trials: pd.DataFrame, factor: str, a, b, metric: str) -> dict:
    """metric(level b) - metric(level a) when each level is one configuration: its seeds are the only
    replicates, so a Welch t interval and test over the two sets of seeds (n_a, n_b >= 2)."""
    from scipy import stats

    va = trials.loc[trials[factor] == a, metric].dropna().to_numpy(dtype=float)
    vb = trials.loc[trials[factor] == b, metric].dropna().to_numpy(dtype=float)
    if len(va) < 2 or len(vb) < 2:
        return {**_empty(), "n_a": len(va), "n_b": len(vb)}
    res = stats.ttest_ind(vb, va, equal_var=False)
    lo, hi = res.confidence_interval(0.95)
    return {"n_pairs": 1, "diff": float(vb.mean() - va.mean()), "ci_low": float(lo), "ci_high": float(hi),
            "p": float(res.pvalue), "mean_a": float(va.mean()), "mean_b": float(vb.mean()), "n_a": len(va),
            "n_b": len(vb)}


def sign_flip_p(d: np.ndarray, n_random: int = 2000, seed: int = 0) -> float:
    """Two-sided p of |mean(d)| under random signs (H0: the paired difference is symmetric about 0)."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return float("nan")
    if len(d) <= MAX_EXACT_PAIRS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(n_random, len(d)))
        signs[0] = 1.0  # the observed arrangement is one of the permutations
    null = np.abs((signs * d).mean(axis=1))
    return float(np.mean(null >= abs(d.mean()) - 1e-12))


def sign_flip_interval(d: np.ndarray, ci: float = 0.95) -> tuple[float, float]:
    """Exact interval for the mean paired difference: every shift mu whose exact sign-flip test of d - mu has
    p > 1 - ci. Unbounded (-inf/inf) on a side where even a far shift cannot be rejected (too few pairs:
    with n pairs the smallest p is 2 / 2^n, so n <= 5 never rejects at 0.05)."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return float("nan"), float("nan")
    alpha = 1 - ci
    if 2 / 2 ** len(d) > alpha:
        return -math.inf, math.inf
    m, spread = float(d.mean()), float(np.ptp(d)) or 1.0

    def rejected(mu: float) -> bool:
        return sign_flip_p(d - mu) <= alpha

    def edge(direction: float) -> float:
        inside, outside = m, m + direction * spread
        while not rejected(outside):
            outside = m + 2 * (outside - m)
        for _ in range(60):  # bisection to float precision of the data's scale
            mid = (inside + outside) / 2
            inside, outside = (inside, mid) if rejected(mid) else (mid, outside)
        return inside

    return edge(-1.0), edge(1.0)


def _empty() -> dict:
    nan = float("nan")
    return {"n_pairs": 0, "diff": nan, "ci_low": nan, "ci_high": nan, "p": nan, "mean_a": nan, "mean_b": nan}
