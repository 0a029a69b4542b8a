"""Sample grids of the best and worst trials: the last `sample_path` each trial reported.

`sample_path` is relative to the study dir the trial belongs to (RESULTS_SCHEMA), which
`analysis.load` records per row, so several study dirs can be analysed together.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import columns as C
from analysis.pipeline import Analysis
from trainers import metric_keys as mk


@dataclass
class Sample:
    trial: str
    role: str  # "best" or "worst" (by FID), or "sample" when no FID exists
    fid: float
    path: Path | None  # None when the trial reported no sample or the file is gone
    iteration: float


def pick_samples(a: Analysis, per_side: int = 3) -> list[Sample]:
    """The `per_side` lowest- and highest-FID analysed trials (first trials when no FID was measured)."""
    done = a.analysed
    if done.empty:
        return []
    if a.has(mk.FID):
        ranked = done.dropna(subset=[mk.FID]).sort_values(mk.FID, kind="stable")
        best = ranked.head(per_side)
        worst = ranked.iloc[per_side:].tail(per_side).iloc[::-1]
        chosen = [("best", r) for _, r in best.iterrows()] + [("worst", r) for _, r in worst.iterrows()]
    else:
        chosen = [("sample", r) for _, r in done.head(2 * per_side).iterrows()]
    return [_sample(a.data.history, role, row) for role, row in chosen]


def embed_png(path: Path) -> str:
    """data: URI of a PNG file, so the dashboard stays one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _sample(history: pd.DataFrame, role: str, row: pd.Series) -> Sample:
    key = row[C.TRIAL_KEY]
    fid = float(row[mk.FID]) if mk.FID in row.index and pd.notna(row[mk.FID]) else float("nan")
    if history.empty or mk.SAMPLE_PATH not in history.columns:
        return Sample(key, role, fid, None, float("nan"))
    rows = history.loc[(history[C.TRIAL_KEY] == key) & history[mk.SAMPLE_PATH].notna()
                       & (history[mk.SAMPLE_PATH].astype(str) != "")]
    if rows.empty:
        return Sample(key, role, fid, None, float("nan"))
    for _, last in rows.iloc[::-1].iterrows():  # newest first; skip files deleted since
        path = Path(last[C.STUDY_DIR]) / str(last[mk.SAMPLE_PATH])
        if path.is_file():
            it = float(last[mk.ITERATION]) if mk.ITERATION in last.index else float("nan")
            return Sample(key, role, fid, path, it)
    return Sample(key, role, fid, None, float("nan"))
