"""MedMNIST-style .npz files, and finding PneumoniaMNIST locally or through the `medmnist` package.

Layout: `{split}_images` uint8 (N, H, W) or (N, H, W, 1|3) and `{split}_labels` (N,) or (N, 1)
integers in [0, classes). The class count is read from every `*_labels` key of the file, so all splits
agree; two-class files are NORMAL=0 / PNEUMONIA=1 (PneumoniaMNIST's labels). RGB images are converted
to luminance with the same weights as image files.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from trainers.data.decode import LUMA
from trainers.errors import DataError

PNEUMONIAMNIST_SIZES = (28, 64, 128, 224)  # MedMNIST+ variants: pneumoniamnist.npz, pneumoniamnist_64.npz, ...
ENV_PNEUMONIAMNIST = "GAN_STUDY_PNEUMONIAMNIST"
MAX_CLASSES = 100  # TrialConfig.num_classes allows at most 100
CONTENT_HASH_BYTES = 64 << 20  # files up to this size are fingerprinted by content, larger by stat


def read_npz_split(path: Path, split: str, num_classes: int = 0) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images uint8 (N, H, W), labels int64 (N,), class names); DataError naming the bad key.

    `num_classes` > 0 fixes the class count (PneumoniaMNIST: 2); 0 infers it from the labels.
    """
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
        all_labels = {k: f[k] for k in f.files if k.endswith("_labels")}
    if images.dtype != np.uint8:
        raise DataError(f"{path}: {ik} has dtype {images.dtype}; expected uint8")
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        images = images[..., 0] if images.shape[-1] == 1 else np.round(images @ np.array(LUMA)).astype(np.uint8)
    if images.ndim != 3 or 0 in images.shape:
        raise DataError(f"{path}: {ik} has shape {images.shape}; expected (N, H, W) or (N, H, W, 1|3) with N > 0")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{path}: {lk} has shape {labels.shape}; expected ({images.shape[0]},) or ({images.shape[0]}, 1)")
    limit = num_classes or MAX_CLASSES
    for key, lab in all_labels.items():
        if lab.size and (not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0 or lab.max() >= limit):
            raise DataError(f"{path}: {key} must hold integer class labels in 0..{limit - 1}")
    n_classes = num_classes or max([2] + [int(a.max()) + 1 for a in all_labels.values() if a.size])
    names = ("NORMAL", "PNEUMONIA") if n_classes == 2 else tuple(f"class{i}" for i in range(n_classes))
    return images, labels.astype(np.int64), names


def file_fingerprint(path: Path) -> str:
    """Content hash for files up to 64 MB (a few ms for PneumoniaMNIST; the same data at another
    path or on another node shares the key), else resolved path + size + mtime (the 224 px
    variant is ~300 MB, too slow to hash on every load)."""
    st = path.stat()
    h = hashlib.sha1()
    if st.st_size > CONTENT_HASH_BYTES:
        h.update(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
        return "stat-" + h.hexdigest()[:16]
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
