"""How trials are grouped before any statistic: analysis level, measurement setting and loss groups.

Level "trial" is one row per trial. Level "config" averages over seeds: rows are grouped by every
config column except seed and name, so repeated seeds of one configuration count once. At either
level the configuration is the statistical unit (`configuration_codes`, docs/STATISTICS.md).

FID/KID values measured with different feature extractors (`eval_extractor`) or sample sizes
(`eval_n`) are on different scales and are never pooled: each measurement setting is its own set of
groups, and a configuration measured two ways is two configurations.

Loss functions are never pooled silently: a BCE discriminator loss of 0.7 and a hinge or WGAN
loss of 0.7 mean different things. Each `config/loss` value is its own group; the pooled group
z-scores every column within its loss type first, and its label says so.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from analysis import columns as C

LEVELS = ("trial", "config")
POOLED_LABEL = "all losses (z-scored within loss)"
N_SEEDS = "n_seeds"
NOT_RECORDED = "not recorded"


def configuration_key(df: pd.DataFrame) -> list[str]:
    """Config columns that define a configuration (all but seed and name)."""
    return [c for c in C.config_columns(df.columns) if c not in C.NOT_CONFIGURATION]


def unit_key(df: pd.DataFrame) -> list[str]:
    """Columns whose values identify one statistical unit: the configuration and its measurement setting."""
    return configuration_key(df) + [c for c in C.MEASUREMENT if c in df.columns]


def configuration_codes(df: pd.DataFrame) -> np.ndarray:
    """Integer code of each row's configuration (seeds share one); each row its own without config columns."""
    if not configuration_key(df) or df.empty:
        return np.arange(len(df))
    return df.groupby(unit_key(df), dropna=False, sort=False).ngroup().to_numpy()


def measurement_labels(df: pd.DataFrame) -> pd.Series:
    """'extractor=inception-2048, N=1024' per row (NOT_RECORDED where the study did not store it)."""
    parts = []
    for col, name in zip(C.MEASUREMENT, ("extractor", "N")):
        if col in df.columns:
            values = df[col].map(lambda v: NOT_RECORDED if pd.isna(v) else _plain(v))
            parts.append(name + "=" + values)
    if not parts:
        return pd.Series([NOT_RECORDED] * len(df), index=df.index, dtype=object)
    return parts[0] if len(parts) == 1 else parts[0] + ", " + parts[1]


def measurement_groups(df: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """('', df) when every row was measured one way, else (label, rows) per measurement setting."""
    labels = measurement_labels(df)
    if labels.nunique() <= 1:
        yield "", df
        return
    for label in sorted(labels.unique()):
        yield label, df.loc[labels == label].reset_index(drop=True)


def is_pooled(group: str) -> bool:
    """True for the z-scored group over several loss types."""
    return group.endswith(POOLED_LABEL)


def at_level(df: pd.DataFrame, level: str, value_columns: Iterable[str]) -> pd.DataFrame:
    """Trial rows as they are, or one row per configuration with value columns averaged over seeds."""
    if level not in LEVELS:
        raise ValueError(f"level={level!r}; allowed: {', '.join(LEVELS)}")
    values = [c for c in dict.fromkeys(value_columns) if c in df.columns]
    if level == "trial" or df.empty:
        out = df.copy()
        out[N_SEEDS] = 1
        return out
    key = unit_key(df)
    if not key:
        out = df[values].mean(numeric_only=True).to_frame().T
        out[N_SEEDS] = len(df)
        return out
    numeric = [c for c in values if pd.api.types.is_numeric_dtype(df[c])]
    grouped = df.groupby(key, dropna=False, sort=False)
    out = grouped[numeric].mean().reset_index() if numeric else grouped.size().reset_index()[key]
    out[N_SEEDS] = grouped.size().to_numpy()
    return out


def loss_groups(df: pd.DataFrame, value_columns: Iterable[str]) -> Iterator[tuple[str, pd.DataFrame]]:
    """(label, frame) per measurement setting and loss type, then the pooled z-scored frame per setting.

    Labels are 'loss=bce' with one measurement setting, 'extractor=..., N=...; loss=bce' with several.
    """
    value_columns = list(value_columns)
    for measurement, part in measurement_groups(df):
        prefix = f"{measurement}; " if measurement else ""
        if C.LOSS not in part.columns or part.empty:
            yield prefix + "all", part
            continue
        losses = [v for v in pd.unique(part[C.LOSS].dropna())]
        for loss in sorted(losses, key=str):
            yield f"{prefix}loss={loss}", part.loc[part[C.LOSS] == loss].reset_index(drop=True)
        if len(losses) > 1:
            yield prefix + POOLED_LABEL, zscore_within(part, value_columns, C.LOSS)


def zscore_within(df: pd.DataFrame, value_columns: Iterable[str], by: str) -> pd.DataFrame:
    """Copy of df with each numeric value column standardised within each level of `by`."""
    out = df.copy()
    for col in value_columns:
        if col not in out.columns or not pd.api.types.is_numeric_dtype(out[col]):
            continue
        g = out.groupby(by, dropna=False)[col]
        std = g.transform(lambda s: s.std(ddof=0))
        out[col] = (out[col] - g.transform("mean")) / std.where(std > 0, np.nan)
    return out


def varied(df: pd.DataFrame, candidates: Iterable[str]) -> list[str]:
    """Candidate columns present in df that take at least two distinct values there."""
    return [c for c in candidates if c in df.columns and df[c].nunique(dropna=True) > 1]


def config_labels(df: pd.DataFrame, columns: Iterable[str]) -> pd.Series:
    """'optimizer=adam, ttur=True' per row, naming only the given (varied) columns."""
    cols = [c for c in columns if c in df.columns]
    if not cols:
        return pd.Series(["all"] * len(df), index=df.index, dtype=object)
    parts = [C.label(c) + "=" + df[c].astype(str) for c in cols]
    out = parts[0]
    for p in parts[1:]:
        out = out + ", " + p
    return out


def _plain(v) -> str:
    """1024.0 -> '1024' (eval_n comes back as float when a column has NaN)."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)
