"""RSNA Pneumonia Detection Challenge (stage 2): `stage_2_train_labels.csv` and `stage_2_train_images/*.dcm`.

`patientId,x,y,width,height,Target`, one row per opacity box (one row with blank box for none); each
patientId is one DICOM image. Target 1 (lung opacity) is the PNEUMONIA class. With
`stage_2_detailed_class_info.csv` beside it, NORMAL is its `Normal` class and `No Lung Opacity / Not
Normal` is left out (an other finding); without it NORMAL is Target 0. There is no official split:
test and val are carved by patient. Every image is frontal; the task can only be Pneumonia.
"""
from __future__ import annotations

from pathlib import Path

from trainers.data.sheets.csvio import read_rows, sheet_error
from trainers.data.sheets.sheet import Sheet, SheetBuilder
from trainers.data.sheets.task import OTHER_FINDING, Task, canonical, class_names
from trainers.errors import DataError

TITLE = "RSNA Pneumonia Detection"
SHEET = "stage_2_train_labels.csv"
DETAIL = "stage_2_detailed_class_info.csv"
IMAGES = "stage_2_train_images"
SIGNATURE = SHEET
TASKS = ("pneumonia", "lung opacity")


def detect(root: Path) -> bool:
    """Any of its files: the label sheet, the class sheet or the image folder (`read` says what is missing)."""
    return (root / SHEET).is_file() or (root / DETAIL).is_file() or (root / IMAGES).is_dir()


def read(root: Path, task: Task) -> Sheet:
    sheet_path = root / SHEET
    if not sheet_path.is_file():
        raise DataError(f"{sheet_path} is missing: an RSNA Pneumonia folder holds it beside {IMAGES}/; copy it "
                        "from the challenge's stage 2 download")
    if canonical(task.finding) not in TASKS:
        raise DataError(f"data_task={task.finding!r} is not a finding of {sheet_path}; it labels only Pneumonia "
                        "(lung opacity)")
    if task.views not in ("frontal", "all"):
        raise DataError(f"data_views={task.views!r}: {sheet_path} has no view column (every RSNA image is frontal); "
                        "use data_views=frontal or all")
    columns, rows = read_rows(sheet_path, ("patientId", "Target"))
    target: dict[str, tuple[int, int]] = {}  # patientId -> (Target, first row)
    rows_read = 0
    for line, f in rows:
        rows_read += 1
        pid, t = f[columns["patientId"]].strip(), f[columns["Target"]].strip()
        if not pid or t not in ("0", "1"):
            raise sheet_error(sheet_path, line, f"patientId={pid!r} Target={t!r}: Target must be 0 or 1")
        if pid in target and target[pid][0] != int(t):
            raise sheet_error(sheet_path, line, f"Target={t} contradicts row {target[pid][1]} of patient {pid}")
        target.setdefault(pid, (int(t), line))
    normal = None
    if (root / DETAIL).is_file():
        columns, rows = read_rows(root / DETAIL, ("patientId", "class"))
        normal = {f[columns["patientId"]].strip() for _, f in rows if f[columns["class"]].strip() == "Normal"}
    b = SheetBuilder("rsna", TITLE, root, (sheet_path,), rows_read=rows_read)
    for pid, (t, line) in target.items():
        if t == 0 and normal is not None and pid not in normal:
            b.leave_out(OTHER_FINDING)
            continue
        b.add(f"{root}/{IMAGES}/{pid}.dcm", t, pid, "", 0, line)
    note = "no official split: test and val carved by patient"
    task_note = ("NORMAL = Target 0" + (f" and class Normal in {DETAIL}" if normal is not None else "")
                 + ", PNEUMONIA = Target 1 (lung opacity); every image frontal")
    counted = (f"{rows_read} rows of {SHEET}, one per opacity box (one with blank box for none): "
               f"{len(target)} images (patientIds)")
    return b.finish(class_names("Pneumonia"), note, task_note, task, counted)
