"""Kaggle/Kermany folder layout: `<root>/{train,val,test}/{CLASS}/<image files>`.

Class names come from the folder names (sorted, so NORMAL=0, PNEUMONIA=1 in the real data); hidden
files and sub-folders of class folders are ignored. When `val` is absent or tiny, train and val are
pooled and re-split by patient (see `splits`).
"""
from __future__ import annotations

import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from trainers.atomic import atomic_path
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


def decode_files(paths: list[Path], resolution: int, hist_eq: bool, skip_unreadable: bool,
                 work_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, R, R) and a keep-mask; decoding runs on threads (PIL releases the GIL while decoding).

    With `work_dir`, files are decoded in shards of SHARD_SIZE, each saved there as soon as it is done, so
    an interrupted decode resumes from the finished shards; the result is then a read-only np.memmap of
    `work_dir/images.npy`, assembled shard by shard so the split is never held in memory twice.
    A progress bar goes to stderr for more than PROGRESS_MIN files.
    """
    def one(path: Path) -> np.ndarray | None:
        return _decode_one(path, resolution, hist_eq, skip_unreadable)

    if work_dir is None:
        with _pool() as pool:
            decoded = list(pool.map(one, paths))
        keep = np.array([d is not None for d in decoded], dtype=bool)
        images = np.stack([d for d in decoded if d is not None]) if keep.any() else _empty(resolution)
        return images, keep
    work_dir.mkdir(parents=True, exist_ok=True)
    shards = [(i, min(i + SHARD_SIZE, len(paths))) for i in range(0, len(paths), SHARD_SIZE)]
    todo = [s for s in shards if not _shard_file(work_dir, s).is_file()]
    progress = _Progress(len(paths), len(paths) - sum(b - a for a, b in todo))
    pool = _pool()
    try:
        for a, b in todo:
            decoded = []
            for d in pool.map(one, paths[a:b]):
                decoded.append(d)
                progress.update(1)
            _save_shard(work_dir, (a, b), decoded, resolution)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: drop queued files, keep finished shards
        progress.close()
    return _assemble(work_dir, shards, resolution)


SHARD_SIZE = 2048  # files per resumable unit: ~34 MB at 128 px; a resume repeats at most one shard
PROGRESS_MIN = 5000  # show a progress bar above this many files (quiet for tests and small trees)


def _decode_one(path: Path, resolution: int, hist_eq: bool, skip: bool) -> np.ndarray | None:
    try:
        return preprocess(read_grayscale(path), resolution, hist_eq)
    except DataError:
        if skip:
            return None
        raise


def _pool() -> ThreadPoolExecutor:
    # Threads, not processes: PIL decodes and resizes without the GIL, and a process pool measured no
    # faster for 128 px PNG or 224 px JPEG (worker start-up and pickling the arrays back eat the gain).
    return ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2))


def _empty(resolution: int) -> np.ndarray:
    return np.zeros((0, resolution, resolution), np.uint8)


def _shard_file(work_dir: Path, shard: tuple[int, int], kind: str = "images") -> Path:
    return work_dir / f"shard-{shard[0]:09d}-{shard[1]:09d}.{kind}.npy"


def _save_shard(work_dir: Path, shard: tuple[int, int], decoded: list, resolution: int) -> None:
    """Keep-mask first, images last: the images file marks the shard done, both written atomically."""
    keep = np.array([d is not None for d in decoded], dtype=bool)
    images = np.stack([d for d in decoded if d is not None]) if keep.any() else _empty(resolution)
    for kind, array in (("keep", keep), ("images", images)):
        with atomic_path(_shard_file(work_dir, shard, kind)) as tmp:
            np.save(tmp, array, allow_pickle=False)


def _assemble(work_dir: Path, shards: list[tuple[int, int]], resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the shards into work_dir/images.npy through a memmap, one shard in memory at a time."""
    keep = np.concatenate([np.load(_shard_file(work_dir, s, "keep")) for s in shards]) if shards else np.zeros(0, bool)
    out = work_dir / "images.npy"
    images = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=(int(keep.sum()), resolution, resolution))
    row = 0
    for s in shards:
        part = np.load(_shard_file(work_dir, s), mmap_mode="r")
        images[row: row + len(part)] = part
        row += len(part)
    images.flush()
    del images
    return np.load(out, mmap_mode="r"), keep


class _Progress:
    """tqdm on stderr when installed, else one line per 10%; silent for PROGRESS_MIN files or fewer."""

    def __init__(self, total: int, done: int):
        self.total, self.done, self.bar, self.shown = total, done, None, done * 10 // max(total, 1)
        if total <= PROGRESS_MIN or done >= total:
            self.total = 0  # disabled
            return
        desc = f"decoding {total} images" + (f" (resuming at {done})" if done else "")
        try:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc=desc, unit="img", file=sys.stderr, mininterval=1.0)
        except ImportError:
            print(desc, file=sys.stderr, flush=True)

    def update(self, n: int) -> None:
        if not self.total:
            return
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.done * 10 // self.total > self.shown:
            self.shown = self.done * 10 // self.total
            print(f"  decoded {self.done}/{self.total}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
