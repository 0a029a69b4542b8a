"""Kaggle/Kermany folder layout: `<root>/{train,val,test}/{CLASS}/<image files>`.

Class names come from the folder names (sorted, so NORMAL=0, PNEUMONIA=1 in the real data); hidden
files and sub-folders of class folders are ignored. When `val` is absent or tiny, train and val are
pooled and re-split by patient (see `splits`).
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from trainers.data.decode import preprocess, read_grayscale
from trainers.data.splits import MIN_VAL_IMAGES, carve_validation, patient_id
from trainers.errors import DataError


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


def carves_validation(layout: dict) -> bool:
    """True when train/val are re-split by patient (val absent or tiny): then the seed matters."""
    return sum(len(v) for v in layout.get("val", {}).values()) < MIN_VAL_IMAGES


def split_files(layout: dict, root: Path, split: str, seed: int | None) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Files (class-major, name-sorted) and labels of one split, carving a patient-grouped val when needed.

    seed=None returns the pooled train (+ tiny val) uncarved: the whole labelled training data.
    """
    class_names = tuple(sorted(layout["train"]))
    if split not in ("train", "val") or not carves_validation(layout):
        if split not in layout:
            raise DataError(f"data folder {root} has no {split}/ folder; expected {root}/{split}/<CLASS>/*")
        files = [(f, class_names.index(c)) for c in class_names for f in layout[split][c]]
        return [f for f, _ in files], np.array([lab for _, lab in files], dtype=np.int64), class_names
    # Pool train with the tiny val (not wasted) and re-split by whole patients, per class.
    pool = [(f, class_names.index(c)) for s in ("train", "val") if s in layout
            for c in class_names for f in layout[s][c]]
    labels = np.array([lab for _, lab in pool], dtype=np.int64)
    if seed is None:
        return [f for f, _ in pool], labels, class_names
    in_val = carve_validation(labels, [patient_id(f) for f, _ in pool], len(class_names), seed)
    keep = in_val if split == "val" else ~in_val
    return [f for (f, _), k in zip(pool, keep) if k], labels[keep], class_names


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
