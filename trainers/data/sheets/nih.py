"""NIH ChestX-ray14 (Wang et al., CVPR 2017): `Data_Entry_2017.csv` or `Data_Entry_2017_v2020.csv`.

Header `Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,
OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]` (the 2017 file ends each row with a comma);
`Finding Labels` is `|`-separated or `No Finding`. PNGs (some RGBA) lie in `images_001/images/` ...
`images_012/images/` (also read: `images_*/`, `images/`). Splits: the official `train_val_list.txt` /
`test_list.txt` when present (val carved from train_val by patient), else everything carved by patient.
"""
from __future__ import annotations

import os
from pathlib import Path

from trainers.data.sheets.csvio import read_rows, sheet_error
from trainers.data.sheets.sheet import Sheet, SheetBuilder
from trainers.data.sheets.task import NO_FINDING, NO_SPLIT, OTHER_FINDING, VIEW, Task, class_names, match_finding
from trainers.errors import DataError

TITLE = "NIH ChestX-ray14"
SHEETS = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")  # the corrected v2020 file first
LISTS = ("train_val_list.txt", "test_list.txt")
COLUMNS = ("Image Index", "Finding Labels", "Patient ID", "View Position")
SIGNATURE = " or ".join(SHEETS[::-1])


def detect(root: Path) -> bool:
    """Any of its files: the sheet, the split lists or images_NNN/ folders (then `read` says the sheet is missing)."""
    return any((root / s).is_file() for s in SHEETS + LISTS) or any(d.is_dir() for d in root.glob("images_0[0-9][0-9]"))


def read(root: Path, task: Task) -> Sheet:
    sheet_path = next((root / s for s in SHEETS if (root / s).is_file()), None)
    if sheet_path is None:
        raise DataError(f"{root} is not an NIH ChestX-ray14 folder: it has no {SIGNATURE}; copy the label sheet "
                        "from the dataset's root into it")
    lists = [root / n for n in LISTS]
    present = [p.is_file() for p in lists]
    if any(present) and not all(present):
        raise DataError(f"{lists[present.index(False)]} is missing beside {lists[present.index(True)]}; "
                        "keep both official split lists or neither (then splits are carved by patient)")
    split_of: dict[str, str] | None = None
    if all(present):
        split_of = {}
        for p, split in zip(lists, ("trainval", "test")):
            names = p.read_text().split()
            if not names:
                raise DataError(f"split list {p} is empty; copy the complete file again, or remove both "
                                f"{' and '.join(LISTS)} to carve the splits by patient")
            for name in names:
                if split_of.setdefault(name, split) != split:
                    raise DataError(f"{name} is in both {LISTS[0]} and {LISTS[1]} ({root}); an image belongs to one "
                                    "split: restore the official lists")
    images = _image_files(root)
    columns, rows = read_rows(sheet_path, COLUMNS)
    c_name, c_labels, c_patient, c_view = (columns[c] for c in COLUMNS)
    parsed = []
    for line, fields in rows:
        name, labels = fields[c_name].strip(), fields[c_labels].strip()
        if not name or not labels:
            raise sheet_error(sheet_path, line, "Image Index and Finding Labels must not be empty")
        patient = fields[c_patient].strip()
        if not patient.isdigit():
            raise sheet_error(sheet_path, line, f"Patient ID={patient!r} is not a number")
        parsed.append((line, name, {x.strip() for x in labels.split("|")}, str(int(patient)), fields[c_view]))
    finding = match_finding(task, {x for r in parsed for x in r[2]}, str(sheet_path))
    b = SheetBuilder("nih", TITLE, root, (sheet_path,), rows_read=len(parsed))
    for line, name, labels, patient, view in parsed:
        split = "" if split_of is None else split_of.get(name)
        b.seen(patient, split or "", 0, line)
        if not task.view_ok(view):
            b.leave_out(VIEW)
            continue
        if finding in labels:
            label = 1
        elif labels == {NO_FINDING}:
            label = 0
        else:
            b.leave_out(OTHER_FINDING)
            continue
        if split is None:
            b.leave_out(NO_SPLIT)
            continue
        b.add(images.get(name) or os.path.join(root, "images", name), label, patient, split, 0, line)
    note = ("official train_val_list.txt / test_list.txt; val carved from train_val by patient" if split_of is not None
            else "no split lists: test and val carved by patient")
    return b.finish(class_names(finding), note, task.describe(finding), task)


def _image_files(root: Path) -> dict[str, str]:
    """File name -> path over images_*/images/, images_*/ and images/ (one directory listing each)."""
    dirs = sorted(d for d in root.glob("images_*") if d.is_dir())
    dirs = [d / "images" if (d / "images").is_dir() else d for d in dirs] + [root / "images"]
    found: dict[str, str] = {}
    for d in dirs:
        if d.is_dir():
            for e in os.scandir(d):
                if e.name.lower().endswith(".png"):
                    found.setdefault(e.name, e.path)
    return found
