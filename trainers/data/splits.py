"""Patient ids from Kermany file names, and the patient-grouped validation carve.

Kaggle's val folder holds 16 images (one image = 6.25 points), so when `val` is absent or tiny a
validation split of about VAL_FRACTION of each class is carved from train by whole patients:
no patient has images on both sides, so validation scores are not inflated by near-duplicates.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

MIN_VAL_IMAGES = 100  # a given val folder smaller than this is pooled with train and re-split
VAL_FRACTION = 0.10
_PERSON = re.compile(r"^person(\d+)_", re.IGNORECASE)
_IM_NUMBER = re.compile(r"(?:^|-)IM-(\d+)(?:-|$)", re.IGNORECASE)


def patient_id(path: str | Path) -> str:
    """Patient key of a Kermany file name; the file stem for other names (one image = one patient).

    `person1_bacteria_1.jpeg` and `person1_virus_7.jpeg` -> `person1`. NORMAL files carry an IM
    number: `IM-0115-0001.jpeg`, `IM-0115-0001-0002.jpeg` and `NORMAL2-IM-0115-0001.jpeg` all map
    to `im115`. Merging the NORMAL2 batch with the first one by IM number can only make groups
    coarser, which never leaks a patient across splits.
    """
    name = Path(path).name
    m = _PERSON.match(name)
    if m:
        return f"person{int(m.group(1))}"
    m = _IM_NUMBER.search(Path(name).stem)
    if m:
        return f"im{int(m.group(1))}"
    return Path(name).stem


def carve_validation(labels: np.ndarray, patients: list[str], num_classes: int, seed: int,
                     fraction: float = VAL_FRACTION) -> np.ndarray:
    """Boolean mask of the pooled images that form validation: whole patients, ~`fraction` per class.

    Patients are drawn per class in a seeded random order until the class reaches its share; a patient
    drawn for one class goes to validation with all of their images, whatever the class.
    """
    rng = np.random.default_rng(seed)
    patients_arr = np.asarray(patients)
    chosen: set[str] = set()
    for label in range(num_classes):
        ids, counts = np.unique(patients_arr[labels == label], return_counts=True)  # sorted: deterministic
        target, taken = fraction * counts.sum(), 0
        for i in rng.permutation(len(ids)):
            if taken >= target:
                break
            chosen.add(str(ids[i]))
            taken += int(counts[i])
    return np.isin(patients_arr, sorted(chosen))
