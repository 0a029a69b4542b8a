"""The family of tests one report runs, with Benjamini-Hochberg q-values over all of them.

The primary test is the study's pre-registered plan (analysis.primary), and only when study.json
recorded it before the first report; a plan supplied to analyze later is post hoc, and without a plan
there is no primary test. Every other test is exploratory. q-values are Benjamini-Hochberg over every
test of the report (primary included), using each test's permutation p (its t-test p where no
permutation was possible). A test identical to another (same statistic, n and p: e.g. a sensitivity
analysis whose exclusion removed nothing) is dropped from the family, and the report names it. The seed
002 reference rows re-analyse the paper's four numbers, not this study, and are not in the family.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import columns as C
from analysis.multiplicity import bh_qvalues

TEST_COLUMNS = ["section", "test", "level", "unit", "group", "n", "n_configs", "statistic", "value", "p", "q",
                "primary"]
PLANNED, NOT_COLLAPSED = "the plan's test", "log FID vs training signals, runs that did not collapse"


def assign_family(correlations: pd.DataFrame, tstr_fid: pd.DataFrame, factors: pd.DataFrame, *,
                  planned: pd.DataFrame | None = None, primary: bool = False,
                  not_collapsed: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[str]]:
    """(family table with q, duplicates dropped); adds `primary` and `q` columns to the inputs in place."""
    planned = pd.DataFrame() if planned is None else planned
    not_collapsed = pd.DataFrame() if not_collapsed is None else not_collapsed
    parts = []
    if not planned.empty:
        planned["primary"] = primary
        parts.append(_correlation_tests(planned, PLANNED, "planned"))
    if not correlations.empty:
        correlations["primary"] = False
        parts.append(_correlation_tests(correlations, "quality vs training signals", "correlations"))
    if not not_collapsed.empty:
        not_collapsed["primary"] = False
        parts.append(_correlation_tests(not_collapsed, NOT_COLLAPSED, "not_collapsed"))
    if not tstr_fid.empty:
        tstr_fid["primary"] = False
        parts.append(_correlation_tests(tstr_fid.rename(columns={"x": "predictor", "y": "target"}).assign(
            controls=""), "downstream: TSTR accuracy vs FID", "tstr_vs_fid"))
    if not factors.empty:
        parts.append(_factor_tests(factors))
    if not parts:
        return pd.DataFrame(columns=TEST_COLUMNS), []
    family = pd.concat(parts, ignore_index=True)
    family = family.loc[family["p"].notna()].reset_index(drop=True)  # skipped (no p): not a test
    family, duplicates = drop_duplicate_tests(family)
    family["q"] = bh_qvalues(family["p"])
    sources = (("planned", planned), ("correlations", correlations), ("not_collapsed", not_collapsed),
               ("tstr_vs_fid", tstr_fid), ("factor_effects", factors))
    for source, frame in sources:
        if not frame.empty:
            frame["q"] = _spread_back(frame, family.loc[family["_source"] == source])
    table = family.sort_values(["primary", "_order"], ascending=[False, True], kind="stable")[TEST_COLUMNS]
    return table.reset_index(drop=True), duplicates


def drop_duplicate_tests(family: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep the first of tests that computed the same thing (same group, n, statistic and p to 12 digits)."""
    family = family.assign(_order=np.arange(len(family)))
    key = pd.DataFrame({"g": family["group"].astype(str), "n": family["n"], "c": family["n_configs"],
                        "v": family["value"].astype(float).round(12), "p": family["p"].astype(float).round(12)})
    # Correlations only: a Kruskal-Wallis H of fully separated levels is the same number for any metric.
    dup = key.duplicated(keep="first") & np.isfinite(key["v"].to_numpy(float)) & (family["statistic"] == "r")
    notes = []
    for i in np.flatnonzero(dup.to_numpy()):
        first = int(np.flatnonzero((key == key.iloc[i]).all(axis=1).to_numpy())[0])
        notes.append(f"{family['test'].iloc[i]} ({family['section'].iloc[i]}) is identical to "
                     f"{family['test'].iloc[first]} ({family['section'].iloc[first]})")
    return family.loc[~dup].reset_index(drop=True), notes


def _correlation_tests(frame: pd.DataFrame, section: str, source: str) -> pd.DataFrame:
    controls = frame["controls"].fillna("")
    if "test" in frame.columns:  # the plan's test names itself
        test = frame["test"]
    else:
        test = (frame["target"].map(C.label) + " vs " + frame["predictor"].map(C.label) + ", " + frame["method"]
                + np.where(controls.str.startswith("cells"), ", within " + controls.str.removeprefix("cells: ")
                           + " cells", np.where(controls != "", ", partial on " + controls, "")))
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
