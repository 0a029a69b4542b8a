"""A label sheet read into one table: the images a task keeps, their class, patient and official split,
and how many rows were left out and why. Every format reader fills a `SheetBuilder`; `finish` checks
that the files exist (naming the first few missing ones), that no patient sits in two official splits (over
every row of the sheet, kept by the task or not: another task on the same data must not leak either), and
fingerprints the result with the task, so two tasks or uncertain-label policies never share a cached split.
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

from trainers.data.notes import SHOWN, listing
from trainers.data.sheets.task import MISSING_FILE, REASONS, Task, canonical
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
    rows_read: int  # data rows of the sheet(s) listing the images (RSNA: one per box, so more than images)
    images_listed: int  # images those rows name: kept + left out
    count_note: str  # what rows_read and images_listed count, for `gan-study data`
    left_out: dict[str, int]
    split_note: str  # how the splits are made, for `gan-study data`
    task_note: str
    missing: tuple[str, ...] = ()  # the first few missing images, 'PATH (SHEET row N)'; the count is in left_out
    fingerprint: str = ""

    def where(self, i: int) -> str:
        """'<sheet> row <n>' of kept image i, for messages."""
        return f"{self.files[int(self.origin[i])]} row {int(self.lines[i])}"

    def missing_note(self) -> str:
        """One line: how many listed images are not on disk, naming the first few with their rows; '' if none."""
        n = self.left_out.get(MISSING_FILE, 0)
        if not n:
            return ""
        return (f"{n} image(s) listed in {', '.join(p.name for p in self.files)} not on disk (left out): "
                + listing(self.missing, n))


@dataclass
class SheetBuilder:
    """Rows in, a `Sheet` out. `seen` records every row's patient and official split (for the leak check);
    `add` keeps an image for the task; `leave_out` counts an image left out and why."""
    format: str
    title: str
    root: Path
    files: tuple[Path, ...]
    rows_read: int = 0
    reasons: Counter = field(default_factory=Counter)
    _rows: list[tuple[str, int, str, str, int, int]] = field(default_factory=list)
    _seen: list[tuple[str, str, int, int]] = field(default_factory=list)

    def seen(self, patient: str, split: str, origin: int, line: int) -> None:
        """A row of the sheet (kept by the task or not) whose patient sits in `split` ("" = carved: unchecked)."""
        if split:
            self._seen.append((patient, split, origin, line))

    def leave_out(self, reason: str) -> None:
        self.reasons[reason] += 1

    def add(self, path: str, label: int, patient: str, split: str, origin: int, line: int) -> None:
        self._rows.append((path, label, patient, split, origin, line))

    def finish(self, class_names: tuple[str, ...], split_note: str, task_note: str, task: Task,
               count_note: str = "") -> Sheet:
        """The sheet; `task` (the `Task`) goes into the fingerprint: another task or policy is another cache key."""
        _check_patient_disjoint(self.files, self._seen, split_note)
        stats = _stat_all([r[0] for r in self._rows])
        kept = [r for r, st in zip(self._rows, stats) if st is not None]
        missing = [f"{r[0]} ({self.files[r[4]]} row {r[5]})" for r, st in zip(self._rows, stats) if st is None]
        self.reasons[MISSING_FILE] += len(missing)
        task_key = f"{canonical(task.finding)}|{task.uncertain}|{task.views}"
        h = hashlib.sha1(f"{VERSION}|{self.format}|{'|'.join(class_names)}|{task_key}\n".encode())
        for (path, label, patient, split, _, _), st in zip(kept, (s for s in stats if s is not None)):
            h.update(f"{path}|{st[0]}|{st[1]}|{label}|{patient}|{split}\n".encode())
        images_listed = len(self._rows) + sum(n for r, n in self.reasons.items() if r != MISSING_FILE)
        sheet = Sheet(
            format=self.format, title=self.title, root=self.root, files=self.files, class_names=class_names,
            paths=[r[0] for r in kept], labels=np.array([r[1] for r in kept], dtype=np.int64),
            patients=np.array([r[2] for r in kept], dtype=str), splits=np.array([r[3] for r in kept], dtype=str),
            origin=np.array([r[4] for r in kept], dtype=np.int16), lines=np.array([r[5] for r in kept], dtype=np.int64),
            rows_read=self.rows_read, images_listed=images_listed,
            count_note=count_note or f"{self.rows_read} rows of {self.files[0].name}, one per image",
            left_out={r: self.reasons[r] for r in REASONS if self.reasons[r]},
            split_note=split_note, task_note=task_note, missing=tuple(missing[:SHOWN]), fingerprint=h.hexdigest()[:16],
        )
        if not sheet.paths:
            why = ", ".join(f"{n} {r}" for r, n in sheet.left_out.items()) or "no rows"
            raise DataError(f"{self.files[0]}: no image is left for the task ({task_note}); left out: {why}"
                            + (f"; {sheet.missing_note()}" if missing else ""))
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


def _check_patient_disjoint(files: tuple[Path, ...], seen: list[tuple[str, str, int, int]], split_note: str) -> None:
    """DataError naming a patient whose rows the official split files put in two splits (train+val lists count
    as train), over every row of the sheet: a row the current task leaves out would leak under another task."""
    if not seen:
        return
    patients = np.array([r[0] for r in seen], dtype=str)
    groups = np.array([SPLIT_GROUPS.get(r[1], "") for r in seen], dtype=str)
    names = [g for g in ("train", "val", "test") if (groups == g).any()]
    for a_i, a in enumerate(names):
        for b in names[a_i + 1:]:
            both = np.intersect1d(patients[groups == a], patients[groups == b])
            if both.size:
                p = both[0]
                ia = int(np.flatnonzero((groups == a) & (patients == p))[0])
                ib = int(np.flatnonzero((groups == b) & (patients == p))[0])
                where = [f"{files[seen[i][2]]} row {seen[i][3]}" for i in (ia, ib)]
                raise DataError(f"patient {p} is in {a} ({where[0]}) and in {b} ({where[1]}): a patient's images "
                                f"must all be in one split; correct the split files ({split_note})")
