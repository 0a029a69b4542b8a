"""The progress table of a study (what `gan-study status` prints and `Study.status()` returns).

Built from the journal (history.jsonl), so it is current even between two Parquet rewrites. Its own module
so that `study.api` (which returns it) and `study.status_command` (which prints it, through the API) both
depend on it and not on each other.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.spec import read_spec
from study.tables import load_tables
from trainers import metric_keys as K


def status_table(study_dir: str | Path) -> pd.DataFrame:
    """The table `gan-study status` prints, as a DataFrame."""
    spec = read_spec(study_dir)
    trials = load_tables(spec.study_dir).trials_frame()
    if trials.empty:
        return pd.DataFrame(columns=["trial_id", "status"])
    roles = spec.load_space().roles()
    keys = [f"config/{k}" for k in roles["scientific"] + roles["nuisance"] if f"config/{k}" in trials]
    cols = ["trial_id", *keys, "status", "iterations_done", K.D_LOSS_MEAN, K.FID, "reason"]
    table = trials[[c for c in cols if c in trials]].rename(
        columns={**{k: k.split("/", 1)[1] for k in keys}, "iterations_done": "iteration"})
    return table
