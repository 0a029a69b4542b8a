"""The family of tests one report runs: the pre-declared primary test, and BH q-values over all tests.

Primary (declared before any data are seen, docs/STATISTICS.md): FID vs D-loss mean, Pearson, at
configuration level, no controls, within each loss type (and each FID measurement setting). Every
other test is exploratory. q-values are Benjamini-Hochberg over every test of the report (primary
included), using each test's permutation p (its t-test p where no permutation was possible). The seed
002 reference rows re-analyse the paper's four numbers, not this study, and are not in the family.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import columns as C
from analysis.groups import is_pooled
from analysis.multiplicity import bh_qvalues
from trainers import metric_keys as mk

PRIMARY = {"level": "config", "target": mk.FID, "predictor": mk.D_LOSS_MEAN, "method": "pearson", "controls": ""}
PRIMARY_TEXT = "FID vs D-loss mean, Pearson r, configuration level (seeds averaged), within each loss type"
TEST_COLUMNS = ["section", "test", "level", "unit", "group", "n", "n_configs", "statistic", "value", "p", "q",
                "primary"]


def primary_mask(corr: pd.DataFrame) -> pd.Series:
    """True on the rows of `signal_correlations` output that are the pre-declared primary test."""
    if corr.empty:
        return pd.Series(dtype=bool)
    hit = pd.Series(True, index=corr.index)
    for col, value in PRIMARY.items():
        hit &= corr[col] == value
    return hit & ~corr["group"].map(is_pooled)


def assign_family(correlations: pd.DataFrame, tstr_fid: pd.DataFrame, factors: pd.DataFrame) -> pd.DataFrame:
    """The family table (one row per test, with q); adds `primary` and `q` columns to the three inputs in place."""
    parts = []
    if not correlations.empty:
        correlations["primary"] = primary_mask(correlations)
        parts.append(_correlation_tests(correlations, "quality vs training signals", "correlations"))
    if not tstr_fid.empty:
        tstr_fid["primary"] = False
        parts.append(_correlation_tests(tstr_fid.rename(columns={"x": "predictor", "y": "target"}).assign(
            controls=""), "downstream: TSTR accuracy vs FID", "tstr_vs_fid"))
    if not factors.empty:
        parts.append(_factor_tests(factors))
    if not parts:
        return pd.DataFrame(columns=TEST_COLUMNS)
    family = pd.concat(parts, ignore_index=True)
    family = family.loc[family["p"].notna()].reset_index(drop=True)  # skipped (no p): not a test
    family["q"] = bh_qvalues(family["p"])
    for frame, source in ((correlations, "correlations"), (tstr_fid, "tstr_vs_fid"), (factors, "factor_effects")):
        if not frame.empty:
            mine = family.loc[family["_source"] == source]
            frame["q"] = _spread_back(frame, mine)
    return family.sort_values(["primary", "section"], ascending=[False, True], kind="stable")[TEST_COLUMNS] \
        .reset_index(drop=True)


def _correlation_tests(frame: pd.DataFrame, section: str, source: str) -> pd.DataFrame:
    controls = frame["controls"].fillna("")
    test = (frame["target"].map(C.label) + " vs " + frame["predictor"].map(C.label) + ", " + frame["method"]
            + np.where(controls != "", ", partial on " + controls, ""))
    p = frame["p_perm"].where(frame["p_perm"].notna(), frame["p_param"])
    return pd.DataFrame({"section": section, "test": test, "level": frame["level"], "unit": frame["unit"],
                         "group": frame["group"], "n": frame["n"], "n_configs": frame["n_configs"],
                         "statistic": "r", "value": frame["r"], "p": p, "primary": frame["primary"],
                         "_source": source, "_row": frame.index})


def _factor_tests(factors: pd.DataFrame) -> pd.DataFrame:
    keys = [k for k in ("measurement", "factor", "metric") if k in factors.columns]
    rows = []
    for key, g in factors.groupby(keys, sort=False):
        named = dict(zip(keys, key))
        rows.append({"section": "factor effects", "test": f"{C.label(named['metric'])} by {C.label(named['factor'])}, "
                     "Kruskal-Wallis", "level": "config", "unit": "configuration",
                     "group": named.get("measurement") or "all", "n": int(g["n"].sum()),
                     "n_configs": int(g["n_configs"].sum()), "statistic": "H", "value": g["kruskal_h"].iloc[0],
                     "p": g["kruskal_p"].iloc[0], "primary": False, "_source": "factor_effects",
                     "_row": tuple(g.index)})
    return pd.DataFrame(rows)


def _spread_back(frame: pd.DataFrame, tests: pd.DataFrame) -> pd.Series:
    """q of each test onto the rows it came from (a factor test covers one row per level)."""
    q = pd.Series(np.nan, index=frame.index)
    for rows, value in zip(tests["_row"], tests["q"]):
        q.loc[list(rows) if isinstance(rows, tuple) else rows] = value
    return q
