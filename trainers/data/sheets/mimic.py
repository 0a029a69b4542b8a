"""MIMIC-CXR-JPG 2.0.0 (Johnson et al., 2019): the split, CheXpert-labeler and metadata sheets.

`mimic-cxr-2.0.0-split.csv.gz` (`dicom_id,study_id,subject_id,split`, split train / validate / test) lists
every image; `mimic-cxr-2.0.0-chexpert.csv.gz` labels each study (`subject_id,study_id`, 14 observations
coded as CheXpert's); `mimic-cxr-2.0.0-metadata.csv.gz` gives each image's `ViewPosition`. JPGs lie at
`files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg` (XX: the subject id's first two digits). Patient: `subject_id`.
The un-gzipped `.csv` names are read too.
"""
from __future__ import annotations

from pathlib import Path

from trainers.data.sheets.csvio import check_codes, coded, read_rows, sheet_error
from trainers.data.sheets.sheet import Sheet, SheetBuilder
from trainers.data.sheets.task import NO_FINDING, NO_LABEL, VIEW, Task, class_names, coded_label, match_finding
from trainers.errors import DataError

TITLE = "MIMIC-CXR-JPG"
PREFIX = "mimic-cxr-2.0.0-"
SIGNATURE = f"{PREFIX}split.csv.gz"
SPLITS = {"train": "trainval", "validate": "val", "test": "test"}
NOT_FINDINGS = (NO_FINDING, "Support Devices")


def _sheet(root: Path, kind: str) -> Path:
    gz = root / f"{PREFIX}{kind}.csv.gz"
    return gz if gz.is_file() or not (root / f"{PREFIX}{kind}.csv").is_file() else root / f"{PREFIX}{kind}.csv"


def detect(root: Path) -> bool:
    """Any of its sheets (`read` says which one is missing)."""
    return any(_sheet(root, k).is_file() for k in ("split", "chexpert", "metadata"))


def read(root: Path, task: Task) -> Sheet:
    split_path, label_path, meta_path = (_sheet(root, k) for k in ("split", "chexpert", "metadata"))
    for p in (split_path, label_path):
        if not p.is_file():
            raise DataError(f"{p} is missing: a MIMIC-CXR-JPG folder holds {PREFIX}split.csv.gz and "
                            f"{PREFIX}chexpert.csv.gz (plain .csv too); copy it from the dataset's root")
    columns, rows = read_rows(label_path, ("subject_id", "study_id", NO_FINDING), whole_rows=True)
    observations = [c for c, i in sorted(columns.items(), key=lambda kv: kv[1])
                    if c not in ("subject_id", "study_id")]
    finding = match_finding(task, [c for c in observations if c not in NOT_FINDINGS], str(label_path))
    others = [c for c in observations if c not in NOT_FINDINGS and c != finding]
    study_label: dict[str, int | str] = {}
    c_none, c_finding, c_others = columns[NO_FINDING], columns[finding], [columns[c] for c in others]
    c_obs = [columns[c] for c in observations]
    label_rows = 0
    for line, f in rows:
        label_rows += 1
        check_codes(label_path, line, observations, [f[i] for i in c_obs])
        value = coded(label_path, line, finding, f[c_finding])
        # the other findings matter only for an uncertain finding read as negative (U-Zeros)
        others_positive = value == -1.0 and any(coded(label_path, line, "", f[i]) == 1.0 for i in c_others)
        study_label[f[columns["study_id"]].strip()] = coded_label(
            coded(label_path, line, NO_FINDING, f[c_none]), value, others_positive, task.uncertain)
    views: dict[str, str] = {}
    if meta_path.is_file():
        columns, rows = read_rows(meta_path, ("dicom_id", "ViewPosition"))
        views = {f[columns["dicom_id"]].strip(): f[columns["ViewPosition"]] for _, f in rows}
    elif task.views != "all":
        raise DataError(f"{meta_path} is missing: it holds the views data_views={task.views!r} selects "
                        "(or set data_views=all)")
    columns, rows = read_rows(split_path, ("dicom_id", "study_id", "subject_id", "split"))
    b = SheetBuilder("mimic", TITLE, root, (split_path,))
    for line, f in rows:
        b.rows_read += 1
        dicom, study, subject, split = (f[columns[c]].strip() for c in ("dicom_id", "study_id", "subject_id", "split"))
        if split not in SPLITS:
            raise sheet_error(split_path, line, f"split={split!r} is not one of {', '.join(SPLITS)}")
        if not subject.isdigit() or not study.isdigit():
            raise sheet_error(split_path, line, f"subject_id={subject!r} and study_id={study!r} must be numbers")
        b.seen(subject, SPLITS[split], 0, line)
        if task.views != "all" and not task.view_ok(views.get(dicom, "")):
            b.leave_out(VIEW)
            continue
        label = study_label.get(study, NO_LABEL)
        if isinstance(label, str):
            b.leave_out(label)
            continue
        path = f"{root}/files/p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg"
        b.add(path, label, subject, SPLITS[split], 0, line)
    note = "official split file (train / validate / test)"
    counted = (f"{b.rows_read} rows of {split_path.name}, one per image; {label_rows} rows of {label_path.name}, "
               "one per study")
    return b.finish(class_names(finding), note, task.describe(finding), task, counted)
