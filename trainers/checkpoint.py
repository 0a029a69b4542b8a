"""Trial checkpoints: written atomically, read with `torch.load(weights_only=True)`.

Everything needed to continue a run exactly is plain tensors, numbers, strings, lists and dicts
(so the safe unpickler accepts it): G, D and optimiser states, the loop's torch.Generator state
and the global torch RNG state, the step, the data-order permutation and position, running
statistics, divergence-detector state and the fixed latent batch. The flat config dict is saved
in every checkpoint (nanoGPT habit) so `gan-study generate` needs nothing else.

`generator` holds the weights to sample from, the generator a trial's FID/KID/TSTR measured: G's own, or the
EMA generator with `apply_g_ema` (G's training weights then sit beside it as `generator_train`), so every
reader (`generate`, `tstr`, `yardstick`) samples the measured generator. `levers` holds the levers' state
(ADA's p, LeCam's averages, step counters: trainers/levers), so a run with levers on resumes exactly.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from trainers.atomic import atomic_path
from trainers.layout import CHECKPOINT_DIRNAME, CHECKPOINT_FILENAME
# Keys a run may change when it continues from a checkpoint: how it runs, not what it trains (a trial
# restored on another node may get another device; a rerun may use more CPU threads).
RESUMABLE_KEYS = ("device", "num_threads")
_UNSET = "<unset>"  # a key one of two configs lacks (a checkpoint written before the key existed)
# Keys added later whose default is exactly what every run did before them (label sheets did not exist, so every
# older run had this task): a checkpoint lacking one holds a run with that value, and may be resumed.
LATER_KEY_DEFAULTS = {"data_task": "Pneumonia", "data_uncertain": "exclude", "data_views": "frontal",
                      # the levers (issue #22): every earlier run had them off (d_acc_samples only measures)
                      "apply_g_ema": False, "g_ema_decay": 0.999, "g_ema_start": 1000, "apply_diffaug": False,
                      "diffaug_type": "brightness,contrast,translation,cutout", "apply_ada": False, "ada_target": 0.6,
                      "ada_kimg": 500, "ada_interval": 4, "apply_r1_reg": False, "r1_lambda": 10.0, "r1_interval": 1,
                      "apply_lecam": False, "lecam_lambda": 0.3, "lecam_ema_decay": 0.99, "apply_bcr": False,
                      "bcr_real_lambda": 10.0, "bcr_fake_lambda": 10.0, "d_acc_samples": 256}


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


def config_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """key -> (saved value, current value) for every key that differs, except RESUMABLE_KEYS.

    Empty when a run with config `current` may continue from a checkpoint holding config `saved`.
    """
    saved = {**{k: v for k, v in LATER_KEY_DEFAULTS.items() if k in current}, **saved}
    keys = sorted((set(saved) | set(current)) - set(RESUMABLE_KEYS))
    return {k: (saved.get(k, _UNSET), current.get(k, _UNSET)) for k in keys
            if saved.get(k, _UNSET) != current.get(k, _UNSET)}
