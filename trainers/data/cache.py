"""Decode once: preprocessed splits cached on disk as uint8 .npz, written atomically.

Concurrent Ray trials on one node may race to fill the same entry; each writes a private temp
file and renames it into place, so a reader sees either nothing or a complete file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from trainers.atomic import atomic_path


def default_cache_dir() -> Path:
    """$GAN_STUDY_CACHE, else ~/.cache/gan-study."""
    return Path(os.environ.get("GAN_STUDY_CACHE") or Path.home() / ".cache" / "gan-study")


def cached_arrays(path: Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Return the arrays stored at `path`, building and storing them first on a miss."""
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError):
            pass  # a corrupt entry (disk full, killed writer on another FS): rebuild it
    arrays = build()
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
    return arrays
