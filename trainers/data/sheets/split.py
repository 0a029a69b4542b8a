"""A sheet's train/val/test: the official split files where a dataset has them, else carved by patient.

- `test` is official (NIH test_list.txt, CheXpert valid.csv, MIMIC's split file, a manifest's split column)
  or carved once from everything with a fixed seed (RSNA, manifests without splits): the same for every trial.
- `val` is official (MIMIC `validate`, a manifest's `val`) or carved from train by whole patients with the
  trial's seed, as for the Kaggle tree (`trainers.data.splits.carve_validation`).
No patient ever has images in two splits.
"""
from __future__ import annotations

import numpy as np

from trainers.data.sheets.sheet import Sheet
from trainers.data.splits import VAL_FRACTION, carve_validation

TEST_FRACTION = 0.10
TEST_SEED = 0  # a carved test split does not depend on the trial's seed


def carves_validation(sheet: Sheet) -> bool:
    """True when val is carved from train by patient (no official val): then the seed matters."""
    return not bool((sheet.splits == "val").any())


def official_splits(sheet: Sheet) -> np.ndarray:
    """Every row's split before the val carve: test carved where the sheet has no splits, else as given."""
    splits = sheet.splits.astype("<U8")  # a copy wide enough for 'trainval' (an all-'' array is <U1)
    pool = np.flatnonzero(splits == "")
    if pool.size:
        test = carve_validation(sheet.labels[pool], list(sheet.patients[pool]), len(sheet.class_names), TEST_SEED,
                                fraction=TEST_FRACTION)
        splits[pool[test]] = "test"
        splits[pool[~test]] = "trainval"
    return splits


def split_index(sheet: Sheet, split: str, seed: int | None) -> np.ndarray:
    """Sorted row indices of `split`; seed=None keeps train and its carvable val pooled (the whole train data)."""
    splits = official_splits(sheet)
    if split == "test":
        return np.flatnonzero(splits == "test")
    train = np.flatnonzero((splits == "train") | (splits == "trainval"))
    if not carves_validation(sheet):
        return train if split == "train" else np.flatnonzero(splits == "val")
    if seed is None:
        return train
    in_val = carve_validation(sheet.labels[train], list(sheet.patients[train]), len(sheet.class_names), seed,
                              fraction=VAL_FRACTION)
    return train[in_val] if split == "val" else train[~in_val]
