"""Memory per image against feature-map size (seed 002 Fig. 7) and the saving from dropping BatchNorm (Fig. 8).

Reads memory.parquet from `gan-study memory`: columns network, resolution, features, norm, params,
mem_per_image_mb (network "G"/"D"; optional `method` says how memory was measured, and tables made
by different methods are kept apart). Seed 002 reports that removing BN saves 1.2-7% depending on feature-map size.
"""
from __future__ import annotations

import pandas as pd

NETWORK, RESOLUTION, FEATURES, NORM, PARAMS, MEM, METHOD = (
    "network", "resolution", "features", "norm", "params", "mem_per_image_mb", "method")
MEMORY_COLUMNS = (NETWORK, RESOLUTION, FEATURES, NORM, PARAMS, MEM)
WITH_BN, WITHOUT_NORM = "batch", "none"
SEED002_SAVING_PCT = (1.2, 7.0)


def memory_curves(memory: pd.DataFrame) -> pd.DataFrame:
    """Fig. 7 data: mean memory per image per network, resolution, norm and feature-map size."""
    if memory.empty or not {NETWORK, RESOLUTION, FEATURES, MEM} <= set(memory.columns):
        return pd.DataFrame()
    keys = [c for c in (METHOD, NETWORK, RESOLUTION, NORM, FEATURES) if c in memory.columns]
    agg = {MEM: "mean", **({PARAMS: "mean"} if PARAMS in memory.columns else {})}
    return memory.groupby(keys, sort=True, dropna=False).agg(agg).reset_index()


def series_keys(frame: pd.DataFrame) -> list[str]:
    """Columns that name one curve: network and resolution, plus method when several were used."""
    keys = [NETWORK, RESOLUTION]
    return ([METHOD] if METHOD in frame.columns and frame[METHOD].nunique() > 1 else []) + keys


def bn_saving(memory: pd.DataFrame) -> pd.DataFrame:
    """Fig. 8 data: memory with BN vs without any norm, and the saving in percent of the BN figure."""
    curves = memory_curves(memory)
    if curves.empty or NORM not in curves.columns:
        return pd.DataFrame()
    keys = [c for c in (METHOD, NETWORK, RESOLUTION, FEATURES) if c in curves.columns]
    bn = curves.loc[curves[NORM] == WITH_BN].set_index(keys)[MEM]
    none = curves.loc[curves[NORM] == WITHOUT_NORM].set_index(keys)[MEM]
    both = pd.concat({"mem_bn_mb": bn, "mem_none_mb": none}, axis=1).dropna()
    if both.empty:
        return pd.DataFrame()
    both["saving_pct"] = 100.0 * (both["mem_bn_mb"] - both["mem_none_mb"]) / both["mem_bn_mb"]
    return both.reset_index()
