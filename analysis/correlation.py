"""Does a training signal (D-loss mean, ...) track sample quality (FID, KID)? Seed 002's claim, tested.

Across trials: every (target, predictor) pair, Pearson and Spearman, at trial and configuration level,
within each loss type (and pooled after z-scoring within loss), plain and partial on study factors.
Within trials: correlation across one trial's reports between its D loss and its FID.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from analysis import columns as C
from analysis.groups import LEVELS, at_level, loss_groups, zscore_within
from analysis.partial import control_columns, design_matrix
from analysis.stats import bootstrap_mean, corr_test
from trainers import metric_keys as mk

WITHIN_X = (mk.LOSS_D, mk.D_LOSS_MEAN)
MIN_DOF_PARTIAL = 8  # n - k: leaves >= 5 residual degrees of freedom after intercept and r


def signal_correlations(
    trials: pd.DataFrame,
    *,
    targets: Sequence[str] = C.TARGETS,
    predictors: Sequence[str] = C.PREDICTORS,
    methods: Sequence[str] = ("pearson", "spearman"),
    levels: Sequence[str] = LEVELS,
    partial: bool = True,
    n_resamples: int = 2000,
    n_permutations: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per test: level, group, target, predictor, method, controls, n, r, CI, p-values."""
    targets = [t for t in targets if t in trials.columns and trials[t].notna().any()]
    predictors = [p for p in predictors if p in trials.columns and trials[p].notna().any()]
    rows: list[dict] = []
    if not targets or not predictors or trials.empty:
        return pd.DataFrame(rows)
    values = [*targets, *predictors]
    for level in levels:
        frame = at_level(trials, level, values)
        if level != "trial" and len(frame) == len(trials):
            continue  # one seed per configuration: identical to the trial level
        for group, sub in loss_groups(frame, values):
            controls = control_columns(sub)
            design, _names = design_matrix(sub, controls) if partial and controls else (None, [])
            for target in targets:
                for predictor in predictors:
                    for method in methods:
                        base = {"level": level, "group": group, "target": target, "predictor": predictor,
                                "method": method}
                        kw = {"method": method, "n_resamples": n_resamples, "n_permutations": n_permutations,
                                  "seed": seed + len(rows)}
                        res = corr_test(sub[predictor], sub[target], **kw)
                        rows.append({**base, "controls": "", **res.as_row()})
                        if design is not None and design.shape[1]:
                            # Partial r needs spare degrees of freedom; a saturated fit says nothing.
                            if len(sub) - design.shape[1] >= MIN_DOF_PARTIAL:
                                res = corr_test(sub[predictor], sub[target], covariates=design, **kw)
                                row = res.as_row()
                            else:
                                row = {"method": method, "n": len(sub), "n_covariates": design.shape[1],
                                           "note": f"partial skipped: {design.shape[1]} control columns, n={len(sub)}"}
                            rows.append({**base, "controls": ", ".join(controls), **row})
    return pd.DataFrame(rows)


def correlation_matrices(trials: pd.DataFrame, columns: Sequence[str],
                         method: str = "pearson") -> dict[str, pd.DataFrame]:
    """Seed 002 Fig. 5 per loss group: pairwise-complete correlation of the columns that have data."""
    cols = [c for c in columns if c in trials.columns and trials[c].notna().sum() >= 3]
    out: dict[str, pd.DataFrame] = {}
    if len(cols) < 2:
        return out
    for group, sub in loss_groups(trials, cols):
        if len(sub) >= 3:
            mat = sub[cols].astype(float).corr(method=method, min_periods=3)
            out[group] = mat.rename(index=C.label, columns=C.label)
    return out


def within_trial(
    history: pd.DataFrame,
    trial_keys: Iterable[str],
    *,
    xs: Sequence[str] = WITHIN_X,
    y: str = mk.FID,
    min_points: int = 3,
    method: str = "spearman",
) -> pd.DataFrame:
    """Per trial: r across its reports where `y` was measured (FID is sparse), for each x signal."""
    rows: list[dict] = []
    if history.empty or y not in history.columns:
        return pd.DataFrame(rows)
    keys = set(trial_keys)
    hist = history.loc[history[C.TRIAL_KEY].isin(keys) & history[y].notna()]
    for key, sub in hist.groupby(C.TRIAL_KEY, sort=True):
        loss = sub[C.LOSS].iloc[0] if C.LOSS in sub.columns else "all"
        for x in xs:
            if x not in sub.columns:
                continue
            pair = sub[[x, y]].astype(float).dropna()
            if len(pair) < min_points:
                continue
            r = pair[x].corr(pair[y], method=method)
            rows.append({C.TRIAL_KEY: key, C.LOSS: loss, "x": x, "y": y, "method": method,
                         "n_points": len(pair), "r": r})
    return pd.DataFrame(rows)


def summarise_within(per_trial: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per x signal and loss type: how many trials, mean r with bootstrap CI over trials, share negative."""
    rows: list[dict] = []
    if per_trial.empty:
        return pd.DataFrame(rows)
    for (x, loss), sub in per_trial.groupby(["x", C.LOSS], sort=True, dropna=False):
        r = sub["r"].to_numpy(dtype=float)
        r = r[np.isfinite(r)]
        mean, lo, hi = bootstrap_mean(r, n_resamples=n_resamples, seed=seed)
        rows.append({"x": x, "y": sub["y"].iloc[0], "method": sub["method"].iloc[0], "group": f"loss={loss}",
                         "n_trials": len(r), "mean_r": mean, "ci_low": lo, "ci_high": hi,
                         "median_r": float(np.median(r)) if len(r) else np.nan,
                         "share_negative": float(np.mean(r < 0)) if len(r) else np.nan,
                         "median_points": float(sub["n_points"].median())})
    return pd.DataFrame(rows)


def pooled_view(trials: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Trials with `columns` z-scored within loss type (for pooled plots); unchanged with one loss."""
    if C.LOSS not in trials.columns or trials[C.LOSS].nunique() < 2:
        return trials
    return zscore_within(trials, columns, C.LOSS)

