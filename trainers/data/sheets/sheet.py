"""A label sheet read into one table: the images a task keeps, their class, patient and official split,
and how many rows were left out and why. Every format reader fills a `SheetBuilder`; `finish` checks
that the files exist, that no patient sits in two official splits, and fingerprints the result.
"""
from __future__ import annotations

import hashlib
import os
import stat as stat_mode
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainers.data.sheets.task import MISSING_FILE, REASONS
from trainers.errors import DataError

VERSION = 1  # bump when readers change which rows they keep or how: part of every sheet's cache key
SPLIT_GROUPS = {"train": "train", "trainval": "train", "val": "val", "test": "test"}


@dataclass
class Sheet:
    format: str  # nih | chexpert | mimic | rsna | csv
    title: str  # "NIH ChestX-ray14"
    root: Path
    files: tuple[Path, ...]  # the label and split files read
    class_names: tuple[str, ...]
    paths: list[str]  # str, not Path: a Path per row costs seconds at 100,000 rows; made Path when decoded
    labels: np.ndarray  # int64 (N,)
    patients: np.ndarray  # str (N,)
    splits: np.ndarray  # str (N,): train | val | test | trainval (val carved from it) | "" (every split carved)
    origin: np.ndarray  # int (N,): index into `files` of the row's sheet
    lines: np.ndarray  # int (N,): the row number in that sheet
    rows_read: int
    left_out: dict[str, int]
    split_note: str  # how the splits are made, for `gan-study data`
    task_note: str
    fingerprint: str = ""

    def where(self, i: int) -> str:
        """'<sheet> row <n>' of kept image i, for messages."""
        return f"{self.files[int(self.origin[i])]} row {int(self.lines[i])}"


@dataclass
class SheetBuilder:
    format: str
    title: str
    root: Path
    files: tuple[Path, ...]
    rows_read: int = 0
    reasons: Counter = field(default_factory=Counter)
    _rows: list[tuple[str, int, str, str, int, int]] = field(default_factory=list)

    def leave_out(self, reason: str) -> None:
        self.reasons[reason] += 1

    def add(self, path: str, label: int, patient: str, split: str, origin: int, line: int) -> None:
        self._rows.append((path, label, patient, split, origin, line))

    def finish(self, class_names: tuple[str, ...], split_note: str, task_note: str) -> Sheet:
        stats = _stat_all([r[0] for r in self._rows])
        kept = [r for r, st in zip(self._rows, stats) if st is not None]
        self.reasons[MISSING_FILE] += len(self._rows) - len(kept)
        h = hashlib.sha1(f"{VERSION}|{self.format}|{'|'.join(class_names)}\n".encode())
        for (path, label, patient, split, _, _), st in zip(kept, (s for s in stats if s is not None)):
            h.update(f"{path}|{st[0]}|{st[1]}|{label}|{patient}|{split}\n".encode())
        sheet = Sheet(
            format=self.format, title=self.title, root=self.root, files=self.files, class_names=class_names,
            paths=[r[0] for r in kept], labels=np.array([r[1] for r in kept], dtype=np.int64),
            patients=np.array([r[2] for r in kept], dtype=str), splits=np.array([r[3] for r in kept], dtype=str),
            origin=np.array([r[4] for r in kept], dtype=np.int16), lines=np.array([r[5] for r in kept], dtype=np.int64),
            rows_read=self.rows_read, left_out={r: self.reasons[r] for r in REASONS if self.reasons[r]},
            split_note=split_note, task_note=task_note, fingerprint=h.hexdigest()[:16],
        )
        if not sheet.paths:
            raise DataError(f"{self.files[0]}: no image is left for the task ({task_note}); left out: "
                            + ", ".join(f"{n} {r}" for r, n in sheet.left_out.items()))
        _check_patient_disjoint(sheet)
        return sheet


def _stat_all(paths: list[str]) -> list[tuple[int, int] | None]:
    """(size, mtime_ns) per file, None where missing; on threads (a network file system answers slowly)."""
    def chunk(part: list[str]) -> list[tuple[int, int] | None]:
        out = []
        for p in part:
            try:
                st = os.stat(p)
                out.append((st.st_size, st.st_mtime_ns) if stat_mode.S_ISREG(st.st_mode) else None)
            except OSError:
                out.append(None)
        return out

    step = max(1, len(paths) // 32 + 1)
    with ThreadPoolExecutor(max_workers=8) as pool:
        parts = pool.map(chunk, [paths[i:i + step] for i in range(0, len(paths), step)])
    return [s for part in parts for s in part]


def _check_patient_disjoint(sheet: Sheet) -> None:
    """DataError naming a patient whose images the official split files put in two splits."""
    groups = np.array([SPLIT_GROUPS.get(s, "") for s in sheet.splits])
    names = [g for g in ("train", "val", "test") if (groups == g).any()]
    for a_i, a in enumerate(names):
        for b in names[a_i + 1:]:
            both = np.intersect1d(sheet.patients[groups == a], sheet.patients[groups == b])
            if both.size:
                p = both[0]
                ia = int(np.flatnonzero((groups == a) & (sheet.patients == p))[0])
                ib = int(np.flatnonzero((groups == b) & (sheet.patients == p))[0])
                raise DataError(f"patient {p} is in {a} ({sheet.where(ia)}) and in {b} ({sheet.where(ib)}): "
                                "a patient's images must all be in one split")
