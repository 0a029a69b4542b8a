"""Memory per image against feature-map size (seed 002 Fig. 7) and the saving from dropping BatchNorm (Fig. 8).

Reads memory.parquet from `gan-study memory`: columns network, resolution, features, norm, params,
mem_per_image_mb. Seed 002 reports that removing BN saves 1.2-7% depending on feature-map size.
"""
from __future__ import annotations

import pandas as pd

NETWORK, RESOLUTION, FEATURES, NORM, PARAMS, MEM = (
    "network", "resolution", "features", "norm", "params", "mem_per_image_mb")
MEMORY_COLUMNS = (NETWORK, RESOLUTION, FEATURES, NORM, PARAMS, MEM)
WITH_BN, WITHOUT_NORM = "batch", "none"
SEED002_SAVING_PCT = (1.2, 7.0)


def memory_curves(memory: pd.DataFrame) -> pd.DataFrame:
    """Fig. 7 data: mean memory per image per network, resolution, norm and feature-map size."""
    if memory.empty or not {NETWORK, RESOLUTION, FEATURES, MEM} <= set(memory.columns):
        return pd.DataFrame()
    keys = [c for c in (NETWORK, RESOLUTION, NORM, FEATURES) if c in memory.columns]
    agg = {MEM: "mean", **({PARAMS: "mean"} if PARAMS in memory.columns else {})}
    return memory.groupby(keys, sort=True).agg(agg).reset_index()


def bn_saving(memory: pd.DataFrame) -> pd.DataFrame:
    """Fig. 8 data: memory with BN vs without any norm, and the saving in percent of the BN figure."""
    curves = memory_curves(memory)
    if curves.empty or NORM not in curves.columns:
        return pd.DataFrame()
    keys = [NETWORK, RESOLUTION, FEATURES]
    bn = curves.loc[curves[NORM] == WITH_BN].set_index(keys)[MEM]
    none = curves.loc[curves[NORM] == WITHOUT_NORM].set_index(keys)[MEM]
    both = pd.concat({"mem_bn_mb": bn, "mem_none_mb": none}, axis=1).dropna()
    if both.empty:
        return pd.DataFrame()
    both["saving_pct"] = 100.0 * (both["mem_bn_mb"] - both["mem_none_mb"]) / both["mem_bn_mb"]
    return both.reset_index()
