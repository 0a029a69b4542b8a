"""Export a finished study's compact results for committing: `python3 -m study.export_results STUDY_DIR DEST`.

Copies trials.parquet, history.parquet, study.json, the journal as history.jsonl.gz (from which `gan-study resume`
continues a designed study on another machine: study/runner.resume_from_store) and, when `gan-study yardstick --study STUDY_DIR --out
STUDY_DIR/yardstick.json` has run, yardstick.json (kilobytes, not the checkpoints or Ray state) and
makes them portable: the driver-local `study_dir` and `experiment_path` are dropped from study.json
(read_spec derives the directory from where the file is) and absolute paths beside the checkout, such as
the data file under ../shared (study.json's data and the tables' `config/data`), become paths relative to
the repository root.
"""
from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path
from typing import Any

from study.layout import HISTORY_FILE, JOURNAL_FILE, STUDY_FILE, TRIALS_FILE
from trainers.errors import UserError

REPO = Path(__file__).resolve().parents[1]
MACHINE_LOCAL = ("study_dir", "experiment_path")
YARDSTICK_FILE = "yardstick.json"
JOURNAL_ARCHIVE = JOURNAL_FILE + ".gz"  # the exported journal (study/runner.resume_from_store unpacks it)  # analysis.yardstick.YARDSTICK_FILE


def portable(value: Any, root: Path = REPO) -> Any:
    """`value` with absolute paths under root's parent rewritten relative to root (recursively)."""
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root) for v in value]
    if isinstance(value, str) and os.path.isabs(value) and Path(value).is_relative_to(root.parent):
        return os.path.relpath(value, root)
    return value


def portable_table(src: Path, dest: Path, root: Path = REPO) -> None:
    """Copy a Parquet table with `portable` applied to every string column."""
    import pandas as pd

    df = pd.read_parquet(src)
    for col in df.columns:
        if pd.api.types.is_string_dtype(df[col]) or df[col].dtype == object:
            df[col] = df[col].map(lambda v: portable(v, root)).astype(df[col].dtype)
    df.to_parquet(dest, index=False)


def export_results(study_dir: str | Path, dest: str | Path, root: Path = REPO, *, generators: bool = False) -> Path:
    """Copy the study's compact files into dest with a portable study.json; returns dest.

    Re-scoring outputs (`rescore.parquet`, `memorisation/`) come along; `generators=True` also keeps every finished
    trial's final generator (float16, ~0.7 MB each at 32 px) so `gan-study rescore` works on the copy."""
    src, dest = Path(study_dir), Path(dest)
    missing = [n for n in (TRIALS_FILE, HISTORY_FILE, STUDY_FILE) if not (src / n).is_file()]
    if missing:
        raise UserError(f"{src} lacks {', '.join(missing)}: not a study directory with results")
    dest.mkdir(parents=True, exist_ok=True)
    for name in (TRIALS_FILE, HISTORY_FILE):
        portable_table(src / name, dest / name, root)
    spec = {k: v for k, v in json.loads((src / STUDY_FILE).read_text()).items() if k not in MACHINE_LOCAL}
    (dest / STUDY_FILE).write_text(json.dumps(portable(spec, root), indent=2, sort_keys=True) + "\n")
    if (src / JOURNAL_FILE).is_file():  # a designed study resumes from its journal on another machine
        lines = [json.dumps(portable(json.loads(line), root), allow_nan=True)
                 for line in (src / JOURNAL_FILE).read_text().splitlines() if line.strip()]
        # gzip at level 9 with no timestamp: the same journal gives the same bytes (a clean git diff)
        with open(dest / JOURNAL_ARCHIVE, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(("\n".join(lines) + "\n").encode())
    from trainers.evaluation.kept_generators import keep_generators

    keep_generators(src, dest, trial_ids=None if generators else [])
    if (src / YARDSTICK_FILE).is_file():  # the floor and each trial's FID under every extractor seed
        doc = json.loads((src / YARDSTICK_FILE).read_text())
        (dest / YARDSTICK_FILE).write_text(json.dumps(portable(doc, root), indent=1) + "\n")
    return dest


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--generators"]
    if len(args) != 2:
        sys.exit("usage: python3 -m study.export_results STUDY_DIR DEST [--generators]")
    try:
        print(f"exported to {export_results(args[0], args[1], generators='--generators' in sys.argv)}")
    except UserError as exc:
        sys.exit(f"export_results: error: {exc}")
