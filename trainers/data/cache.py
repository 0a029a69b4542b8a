"""Decode once, share everywhere: preprocessed splits cached on disk as read-only memory-mapped .npy.

An entry is a directory `<cache>/data/<key>/` holding one `.npy` per array (images.npy, labels.npy, ...).
`images.npy` is opened with `mmap_mode="r"`: every trial process on a node maps the same page-cache
pages, so 8 concurrent trials hold one copy of the split, not 8. The small arrays are read normally.

Writes are atomic and happen once per node:
- one builder at a time per entry (a file lock beside it); the others wait, then open its result;
- the builder writes into a private temp directory and renames it into place, so a reader sees either
  no entry or a complete one (never a half-written directory);
- a slow build (decoding a large folder) may keep resumable progress in `<key>.partial/`, which `build`
  receives; an interrupted build (Ctrl-C, kill) resumes from it, and it is removed once the entry exists.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

from trainers.atomic import build_lock

Arrays = dict[str, np.ndarray]
MMAPPED = "images"  # the one large array: memory-mapped; the others are small and read into memory
_opened: dict[tuple[str, int, int, str], Arrays] = {}  # per process: reopening an entry returns the same map
BUILD_ID = "build.id"  # a random token written with every entry: a rebuilt entry never matches a memoised one


def default_cache_dir() -> Path:
    """$GAN_STUDY_CACHE, else ~/.cache/gan-study."""
    return Path(os.environ.get("GAN_STUDY_CACHE") or Path.home() / ".cache" / "gan-study")


def cached_arrays(entry: Path, build: Callable[[Path], Arrays]) -> Arrays:
    """The arrays of the cache entry directory `entry`, building and publishing it first on a miss.

    `build(work_dir)` returns the arrays. It may keep resumable progress in `work_dir` (it creates it;
    kept across interrupted builds, removed once the entry is published) and may return an np.memmap of
    a `.npy` file it wrote there, which is moved into the entry, not copied. The returned `images` is a
    read-only np.memmap; the other arrays are read-only too (one process shares them across loads).
    """
    arrays = _open(entry)
    if arrays is not None:
        return arrays
    with build_lock(entry):
        arrays = _open(entry)  # another process may have built it while we waited for the lock
        if arrays is not None:
            return arrays
        _discard(entry)  # a corrupt entry (disk full, a copy from elsewhere) is rebuilt
        for stale in entry.parent.glob(f".{entry.name}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)  # temp dirs of builders killed mid-publish
        work = entry.with_name(f"{entry.name}.partial")  # created by a build that uses it
        _publish(entry, build(work), work)
        shutil.rmtree(work, ignore_errors=True)
        arrays = _open(entry)
    if arrays is None:
        raise OSError(f"data cache entry {entry} was written but cannot be read back")
    return arrays


def _open(entry: Path) -> Arrays | None:
    """The entry's arrays (images memory-mapped, read-only), or None when it is missing or unreadable."""
    try:
        st = (entry / f"{MMAPPED}.npy").stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    # A rebuilt entry is a new file: a new map. Its build id tells it apart even where the file system reuses
    # the inode within one timestamp tick (entries of older versions have none: inode and mtime only).
    memo_key = (str(entry), st.st_ino, st.st_mtime_ns, _build_id(entry))
    if memo_key in _opened:
        return _opened[memo_key]
    try:
        arrays = {}
        for f in sorted(entry.glob("*.npy")):
            if f.stem == MMAPPED:
                arrays[f.stem] = np.load(f, mmap_mode="r", allow_pickle=False)
            else:
                arrays[f.stem] = np.load(f, allow_pickle=False)
                arrays[f.stem].setflags(write=False)  # shared by every load of this entry in the process
    except (FileNotFoundError, ValueError, EOFError):
        return None  # a truncated, missing or foreign file: a miss, rebuilt (other OSErrors are real errors)
    if "labels" not in arrays or len(arrays["labels"]) != len(arrays[MMAPPED]):
        return None
    _opened[memo_key] = arrays
    return arrays


def _publish(entry: Path, arrays: Arrays, work: Path) -> None:
    """Write `arrays` as `entry/<name>.npy` into a temp dir, fsync, and rename it into place."""
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}.", suffix=".tmp"))
    try:
        for name, a in arrays.items():
            dst = tmp / f"{name}.npy"
            src = Path(a.filename) if isinstance(a, np.memmap) and a.filename else None
            if src is not None and src.parent == Path(os.path.abspath(work)):  # memmap names are absolute
                os.replace(src, dst)  # already written by the build: move it, never hold it twice
            else:
                np.save(dst, np.asarray(a), allow_pickle=False)
            _fsync(dst)
        (tmp / BUILD_ID).write_text(uuid.uuid4().hex)
        _fsync(tmp / BUILD_ID)
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700; the cache is shared by every trial on the node
        _fsync(tmp)
        try:
            os.rename(tmp, entry)  # atomic: readers see no entry or a complete one
        except OSError:
            if _open(entry) is None:
                raise
            return  # published first by a builder the lock did not exclude (a lock-less network FS)
        _fsync(entry.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build_id(entry: Path) -> str:
    try:
        return (entry / BUILD_ID).read_text()
    except OSError:
        return ""


def _discard(entry: Path) -> None:
    """Move an unreadable entry out of the way, then delete it (open maps of it stay valid)."""
    if entry.exists():
        trash = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}.", suffix=".tmp"))
        os.replace(entry, trash / "old")
        shutil.rmtree(trash, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
