"""Is FID useful downstream? TSTR accuracy against FID, the TRTR baseline, and augmentation gain.

Accuracies are stored as fractions (sklearn); gains are reported in percentage points, like seed 001's
71.31% -> 74.68% (+3.37 points). Intervals and p-values over trials resample whole configurations
(seeds are repeats); a configuration's own row is a CI across its seeds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import columns as C
from analysis.groups import config_labels, configuration_codes, configuration_key, measurement_groups, varied
from analysis.stats import bootstrap_mean, corr_test, t_interval
from trainers import metric_keys as mk

SEED001_GAIN_POINTS = 74.68 - 71.31


def to_points(values: pd.Series) -> pd.Series:
    """Fractions -> percentage points; values already above 1 in magnitude are taken as points."""
    v = values.astype(float)
    return v * 100.0 if v.abs().max(skipna=True) <= 1.0 else v


def tstr_vs_fid(trials: pd.DataFrame, *, n_resamples: int = 2000, n_permutations: int = 2000,
                seed: int = 0) -> pd.DataFrame:
    """Pearson and Spearman of TSTR accuracy on FID over the analysed trials (both are loss-agnostic).

    One pair of rows per FID measurement setting; seeds of a configuration are resampled together.
    """
    rows = []
    if not {mk.FID, C.TSTR_ACCURACY} <= set(trials.columns):
        return pd.DataFrame(rows)
    for measurement, part in measurement_groups(trials):
        for method in ("pearson", "spearman"):
            res = corr_test(part[mk.FID], part[C.TSTR_ACCURACY], method=method, clusters=configuration_codes(part),
                            n_resamples=n_resamples, n_permutations=n_permutations, seed=seed)
            rows.append(dict(level="trial", unit="trial", group=measurement or "all", x=mk.FID, y=C.TSTR_ACCURACY,
                             **res.as_row()))
    return pd.DataFrame(rows)


# What a TRTR baseline depends on: the real data and the classifier's settings and seed, not the GAN.
BASELINE_KEYS = ("seed", "data", "resolution", "hist_eq", "data_limit", "classifier", "classifier_epochs",
                 "classifier_patience", "classifier_repeats")


def baseline_values(trials: pd.DataFrame, column: str = C.TRTR_ACCURACY) -> pd.Series:
    """One value of a baseline metric (TRTR) per distinct baseline: trials that share the data, classifier
    settings and seed share one TRTR fit, so repeating it per trial would fake replicates."""
    if column not in trials.columns:
        return pd.Series(dtype=float)
    keys = [C.cfg(k) for k in BASELINE_KEYS if C.cfg(k) in trials.columns]
    sub = trials.loc[trials[column].notna()]
    return (sub.drop_duplicates(subset=keys) if keys else sub)[column]


def baseline(trials: pd.DataFrame, column: str = C.TRTR_ACCURACY) -> dict | None:
    """Mean of a baseline metric (TRTR accuracy) over its distinct fits (one per classifier seed) with a
    Student-t interval over them, or None if absent."""
    values = baseline_values(trials, column)
    if values.empty:
        return None
    mean, lo, hi = t_interval(values)
    return {"metric": column, "n": int(len(values)), "mean": mean, "ci_low": lo, "ci_high": hi}


def augmentation_gain(trials: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Gain in points per configuration (CI across its seeds) and over all trials (first row)."""
    if mk.AUGMENT_GAIN not in trials.columns or not trials[mk.AUGMENT_GAIN].notna().any():
        return pd.DataFrame()
    df = trials.loc[trials[mk.AUGMENT_GAIN].notna()].copy()
    df["gain_points"] = to_points(df[mk.AUGMENT_GAIN])
    rows = []
    mean, lo, hi = bootstrap_mean(df["gain_points"], clusters=configuration_codes(df), n_resamples=n_resamples,
                                  seed=seed)
    rows.append({"configuration": "all trials", "n_seeds": len(df), "gain_points": mean, "ci_low": lo, "ci_high": hi,
                     "share_positive": float(np.mean(df["gain_points"] > 0))})
    labels = config_labels(df, varied(df, configuration_key(df)))
    for label, sub in df.groupby(labels, sort=True):
        mean, lo, hi = bootstrap_mean(sub["gain_points"], n_resamples=n_resamples, seed=seed)
        rows.append({"configuration": label, "n_seeds": len(sub), "gain_points": mean, "ci_low": lo, "ci_high": hi,
                         "share_positive": float(np.mean(sub["gain_points"] > 0))})
    return pd.DataFrame(rows)


def downstream_summary(trials: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean and cluster-bootstrap CI of accuracy, balanced accuracy and ROC AUC per protocol (tstr, augment, trtr)."""
    rows = []
    clusters = configuration_codes(trials)
    for prefix in (mk.TSTR_PREFIX, mk.AUGMENT_PREFIX, mk.TRTR_PREFIX):
        for metric in (mk.ACCURACY, mk.BALANCED_ACCURACY, mk.ROC_AUC):
            col = prefix + metric
            if col in trials.columns and trials[col].notna().any():
                mean, lo, hi = bootstrap_mean(trials[col], clusters=clusters, n_resamples=n_resamples, seed=seed)
                rows.append({"metric": col, "n": int(trials[col].notna().sum()), "mean": mean, "ci_low": lo,
                             "ci_high": hi})
    return pd.DataFrame(rows)
