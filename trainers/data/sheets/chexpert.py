"""CheXpert (Irvin et al., AAAI 2019), e.g. CheXpert-v1.0-small: `train.csv` and `valid.csv`.

Columns `Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,...` with 14 observations coded 1.0 / 0.0 /
-1.0 (uncertain) / blank. `Path` is relative to the folder above the root
(`CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg`); its first part is replaced by the
root, so a renamed root still works. Patient: the `patientNNNNN` folder. Splits: the official test set is
not distributed, so the expert-labelled `valid.csv` (its own patients) is the test split and val is
carved from `train.csv` by patient.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from trainers.data.sheets.csvio import check_codes, coded, read_rows, sheet_error
from trainers.data.sheets.sheet import Sheet, SheetBuilder
from trainers.data.sheets.task import NO_FINDING, VIEW, Task, class_names, coded_label, match_finding
from trainers.errors import DataError

TITLE = "CheXpert"
SHEETS = ("train.csv", "valid.csv")
SIGNATURE = "train.csv and valid.csv with columns Path, Frontal/Lateral, AP/PA"
COLUMNS = ("Path", "Frontal/Lateral", "AP/PA", NO_FINDING)
FIRST_OBSERVATION = NO_FINDING  # the 14 observation columns start here
NOT_FINDINGS = (NO_FINDING, "Support Devices")  # not pathologies: never make an image abnormal
_PATIENT = re.compile(r"^patient\d+$")


def detect(root: Path) -> bool:
    """By its files: train.csv and valid.csv; one of them with a `Path` column; or train/ or valid/ holding
    patientNNNNN folders. What is wrong with them (a missing sheet or column) is `read`'s to say."""
    present = [root / s for s in SHEETS if (root / s).is_file()]
    if len(present) == len(SHEETS):
        return True
    if present:
        with open(present[0], encoding="utf-8-sig", errors="replace") as f:
            if f.readline().startswith("Path,"):
                return True
    return any(_has_patient_folders(root / d) for d in ("train", "valid"))


def _has_patient_folders(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    with os.scandir(folder) as entries:
        for _, e in zip(range(8), entries):  # the first few entries say it
            if e.is_dir() and _PATIENT.match(e.name):
                return True
    return False


def read(root: Path, task: Task) -> Sheet:
    sheets = tuple(root / s for s in SHEETS)
    for s in sheets:
        if not s.is_file():
            raise DataError(f"{s} is missing: a CheXpert folder holds {SIGNATURE}; copy it from the dataset's root")
    parsed, findings, rows_per_sheet = [], set(), []
    for origin, (sheet_path, split) in enumerate(zip(sheets, ("trainval", "test"))):
        columns, rows = read_rows(sheet_path, COLUMNS, whole_rows=True)
        observations = [c for c, i in sorted(columns.items(), key=lambda kv: kv[1]) if i >= columns[FIRST_OBSERVATION]]
        findings.update(c for c in observations if c not in NOT_FINDINGS)
        for line, fields in rows:
            rel = fields[columns["Path"]].strip()
            parts = rel.replace("\\", "/").split("/")
            patient = next((p for p in parts if _PATIENT.match(p)), None)
            if patient is None:
                raise sheet_error(sheet_path, line, f"Path {rel!r} has no patientNNNNN folder")
            codes = {c: fields[columns[c]] for c in observations}
            check_codes(sheet_path, line, observations, codes.values())
            frontal = fields[columns["Frontal/Lateral"]].strip()
            view = fields[columns["AP/PA"]].strip().upper() if frontal == "Frontal" else "LATERAL"
            if frontal == "Frontal" and view not in ("AP", "PA"):
                view = "FRONTAL"
            path = os.path.join(root, *(parts[1:] if parts[0] not in ("train", "valid") else parts))
            parsed.append((origin, line, path, patient, split, view, codes))
        rows_per_sheet.append(len(parsed) - sum(rows_per_sheet))
    finding = match_finding(task, findings, f"{sheets[0]}'s observation columns")
    b = SheetBuilder("chexpert", TITLE, root, sheets, rows_read=len(parsed))
    for origin, line, path, patient, split, view, codes in parsed:
        b.seen(patient, split, origin, line)
        where = sheets[origin]
        value = coded(where, line, finding, codes.get(finding, ""))
        # the other findings matter only for an uncertain finding read as negative (U-Zeros)
        others = value == -1.0 and any(coded(where, line, c, v) == 1.0 for c, v in codes.items()
                                       if c not in NOT_FINDINGS and c != finding)
        label = coded_label(coded(where, line, NO_FINDING, codes[NO_FINDING]), value, others, task.uncertain)
        if not task.view_ok(view):
            b.leave_out(VIEW)
        elif isinstance(label, str):
            b.leave_out(label)
        else:
            b.add(path, label, patient, split, origin, line)
    note = "official train.csv (val carved by patient) / valid.csv as test (the test set is not distributed)"
    counted = " + ".join(f"{n} rows of {s.name}" for n, s in zip(rows_per_sheet, sheets)) + ", one per image"
    return b.finish(class_names(finding), note, task.describe(finding), task, counted)
