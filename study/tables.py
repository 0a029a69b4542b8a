"""The study's tables (docs/RESULTS_SCHEMA.md), built from the append-only journal `history.jsonl`.

The journal is the source of truth; `history.parquet` and `trials.parquet` are views of it, rebuilt
and replaced atomically. Two kinds of journal line:

    {"event": "trial",  "trial_id": ..., "timestamp": ..., "status": ..., "reason": ..., "config": {...}}
    {"event": "report", "trial_id": ..., "timestamp": ..., "metrics": {...}}

A `{"event": "study", "total_trials": N}` line records how many trials the search will create.
A report repeated for the same (trial_id, iteration) — a trial re-run from an older checkpoint after
a driver crash — replaces the earlier one: the loop is deterministic, so both carry the same values.

Example:
    >>> t = StudyTables("demo", "/tmp/demo")
    >>> t.apply({"event": "trial", "trial_id": "a", "status": "running", "reason": "", "config": {"seed": 0}})
    >>> t.apply({"event": "report", "trial_id": "a", "timestamp": 1.0, "metrics": {"iteration": 10, "fid": 5.0}})
    >>> t.trials_frame()[["trial_id", "status", "best_fid"]].values.tolist()
    [['a', 'running', 5.0]]
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from study.layout import HISTORY_FILE, JOURNAL_FILE, TRIALS_DIRNAME, TRIALS_FILE
from trainers import metric_keys as K
from trainers.atomic import atomic_path
from trainers.config import is_ttur

STATUSES = (K.STATUS_PENDING, K.STATUS_RUNNING, K.STATUS_FINISHED, K.STATUS_DIVERGED, K.STATUS_STOPPED,
            K.STATUS_ERRORED)
TERMINAL = (K.STATUS_FINISHED, K.STATUS_DIVERGED, K.STATUS_STOPPED, K.STATUS_ERRORED)
# Always present in trials.parquet, as floats, so analysis never meets a missing column.
CORE_FLOAT_COLUMNS = (K.FID, K.KID_MEAN, K.D_LOSS_MEAN, K.D_LOSS_VAR, K.D_LOSS_STD, K.G_LOSS_MEAN, K.T0,
                      K.WALL_S, K.PEAK_MEMORY_MB, "best_fid", "best_kid_mean", "best_fid_iteration")


CELL_PREFIX = "cell/"  # trials.parquet/history.parquet: a design cell's level per factor (docs/RESULTS_SCHEMA.md)


def is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class StudyTables:
    """In-memory state of a study, fed journal records in order."""

    def __init__(self, study: str, study_dir: str | Path) -> None:
        self.study = study
        self.study_dir = str(study_dir)
        self.trials: dict[str, dict[str, Any]] = {}  # trial_id -> {"status", "reason", "config"}
        self.reports: dict[str, dict[int, dict[str, Any]]] = {}  # trial_id -> iteration -> row
        self.total_trials = 0  # trials the search will create (0 = unknown)

    def apply(self, record: dict[str, Any]) -> None:
        if record.get("event") == "study":
            self.total_trials = int(record.get("total_trials") or 0)
            return
        tid = record["trial_id"]
        trial = self.trials.setdefault(tid, {"status": K.STATUS_PENDING, "reason": "", "config": {}})
        if record.get("event") == "trial":
            trial["status"] = record.get("status", trial["status"])
            trial["reason"] = record.get("reason", "") or ""
            if record.get("config"):
                trial["config"] = record["config"]
            if record.get("design"):
                trial["design"] = record["design"]
        elif record.get("event") == "drop":  # a trial restarted under a new id (resume without Ray's state)
            self.trials.pop(tid, None)
            self.reports.pop(tid, None)
        elif record.get("event") == "report":
            metrics = dict(record.get("metrics") or {})
            metrics["timestamp"] = record.get("timestamp")
            if isinstance(metrics.get(K.SAMPLE_PATH), str):
                metrics[K.SAMPLE_PATH] = self.relative(metrics[K.SAMPLE_PATH])
            it = int(metrics.get(K.ITERATION) or 0)
            self.reports.setdefault(tid, {})[it] = metrics
            reported = metrics.get(K.STATUS)
            # A report is newer news than a "running" marker; a terminal trial event stays authoritative.
            still_open = trial["status"] in (K.STATUS_PENDING, K.STATUS_RUNNING)
            if reported in (K.STATUS_FINISHED, K.STATUS_DIVERGED) or still_open:
                trial["status"] = reported if reported in STATUSES else K.STATUS_RUNNING
                trial["reason"] = metrics.get(K.REASON) or ""

    def relative(self, path: str) -> str:
        """A path under STUDY_DIR, relative to it (so the study directory can move); others unchanged."""
        try:
            rel = os.path.relpath(path, self.study_dir)
        except ValueError:
            return path
        return path if rel.startswith("..") else rel

    # ------------------------------------------------------------------ frames
    def _common(self, tid: str) -> dict[str, Any]:
        cfg = self.trials[tid]["config"]
        row: dict[str, Any] = {"study": self.study, "trial_id": tid}
        row.update({f"config/{k}": v for k, v in cfg.items()})
        if cfg:
            row["config/ttur"] = bool(is_ttur(cfg.get("lr_g"), cfg.get("lr_d"), cfg.get("d_steps", 1)))
        design = self.trials[tid].get("design")
        if design:  # the drawn configuration (same for all its seeds) and its design cell, as the plan names it
            row["config/design_id"] = int(design["design_id"])
            row.update({f"{CELL_PREFIX}{k}": str(v) for k, v in design.get("cell", {}).items()})
        return row

    def history_frame(self) -> pd.DataFrame:
        rows = []
        for tid in self.trials:
            common = self._common(tid)
            for it in sorted(self.reports.get(tid, {})):
                rows.append({**common, **self.reports[tid][it]})
        return _clean(pd.DataFrame(rows))

    def trials_frame(self) -> pd.DataFrame:
        rows = []
        for tid, trial in self.trials.items():
            reports = [self.reports[tid][it] for it in sorted(self.reports.get(tid, {}))]
            row = self._common(tid)
            last: dict[str, Any] = {}
            for rep in reports:
                last.update({k: v for k, v in rep.items() if not is_null(v)})
            last.pop("timestamp", None)
            row.update(last)
            row["status"] = trial["status"]
            row["reason"] = trial["reason"] or (last.get(K.REASON) or "")
            row["iterations_done"] = reports[-1].get(K.ITERATION) if reports else 0
            row["reports"] = len(reports)
            for key in (K.WALL_S, K.PEAK_MEMORY_MB):  # last reported values, even if null
                row[key] = reports[-1].get(key) if reports else None
            row.update(_best(reports, K.FID, "best_fid", "best_fid_iteration"))
            row.update(_best(reports, K.KID_MEAN, "best_kid_mean", None))
            row["trial_dir"] = f"{TRIALS_DIRNAME}/{tid}"
            rows.append(row)
        df = pd.DataFrame(rows)
        for col in CORE_FLOAT_COLUMNS:
            df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(dtype=float)
        return _clean(df)


def _best(reports: list[dict], key: str, out: str, out_iteration: str | None) -> dict[str, Any]:
    scored = [(r[key], r.get(K.ITERATION)) for r in reports
              if isinstance(r.get(key), (int, float)) and not is_null(r.get(key))]
    best = min(scored, key=lambda s: s[0]) if scored else (math.nan, math.nan)
    return {out: best[0], **({out_iteration: best[1]} if out_iteration else {})}


def _clean(df: pd.DataFrame) -> pd.DataFrame:
    # Object columns hold one type plus NaN for "not measured": make the gaps None so pyarrow
    # writes a typed column with nulls instead of failing on mixed str/float.
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].map(lambda v: None if is_null(v) else v)
    return df


# ---------------------------------------------------------------------- files
def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """Journal records; a torn last line (crash mid-write) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def load_tables(study_dir: str | Path) -> StudyTables:
    study_dir = Path(study_dir).resolve()
    tables = StudyTables(study_dir.name, study_dir)
    for record in read_journal(study_dir / JOURNAL_FILE):
        tables.apply(record)
    return tables


def write_parquet_atomic(df: pd.DataFrame, path: str | Path) -> None:
    """Write to a temp file beside `path`, fsync, then rename: readers never see a half-written file."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_tables(tables: StudyTables, study_dir: str | Path) -> None:
    study_dir = Path(study_dir)
    write_parquet_atomic(tables.history_frame(), study_dir / HISTORY_FILE)
    write_parquet_atomic(tables.trials_frame(), study_dir / TRIALS_FILE)


def iter_statuses(tables: StudyTables) -> Iterable[str]:
    return (t["status"] for t in tables.trials.values())
