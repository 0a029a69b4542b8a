"""`gan-study status STUDY_DIR`: a progress table of a study, running or not.

Built from the journal (history.jsonl), so it is current even between two Parquet rewrites.
Columns: trial id, the searched config keys, status, iteration, d_loss_mean, fid, reason.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from study.status_table import status_table  # noqa: F401  (re-exported: `status_command.status_table`)
from trainers.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_dir", metavar="DIR", help="the study directory")
    parser.add_argument("--sort", default="", help="sort by this column (e.g. fid, d_loss_mean)")


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
