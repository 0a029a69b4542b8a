"""Kaggle/Kermany folder layout: `<root>/{train,val,test}/{CLASS}/<image files>`.

Class names come from the folder names (sorted, so NORMAL=0, PNEUMONIA=1 in the real data); hidden
files and sub-folders of class folders are ignored. When `val` is absent or tiny, train and val are
pooled and re-split by patient (see `splits`).
"""
from __future__ import annotations

import hashlib
import os
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

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
                raise DataError(_empty_class_message(root, split_dir / c))
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


def _empty_class_message(root: Path, class_dir: Path) -> str:
    subs = sorted(e.name for e in os.scandir(class_dir) if e.is_dir())
    if subs:
        return (f"class folder {class_dir} holds no image files, only sub-folders ({subs[0]}, ...); a class folder "
                f"holds its images directly (<root>/{{train,val,test}}/<CLASS>/<image files>); for a label-sheet "
                f"dataset, its sheet belongs in {root}")
    return f"class folder {class_dir} is empty; put the class's images in it or delete it"


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
                 work_dir: Path | None = None, notes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, R, R) and a keep-mask; decoding runs on threads (PIL releases the GIL while decoding).

    With `work_dir`, files are decoded in shards of SHARD_SIZE, each saved there as soon as it is done, so
    an interrupted decode resumes from the finished shards; the result is then a read-only np.memmap of
    `work_dir/images.npy`, assembled shard by shard so the split is never held in memory twice.
    A progress bar goes to stderr for more than PROGRESS_MIN files.
    `notes` receives, in file order, one `note(kind, path, text)` per file skipped as unreadable (kind
    UNREADABLE_NOTE) and per warning a decoder raised (kind WARNING_NOTE): the warning names the file there
    instead of reaching stderr as a bare library line.
    """
    found: dict[str, list[str]] = {}

    def one(path: Path) -> np.ndarray | None:
        _decoding.path, _decoding.found = str(path), found
        try:
            return _decode_one(path, resolution, hist_eq, False)
        except DataError as exc:
            if not skip_unreadable:
                raise
            reason = str(exc).split(f"{path}: ", 1)[-1]  # the path is the note's own field
            found.setdefault(str(path), []).append(note(UNREADABLE_NOTE, path, reason))
            return None
        finally:
            _decoding.path = _decoding.found = None

    def notes_of(part: list[Path]) -> list[str]:
        return [n for p in part for n in found.pop(str(p), [])]

    if work_dir is None:
        with _warnings_per_file(found), _pool() as pool:  # the pool is done before warnings are restored
            decoded = list(pool.map(one, paths))
        keep = np.array([d is not None for d in decoded], dtype=bool)
        images = np.stack([d for d in decoded if d is not None]) if keep.any() else _empty(resolution)
        if notes is not None:
            notes.extend(notes_of(paths))
        return images, keep
    work_dir.mkdir(parents=True, exist_ok=True)
    shards = [(i, min(i + SHARD_SIZE, len(paths))) for i in range(0, len(paths), SHARD_SIZE)]
    todo = [s for s in shards if not _shard_file(work_dir, s).is_file()]
    progress = _Progress(len(paths), len(paths) - sum(b - a for a, b in todo))
    pool = _pool()
    with _warnings_per_file(found):  # around the shutdown too: files still decoding after an error warn here
        try:
            for a, b in todo:
                decoded = []
                for d in pool.map(one, paths[a:b]):
                    decoded.append(d)
                    progress.update(1)
                _save_shard(work_dir, (a, b), decoded, resolution, notes_of(paths[a:b]))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: drop queued files, keep finished shards
            progress.close()
    images, keep, shard_notes = _assemble(work_dir, shards, resolution)
    if notes is not None:
        notes.extend(shard_notes)
    return images, keep


UNREADABLE_NOTE, WARNING_NOTE = "unreadable", "warning"
_decoding = threading.local()  # the file the current decode thread is reading, for its warnings


def note(kind: str, path: Path | str, text: str) -> str:
    """A decode note as stored in the cache: 'KIND<tab>PATH<tab>TEXT' (PATH may carry its sheet row)."""
    return f"{kind}\t{path}\t{' '.join(text.split())}"


def read_note(n: str) -> tuple[str, str]:
    """(kind, 'PATH: TEXT') of a note, for one-line messages."""
    kind, path, text = n.split("\t", 2)
    return kind, f"{path}: {text}"


@contextmanager
def _warnings_per_file(found: dict[str, list[str]]) -> Iterator[None]:
    """Warnings raised while a decode thread reads a file become that file's notes in `found` (every one:
    "always", so a second file's identical warning is not swallowed as a repeat).

    warnings' filters and showwarning are process-wide: the first decode in flight installs the capture and
    the last one removes it (decodes on two threads at once share it); a warning from a thread that is not
    decoding a file is shown as usual.
    """
    global _capturing, _capture_exit
    with _capture_lock:
        if _capturing == 0:
            catch = warnings.catch_warnings()
            catch.__enter__()
            warnings.simplefilter("always")
            shown = warnings.showwarning

            def show(message, category, filename, lineno, file=None, line=None):
                path, into = getattr(_decoding, "path", None), getattr(_decoding, "found", None)
                if path is None or into is None:
                    shown(message, category, filename, lineno, file, line)
                else:
                    into.setdefault(path, []).append(note(WARNING_NOTE, path, f"{category.__name__}: {message}"))

            warnings.showwarning = show
            _capture_exit = catch.__exit__
        _capturing += 1
    try:
        yield
    finally:
        with _capture_lock:
            _capturing -= 1
            if _capturing == 0:
                _capture_exit(None, None, None)


_capture_lock = threading.Lock()
_capturing = 0  # decodes in flight that capture warnings
_capture_exit = None


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


def _save_shard(work_dir: Path, shard: tuple[int, int], decoded: list, resolution: int,
                notes: Sequence[str] = ()) -> None:
    """Keep-mask and notes first, images last: the images file marks the shard done, all written atomically."""
    keep = np.array([d is not None for d in decoded], dtype=bool)
    images = np.stack([d for d in decoded if d is not None]) if keep.any() else _empty(resolution)
    for kind, array in (("keep", keep), ("notes", np.array(notes, dtype=str)), ("images", images)):
        with atomic_path(_shard_file(work_dir, shard, kind)) as tmp:
            np.save(tmp, array, allow_pickle=False)


def _assemble(work_dir: Path, shards: list[tuple[int, int]], resolution: int
              ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Concatenate the shards into work_dir/images.npy through a memmap, one shard in memory at a time."""
    keep = np.concatenate([np.load(_shard_file(work_dir, s, "keep")) for s in shards]) if shards else np.zeros(0, bool)
    notes = [str(n) for s in shards if _shard_file(work_dir, s, "notes").is_file()  # absent in older partial dirs
             for n in np.load(_shard_file(work_dir, s, "notes"))]
    out = work_dir / "images.npy"
    images = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=(int(keep.sum()), resolution, resolution))
    row = 0
    for s in shards:
        part = np.load(_shard_file(work_dir, s), mmap_mode="r")
        images[row: row + len(part)] = part
        row += len(part)
    images.flush()
    del images
    return np.load(out, mmap_mode="r"), keep, notes


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
