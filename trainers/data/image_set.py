"""ImageSet: one preprocessed split held as uint8 arrays (the unit every trainer and metric consumes)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from trainers.errors import DataError


@dataclass
class ImageSet:
    images: np.ndarray  # uint8 (N, H, W) grayscale at the trial resolution; from load_split a read-only memmap
    labels: np.ndarray  # int64 (N,)
    class_names: tuple[str, ...]  # index -> name
    fingerprint: str  # source + split + preprocessing + selection: the key for anything derived
    patient_ids: np.ndarray | None = None  # str (N,), where the source encodes patients
    skipped: int = 0  # unreadable files skipped (skip_unreadable=True)
    source: str = field(default="", compare=False)
    # 'KIND<tab>PATH<tab>TEXT' per file skipped as unreadable or decoded with a warning (folder.note)
    decode_notes: tuple[str, ...] = field(default=(), compare=False)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to_tensor(self) -> torch.Tensor:
        """float32 (N, 1, H, W) scaled to [-1, 1], the generator's output range."""
        # Convert into a new writable array: torch warns on (and must never write to) the read-only cache.
        return torch.from_numpy(np.asarray(self.images, dtype=np.float32)).div_(127.5).sub_(1.0).unsqueeze(1)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def select(self, index: np.ndarray, tag: str) -> "ImageSet":
        """A subset by integer index; `tag` names the selection in the fingerprint."""
        return replace(
            self,
            images=self.images[index],
            labels=self.labels[index],
            patient_ids=None if self.patient_ids is None else self.patient_ids[index],
            fingerprint=_hash(self.fingerprint, tag),
        )

    def subset_class(self, name: str) -> "ImageSet":
        if name not in self.class_names:
            raise DataError(f"class_subset={name!r} is not a class of {self.source or 'this data'}; "
                            f"allowed values: {', '.join(self.class_names)}")
        return self.select(np.flatnonzero(self.labels == self.class_names.index(name)), f"class={name}")


def _hash(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]
