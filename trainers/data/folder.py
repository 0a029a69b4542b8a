"""Kaggle/Kermany folder layout: `<root>/{train,val,test}/{CLASS}/*` with patient-grouped validation.

Class names come from the folder names (sorted, so NORMAL=0, PNEUMONIA=1 in the real data).
Patient ids are parsed from Kermany names: `personN_bacteria_M.jpeg` -> `personN`; NORMAL files
`IM-0115-0001.jpeg` and `NORMAL2-IM-1427-0001.jpeg` -> the name without the trailing image number.
When `val` is absent or tiny (Kaggle ships 16 images: one image = 6.25 points), a validation split of
about VAL_FRACTION of each class is carved from train by whole patients, so no patient is in both.
"""
from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from trainers.data.decode import preprocess, read_grayscale
from trainers.errors import DataError

MIN_VAL_IMAGES = 100
VAL_FRACTION = 0.10
_PERSON = re.compile(r"^(person\d+)_", re.IGNORECASE)
_TRAILING_NUMBER = re.compile(r"^(.*)-\d+$")


def scan(root: Path) -> tuple[dict[str, dict[str, list[Path]]], str]:
    """({split: {class: sorted files}}, fingerprint) for the splits present; DataError for a wrong layout.

    The fingerprint hashes every file's relative path, size and mtime, so it changes whenever the data
    does. os.scandir reuses the directory read's stat results: a cached load of 5,216 files stays fast.
    """
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; expected <root>/{{train,val,test}}/<CLASS>/*")
    layout: dict[str, dict[str, list[Path]]] = {}
    h = hashlib.sha1()
    for split in ("train", "val", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
        if not classes:
            raise DataError(f"{split_dir} has no class folders; expected {split_dir}/<CLASS>/<image files>")
        layout[split] = {}
        for c in classes:
            entries = sorted((e for e in os.scandir(split_dir / c) if e.is_file() and not e.name.startswith(".")),
                             key=lambda e: e.name)
            if not entries:
                raise DataError(f"class folder {split_dir / c} is empty")
            for e in entries:
                st = e.stat()
                h.update(f"{split}/{c}/{e.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            layout[split][c] = [Path(e.path) for e in entries]
    if "train" not in layout:
        raise DataError(f"data folder {root} has no train/ folder; expected <root>/{{train,val,test}}/<CLASS>/*")
    names = sorted(layout["train"])
    for split, classes in layout.items():
        if sorted(classes) != names:
            raise DataError(f"{root / split} has classes {sorted(classes)} but train has {names}")
    return layout, h.hexdigest()[:16]


def patient_id(path: Path) -> str:
    m = _PERSON.match(path.name)
    if m:
        return m.group(1).lower()
    stem = path.stem
    m = _TRAILING_NUMBER.match(stem)
    return m.group(1) if m else stem


def split_files(layout: dict, split: str, seed: int) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Files and labels of one split, carving a patient-grouped val from train when needed."""
    class_names = tuple(sorted(layout["train"]))
    if split == "test" and "test" not in layout:
        raise DataError("this data folder has no test/ split")
    val_given = sum(len(v) for v in layout.get("val", {}).values())
    if split == "test" or (split in ("train", "val") and val_given >= MIN_VAL_IMAGES):
        files = [(f, class_names.index(c)) for c in class_names for f in layout[split][c]]
    else:
        # Pool train with the tiny val (not wasted) and re-split by patient, per class.
        pool = [(f, class_names.index(c)) for s in ("train", "val") if s in layout
                for c in class_names for f in layout[s][c]]
        rng = np.random.default_rng(seed)
        val_patients: set[tuple[int, str]] = set()
        for label in range(len(class_names)):
            by_patient: dict[str, int] = {}
            for f, lab in pool:
                if lab == label:
                    by_patient[patient_id(f)] = by_patient.get(patient_id(f), 0) + 1
            patients = sorted(by_patient)
            target = VAL_FRACTION * sum(by_patient.values())
            taken = 0
            for i in rng.permutation(len(patients)):
                if taken >= target:
                    break
                val_patients.add((label, patients[i]))
                taken += by_patient[patients[i]]
        # A patient id in val for any class goes to val for all classes: no patient straddles the split.
        val_ids = {pid for _, pid in val_patients}
        files = [(f, lab) for f, lab in pool if (patient_id(f) in val_ids) == (split == "val")]
    paths = [f for f, _ in files]
    return paths, np.array([lab for _, lab in files], dtype=np.int64), class_names


def decode_files(paths: list[Path], resolution: int, hist_eq: bool, skip_unreadable: bool) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, R, R) and a keep-mask; decoding runs on threads (PIL releases the GIL)."""
    def one(path: Path) -> np.ndarray | None:
        try:
            return preprocess(read_grayscale(path), resolution, hist_eq)
        except DataError:
            if skip_unreadable:
                return None
            raise

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        decoded = list(pool.map(one, paths))
    keep = np.array([d is not None for d in decoded], dtype=bool)
    images = np.stack([d for d in decoded if d is not None]) if keep.any() else np.zeros((0, resolution, resolution), np.uint8)
    return images, keep
