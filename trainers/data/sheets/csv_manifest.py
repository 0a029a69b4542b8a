"""Any CSV manifest: `path,label[,patient][,split]`, one row per image, paths relative to the CSV's folder.

- `label`: a class name (classes sorted, as the Kaggle folder names: NORMAL=0, PNEUMONIA=1), or 0 / 1
  (NORMAL / PNEUMONIA, as PneumoniaMNIST). A manifest whose labels include `No Finding` holds findings
  (`|`-separated, as NIH's): then the task applies, NORMAL = `No Finding`, the positive class = data_task.
- `patient` (optional): the patient key; else the Kermany rule on the file name (`personN_...`), else one
  image is one patient.
- `split` (optional): train / val / test (also validate, valid, validation); where no row is val, val is
  carved from train by patient; without the column, test and val are both carved by patient.
"""
from __future__ import annotations

import os
from pathlib import Path

from trainers.data.sheets.csvio import read_rows, sheet_error
from trainers.data.sheets.sheet import Sheet, SheetBuilder
from trainers.data.sheets.task import (DEFAULT_TASK, NO_FINDING, OTHER_FINDING, Task, canonical, class_names,
                                       match_finding)
from trainers.data.splits import patient_id
from trainers.errors import DataError

TITLE = "CSV manifest"
SIGNATURE = "a .csv file with columns path,label[,patient][,split]"
SPLITS = {"train": "trainval", "val": "val", "validate": "val", "valid": "val", "validation": "val", "test": "test"}


def detect(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".csv"


def read(path: Path, task: Task) -> Sheet:
    if not path.is_file():
        raise DataError(f"manifest {path} does not exist")
    columns, rows = read_rows(path, ("path", "label"))
    has_patient, has_split = "patient" in columns, "split" in columns
    parsed = []
    for line, f in rows:
        rel, label = f[columns["path"]].strip(), f[columns["label"]].strip()
        if not rel or not label:
            raise sheet_error(path, line, "path and label must not be empty")
        split = ""
        if has_split:
            split = SPLITS.get(f[columns["split"]].strip().lower(), "")
            if not split:
                raise sheet_error(path, line, f"split={f[columns['split']].strip()!r} is not one of train, val, test")
        file = rel if os.path.isabs(rel) else os.path.join(path.parent, rel)
        patient = (f[columns["patient"]].strip() if has_patient else "") or patient_id(os.path.basename(file))
        parsed.append((line, file, label, patient, split))
    labels = {r[2] for r in parsed}
    findings_mode = any(canonical(x) == canonical(NO_FINDING) for lab in labels for x in lab.split("|"))
    if findings_mode:
        finding = match_finding(task, {x.strip() for lab in labels for x in lab.split("|")}, str(path))
        names = class_names(finding)
        task_note = task.describe(finding).split("; views")[0]
    else:
        if canonical(task.finding) != canonical(DEFAULT_TASK):
            raise DataError(f"data_task={task.finding!r} needs findings labels (with 'No Finding'); {path}'s labels "
                            f"are class names: {', '.join(sorted(labels))}")
        numbered = labels <= {"0", "1"}
        names = ("NORMAL", "PNEUMONIA") if numbered else tuple(sorted(labels))
        if len(labels) < 2:
            raise DataError(f"{path}: every row has label {next(iter(labels))!r}; a study needs two classes")
        task_note = ("label 0 = NORMAL, label 1 = PNEUMONIA (as PneumoniaMNIST)" if numbered else
                     "classes named by the label column: " + ", ".join(names) + " (sorted, as class folders)")
    if has_split and not any(r[4] == "test" for r in parsed):
        raise DataError(f"{path}: the split column has no test row; add test rows or drop the column to carve them")
    b = SheetBuilder("csv", TITLE, path.parent, (path,), rows_read=len(parsed))
    for line, file, label, patient, split in parsed:
        b.seen(patient, split, 0, line)
        if findings_mode:
            present = {canonical(x) for x in label.split("|")}
            if canonical(finding) in present:
                value = 1
            elif present == {canonical(NO_FINDING)}:
                value = 0
            else:
                b.leave_out(OTHER_FINDING)
                continue
        else:
            value = int(label) if names == ("NORMAL", "PNEUMONIA") and label in ("0", "1") else names.index(label)
        b.add(file, value, patient, split, 0, line)
    note = ("split column" + ("" if any(r[4] == "val" for r in parsed) else "; val carved from train by patient")
            if has_split else "no split column: test and val carved by patient")
    return b.finish(names, note, task_note, task)
