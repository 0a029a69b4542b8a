"""CSV exports of every table in an `Analysis` (OUT/csv/*.csv), one file per table.

`tests.csv` is the report's family of tests (primary first, with unit, p and BH q); the tables the tests
come from (correlations, tstr_vs_fid, factor_effects) carry the same `q` and `primary` columns.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from analysis.pipeline import Analysis


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "all"


def write_csvs(a: Analysis, out_dir: Path) -> list[Path]:
    """Write the non-empty tables; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables: dict[str, pd.DataFrame] = {
        "trials": a.data.trials,
        "tests": a.tests,
        "planned": a.planned,
        "correlations": a.correlations,
        "not_collapsed": a.not_collapsed,
        "collapse_by_configuration": a.collapse_configs,
        "collapse_by_factor": a.collapse_factors,
        "within_trial": a.within,
        "within_trial_summary": a.within_summary,
        "factor_effects": a.factors,
        "budget": a.budget,
        "table1": a.table1,
        "tstr_vs_fid": a.tstr_fid,
        "trtr_baseline": pd.DataFrame([a.trtr]) if a.trtr else pd.DataFrame(),
        "augment_gain": a.augment,
        "downstream_summary": a.downstream_summary,
        "memory_curves": a.memory_curves,
        "bn_saving": a.bn_saving,
        "planned_contrasts": a.confirmatory.contrasts if a.confirmatory is not None else pd.DataFrame(),
        "planned_interactions": a.confirmatory.interactions if a.confirmatory is not None else pd.DataFrame(),
    }
    for group, mat in a.matrices.items():
        tables[f"correlation_matrix_{slug(group)}"] = mat.reset_index(names="")
    for title, rep in a.class_reports.items():
        tables[f"classification_report_{slug(title)}"] = rep.reset_index(names="")
    for title, cm in a.confusion.items():
        tables[f"confusion_matrix_{slug(title)}"] = cm.reset_index()
    if a.reference:
        tables["reference_table1"] = a.reference["table"]
        tables["reference_correlations"] = a.reference["correlations"]
        tables["reference_matrix"] = a.reference["matrix"].reset_index(names="")
    written = []
    for name, df in tables.items():
        if df is None or df.empty:
            continue
        path = out_dir / f"{name}.csv"
        df.to_csv(path, index=False)
        written.append(path)
    return written
