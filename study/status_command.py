"""`gan-study status STUDY_DIR`: a progress table of a study, running or not.

Built from the journal (history.jsonl), so it is current even between two Parquet rewrites.
Columns: trial id, the searched config keys, status, iteration, d_loss_mean, fid, reason.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from study.spec import read_spec
from study.tables import load_tables
from trainers import metric_keys as K
from trainers.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_dir", metavar="DIR", help="the study directory")
    parser.add_argument("--sort", default="", help="sort by this column (e.g. fid, d_loss_mean)")


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


def main(args: argparse.Namespace) -> int:
    from study.api import load_study

    table = load_study(args.study_dir).status()
    if args.sort:
        if args.sort not in table:
            raise UserError(f"--sort {args.sort!r} is not a column; columns: {', '.join(table.columns)}")
        table = table.sort_values(args.sort, na_position="last")
    counts = table["status"].value_counts().to_dict() if not table.empty else {}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no trials yet"
    print(f"{Path(args.study_dir).resolve().name}: {len(table)} trials ({summary})")
    if not table.empty:
        with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200,
                               "display.max_colwidth", 60, "display.float_format", "{:.4g}".format):
            print(table.to_string(index=False))
    return 0
