"""Atomic file writes (readers never see a half-written file) and per-node build locks for cache entries."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temp path beside `path`; when the block succeeds, fsync it and rename it into place.

    The temp name keeps `path`'s suffix, so writers that add one (np.savez) write where we expect.

    Example:
        >>> with atomic_path("table.parquet") as tmp:  # doctest: +SKIP
        ...     df.to_parquet(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build_lock(path: str | Path) -> "filelock.FileLock":  # noqa: F821 - imported lazily
    """An inter-process lock for building the cache entry at `path` once per node.

    Concurrent trials on one node wait for the first to build (a data split, a feature extractor, a
    TRTR baseline) and then read its file, instead of all paying for it. Use it around
    "if the file exists read it, else build and write it".
    """
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.parent / f".{path.name}.lock"))
