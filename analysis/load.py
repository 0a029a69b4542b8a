"""Read one or several study directories into three frames: history, trials, memory.

A study may still be running, may have failed trials, and may lack any of its Parquet files;
loading never fails for that: what is missing becomes an empty frame and a warning line.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import columns as C
from trainers import metric_keys as mk
from trainers.errors import DataError
from trainers.layout import HISTORY_FILE, MEMORY_FILE, STUDY_FILE, TRIALS_FILE

DEFAULT_STATUSES = (mk.STATUS_FINISHED,)


@dataclass
class StudyData:
    """Everything read from the study dirs; `trials` has one row per trial across all of them."""

    dirs: list[Path]
    history: pd.DataFrame
    trials: pd.DataFrame
    memory: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    declared: list[str] = field(default_factory=list)  # factor columns the studies' spaces searched

    @property
    def factors(self) -> list[str]:
        """Config columns the analysis treats as factors: those the studies declared (study.json), else
        the usual DCGAN factors for studies that declared none (e.g. results from older versions)."""
        return self.declared or list(C.FACTORS)

    @property
    def names(self) -> list[str]:
        return sorted({str(s) for s in self.trials.get(C.STUDY, pd.Series(dtype=str)).dropna()}) or [
            d.name for d in self.dirs
        ]

    def status_counts(self) -> dict[str, int]:
        """Trials per status (pending, running, finished, diverged, stopped, errored, ...)."""
        if self.trials.empty:
            return {}
        counts = self.trials[mk.STATUS].fillna("unknown").astype(str).value_counts()
        return {str(k): int(v) for k, v in counts.sort_index().items()}

    def analysed(self, statuses: Iterable[str] = DEFAULT_STATUSES) -> pd.DataFrame:
        """Trials whose status is in `statuses` (finished by default): the ones statistics use."""
        if self.trials.empty:
            return self.trials
        keep = self.trials[mk.STATUS].astype(str).isin(set(statuses))
        return self.trials.loc[keep].reset_index(drop=True)

    def has(self, column: str, statuses: Iterable[str] = DEFAULT_STATUSES) -> bool:
        """True when at least one analysed trial has a value for `column`."""
        df = self.analysed(statuses)
        return column in df.columns and bool(df[column].notna().any())


def with_log_scale(trials: pd.DataFrame) -> pd.DataFrame:
    """`trials` with log FID / log KID columns (NaN where the raw value is missing or not positive)."""
    out = trials.copy()
    for log_col, raw in C.LOG_OF.items():
        if raw in out.columns:
            v = pd.to_numeric(out[raw], errors="coerce").astype(float)
            out[log_col] = np.log(v.where(v > 0))
    if mk.D_X in out.columns and mk.D_G_Z in out.columns:
        out[C.D_GAP] = pd.to_numeric(out[mk.D_X], errors="coerce") - pd.to_numeric(out[mk.D_G_Z], errors="coerce")
    return out


def load_studies(dirs: Iterable[str | Path]) -> StudyData:
    """Load study dirs; raise DataError only when a dir does not exist or holds no results at all."""
    paths = [Path(d) for d in dirs]
    if not paths:
        raise DataError("no study directory given")
    histories, trials, memories, warnings, declared = [], [], [], [], []
    for path in paths:
        if not path.is_dir():
            raise DataError(f"study directory {path} does not exist")
        hist = _read(path / HISTORY_FILE, warnings)
        tri = _read(path / TRIALS_FILE, warnings)
        mem = _read(path / MEMORY_FILE, warnings, optional=True)
        if hist.empty and tri.empty and mem.empty:
            raise DataError(f"{path} holds no {HISTORY_FILE}, {TRIALS_FILE} or {MEMORY_FILE} with rows")
        if tri.empty and not hist.empty:
            warnings.append(f"{path}: {TRIALS_FILE} missing or empty; trial table derived from {HISTORY_FILE}")
            tri = trials_from_history(hist)
        for frame in (hist, tri):
            if not frame.empty:
                if C.STUDY not in frame.columns:
                    frame[C.STUDY] = path.name
                frame[C.STUDY_DIR] = str(path.resolve())
        if not mem.empty:
            mem[C.STUDY] = path.name
        for col in declared_factors(path / STUDY_FILE, tri if not tri.empty else hist):
            if col not in declared:
                declared.append(col)
        histories.append(hist)
        trials.append(tri)
        memories.append(mem)
    history, trial_table = _concat(histories), _concat(trials)
    multi = len(paths) > 1
    for frame in (history, trial_table):
        if not frame.empty:
            frame[C.TRIAL_KEY] = _trial_keys(frame, multi)
    if not trial_table.empty and mk.STATUS not in trial_table.columns:
        warnings.append(f"{TRIALS_FILE} has no '{mk.STATUS}' column: every trial is taken as finished")
        trial_table[mk.STATUS] = mk.STATUS_FINISHED
    if not trial_table.empty:
        trial_table = with_log_scale(trial_table.drop_duplicates(C.TRIAL_KEY, keep="last").reset_index(drop=True))
    if not history.empty and C.TIMESTAMP in history.columns:
        history = history.sort_values([C.TRIAL_KEY, C.TIMESTAMP], kind="stable").reset_index(drop=True)
    return StudyData(paths, history, trial_table, _concat(memories), warnings, declared)


def declared_factors(study_file: Path, frame: pd.DataFrame) -> list[str]:
    """Factor columns from the categorical keys the study's space searched (seed excluded: repeats).

    A key that is a config field is its own column; a named factor (e.g. `activation`, which sets
    g_activation, d_activation and g_norm together) is represented by the first column it sets that
    varies in the results. Continuous keys (uniform/loguniform ranges) are left to the correlations.
    """
    if not study_file.is_file():
        return []
    try:
        space = json.loads(study_file.read_text()).get("space_resolved") or {}
    except (OSError, ValueError):
        return []
    out = []
    for key, dim in (space.get("dimensions") or {}).items():
        if key == "seed" or dim.get("kind") not in ("grid", "choice"):
            continue
        if key in C.CONFIG_FIELDS:
            candidates = [C.cfg(key)]
        else:
            levels = (space.get("factors") or {}).get(key, {})
            candidates = [C.cfg(f) for f in dict.fromkeys(f for lv in levels.values() for f in lv)
                          if f in C.CONFIG_FIELDS]
        varying = [c for c in candidates if c in frame.columns and frame[c].nunique(dropna=False) > 1]
        if varying:
            out.append(varying[0])
    return out


def trials_from_history(history: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: each column's last non-null value, `best_fid` = minimum FID (RESULTS_SCHEMA)."""
    if history.empty or C.TRIAL_ID not in history.columns:
        return pd.DataFrame()
    keys = [C.STUDY, C.TRIAL_ID] if C.STUDY in history.columns else [C.TRIAL_ID]
    grouped = history.groupby(keys, sort=False, dropna=False)
    table = grouped.last().reset_index()  # GroupBy.last skips nulls: last reported value
    table["reports"] = grouped.size().to_numpy()
    if mk.ITERATION in history.columns:
        table["iterations_done"] = table[mk.ITERATION]
    if mk.FID in history.columns:
        table[C.BEST_FID] = grouped[mk.FID].min().to_numpy()
    if mk.STATUS not in table.columns:
        table[mk.STATUS] = mk.STATUS_FINISHED
    return table


def _read(path: Path, warnings: list[str], optional: bool = False) -> pd.DataFrame:
    if not path.is_file():
        if not optional:
            warnings.append(f"{path} is missing")
        return pd.DataFrame()
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - an unreadable (e.g. zero-byte) file must not stop the analysis
        warnings.append(f"{path} could not be read ({type(exc).__name__}: {exc}); treated as empty")
        return pd.DataFrame()


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    return frames[0].copy() if len(frames) == 1 else pd.concat(frames, ignore_index=True, sort=False)


def _trial_keys(frame: pd.DataFrame, multi: bool) -> pd.Series:
    ids = frame[C.TRIAL_ID].astype(str) if C.TRIAL_ID in frame.columns else pd.Series(
        np.arange(len(frame)).astype(str), index=frame.index
    )
    # Two studies may reuse Ray's trial ids: prefix the study name only when there are several dirs.
    return frame[C.STUDY].astype(str) + "/" + ids if multi else ids
