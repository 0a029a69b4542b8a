"""Trial checkpoints: written atomically, read with `torch.load(weights_only=True)`.

Everything needed to continue a run exactly is plain tensors, numbers, strings, lists and dicts
(so the safe unpickler accepts it): G, D and optimiser states, the loop's torch.Generator state
and the global torch RNG state, the step, the data-order permutation and position, running
statistics, divergence-detector state and the fixed latent batch. The flat config dict is saved
in every checkpoint (nanoGPT habit) so `gan-study generate` needs nothing else.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainers.atomic import atomic_path

CHECKPOINT_DIRNAME = "checkpoint"
CHECKPOINT_FILENAME = "checkpoint.pt"


def checkpoint_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / CHECKPOINT_DIRNAME / CHECKPOINT_FILENAME


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write `state` to `path` atomically: a crash mid-write leaves the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file, or `<dir>/checkpoint.pt` when given a directory."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILENAME
    return torch.load(path, map_location=map_location, weights_only=True)
