"""Design matrices of study factors, for partial correlations that control for them.

A factor with few levels (optimizer, activation, batch size, ...) becomes one-hot dummies
(first level dropped: the intercept is added by `stats.corr_test`). A numeric factor with many
distinct values (random-search learning rates) enters as one column, log-scaled when it spans
more than a decade, instead of eating one degree of freedom per value.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from analysis import columns as C
from analysis.groups import configuration_key, varied

MAX_LEVELS_AS_DUMMIES = 6


def control_columns(df: pd.DataFrame, exclude: Iterable[str] = ()) -> list[str]:
    """Config columns that vary within df and define configurations (seed/name never do)."""
    skip = set(exclude)
    return [c for c in varied(df, configuration_key(df)) if c not in skip]


def design_matrix(df: pd.DataFrame, columns: Iterable[str]) -> tuple[np.ndarray, list[str]]:
    """(n, k) float design without intercept, and the name of each column."""
    blocks, names = [], []
    for col in columns:
        s = df[col]
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if numeric and s.nunique(dropna=True) > MAX_LEVELS_AS_DUMMIES:
            v = s.astype(float).to_numpy()
            positive = np.nanmin(v) > 0
            if positive and np.nanmax(v) / np.nanmin(v) > 10:
                v = np.log10(v)
            blocks.append(v[:, None])
            names.append(f"{C.label(col)} (numeric)")
            continue
        dummies = pd.get_dummies(s.astype(str), prefix=C.label(col), drop_first=True, dtype=float)
        blocks.append(dummies.to_numpy())
        names.extend(dummies.columns)
    if not blocks:
        return np.zeros((len(df), 0)), []
    return np.column_stack(blocks), names
