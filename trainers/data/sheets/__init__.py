"""Label-sheet datasets: NIH ChestX-ray14, CheXpert, MIMIC-CXR-JPG, RSNA Pneumonia and any CSV manifest.

Each format module reads its sheets into one `Sheet` (images kept by the task, class, patient, official
split, rows left out and why); `split.split_index` turns it into train/val/test by patient;
`trainers.data.load_split` decodes and caches the images like any other source.
"""
from __future__ import annotations

from pathlib import Path

from trainers.data.sheets.csvio import files_fingerprint
from trainers.data.sheets.detect import FORMATS, nearby, resolve, signatures, split_prefix
from trainers.data.sheets.sheet import Sheet
from trainers.data.sheets.task import Task

__all__ = ["FORMATS", "Sheet", "Task", "nearby", "read_sheet", "resolve", "signatures", "split_prefix"]
_memo: dict[tuple, Sheet] = {}  # per process: a trial loads train, reference, val and test from one sheet


def read_sheet(fmt: str, path: Path, task: Task) -> Sheet:
    """The sheet of `path` in format `fmt` under `task`, read once per process while its files are unchanged."""
    sheet_files = [p for p in _sheet_files(fmt, path) if p.is_file()]
    key = (fmt, str(path.resolve()), task, files_fingerprint(sheet_files))
    if key not in _memo:
        if len(_memo) > 8:
            _memo.clear()
        _memo[key] = FORMATS[fmt].read(path, task)
    return _memo[key]


def _sheet_files(fmt: str, path: Path) -> list[Path]:
    if fmt == "csv":
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix in (".csv", ".gz", ".txt")) if path.is_dir() else []
