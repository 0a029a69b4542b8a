"""MedMNIST-style .npz files, and finding PneumoniaMNIST locally or through the `medmnist` package.

Layout: `{split}_images` uint8 (N, H, W) or (N, H, W, 1|3) and `{split}_labels` (N,) or (N, 1)
integers in [0, classes). Two-class files are NORMAL=0 / PNEUMONIA=1 (PneumoniaMNIST's labels).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from trainers.errors import DataError

PNEUMONIAMNIST_SIZES = (28, 64, 128, 224)  # MedMNIST+ variants: pneumoniamnist.npz, pneumoniamnist_64.npz, ...
ENV_PNEUMONIAMNIST = "GAN_STUDY_PNEUMONIAMNIST"


def read_npz_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images uint8 (N, H, W), labels int64 (N,), class names); DataError naming the bad key."""
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read {path} as .npz: {exc}") from None
    with f:
        ik, lk = f"{split}_images", f"{split}_labels"
        for key in (ik, lk):
            if key not in f.files:
                raise DataError(f"{path} has no key {key!r}; keys present: {', '.join(sorted(f.files))}")
        images, labels = f[ik], f[lk]
    if images.dtype != np.uint8:
        raise DataError(f"{path}: {ik} has dtype {images.dtype}; expected uint8")
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        images = images.mean(axis=-1).round().astype(np.uint8) if images.shape[-1] == 3 else images[..., 0]
    if images.ndim != 3 or images.shape[1] != images.shape[2] or images.shape[0] == 0:
        raise DataError(f"{path}: {ik} has shape {images.shape}; expected (N, H, H) or (N, H, H, 1|3) with N > 0")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{path}: {lk} has shape {labels.shape}; expected ({images.shape[0]},) or ({images.shape[0]}, 1)")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise DataError(f"{path}: {lk} must hold non-negative integer class labels")
    n_classes = max(2, int(labels.max()) + 1)
    names = ("NORMAL", "PNEUMONIA") if n_classes == 2 else tuple(f"class{i}" for i in range(n_classes))
    return images, labels.astype(np.int64), names


def file_fingerprint(path: Path) -> str:
    """Content hash (the files are a few MB): the same data at another path shares the cache."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def find_pneumoniamnist(resolution: int, cache_dir: Path) -> Path:
    """A local PneumoniaMNIST file, downloading with `medmnist` into the cache when online."""
    env = os.environ.get(ENV_PNEUMONIAMNIST)
    if env:
        if not Path(env).is_file():
            raise DataError(f"{ENV_PNEUMONIAMNIST}={env} is not a file")
        return Path(env)
    root = cache_dir / "medmnist"
    wanted = [s for s in PNEUMONIAMNIST_SIZES if s >= resolution] or [PNEUMONIAMNIST_SIZES[-1]]
    candidates = [root / _name(s) for s in wanted] + [root / _name(s) for s in reversed(PNEUMONIAMNIST_SIZES)]
    for c in candidates:
        if c.is_file():
            return c
    size = wanted[0]
    try:
        import medmnist

        root.mkdir(parents=True, exist_ok=True)
        medmnist.PneumoniaMNIST(split="train", download=True, root=str(root), size=size)
    except Exception as exc:  # noqa: BLE001 - offline, HTTP errors, checksum: all one message
        raise DataError(
            f"PneumoniaMNIST not found (looked for ${ENV_PNEUMONIAMNIST} and {root}/{_name(size)}) and the "
            f"download failed ({exc.__class__.__name__}); set {ENV_PNEUMONIAMNIST}=/path/to/pneumoniamnist.npz "
            f"or copy the file into {root}/"
        ) from None
    if not (root / _name(size)).is_file():
        raise DataError(f"medmnist reported success but {root / _name(size)} is missing")
    return root / _name(size)


def _name(size: int) -> str:
    return "pneumoniamnist.npz" if size == 28 else f"pneumoniamnist_{size}.npz"
