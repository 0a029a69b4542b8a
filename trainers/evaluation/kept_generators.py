"""A study's final generators kept for re-scoring, beside its results: `STUDY_DIR/generators/<trial_id>.pt`.

A trial checkpoint (`trials/<id>/checkpoint/checkpoint.pt`) holds G, D, optimiser states and RNG states; the
exported results keep none of them. `keep_generators` writes each finished trial's generator alone, its
floating-point tensors in float16 (half the bytes; FID moves by ~2e-4 relative, the re-scoring prints it),
with the trial's flat config, so `gan-study rescore` can score it with another extractor years later:

    {"format": 1, "generator": state_dict (float16), "config": TrialConfig.to_dict(), "class_names": [...]}

read with `torch.load(weights_only=True)` (no code from the file runs). `generator_files` finds a study's
generators (kept files first, else trial checkpoints), `load_generator_file` reads either kind.

`keep_generators` is the export hook: it also copies the other re-scoring outputs (`outputs.py`).
"""
from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from trainers.atomic import atomic_path
from trainers.errors import UserError
from trainers.evaluation.outputs import GENERATORS_DIRNAME, PAIRS_DIRNAME, RESCORE_FILE
from trainers.layout import CHECKPOINT_DIRNAME, CHECKPOINT_FILENAME, TRIALS_DIRNAME, TRIALS_FILE

FORMAT = 1
TRIAL_ID, TRIAL_DIR = "trial_id", "trial_dir"  # the trials table's id columns (analysis.columns, not imported here)
DEFAULT_CLASS_NAMES = ("NORMAL", "PNEUMONIA")  # study.generate_command.DEFAULT_CLASS_NAMES


def save_generator(path: str | Path, generator: Mapping[str, torch.Tensor], config: Mapping[str, Any],
                   class_names: Iterable[str] = ()) -> Path:
    """Write one kept generator (float tensors as float16) atomically; returns the path."""
    state = {k: (v.detach().to("cpu").half() if v.is_floating_point() else v.detach().to("cpu"))
             for k, v in generator.items()}
    with atomic_path(Path(path)) as tmp:
        torch.save({"format": FORMAT, "generator": state, "config": dict(config),
                    "class_names": list(class_names)}, tmp)
    return Path(path)


def load_generator_file(path: str | Path, device: str | torch.device = "cpu") -> tuple[Any, Any, tuple[str, ...]]:
    """(generator in eval mode, float32, on `device`; its TrialConfig; class names) from a kept generator file or
    a trial checkpoint."""
    from trainers.config import TrialConfig
    from trainers.models import build_generator

    path = Path(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise UserError(f"{path} is not readable as a generator ({exc.__class__.__name__})") from None
    if not isinstance(ck, dict) or "config" not in ck or "generator" not in ck:
        raise UserError(f"{path} is not a gan-study checkpoint or kept generator (needs 'config' and 'generator')")
    cfg = TrialConfig.from_dict({**ck["config"], "device": str(device)})
    names = tuple(ck.get("class_names") or (DEFAULT_CLASS_NAMES if cfg.num_classes == 2 else
                                            tuple(f"class_{i}" for i in range(cfg.num_classes))))
    G = build_generator(cfg)
    G.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["generator"].items()})
    return G.to(device).eval(), cfg, names


def generator_files(study_dir: str | Path, trials: Mapping[str, str]) -> dict[str, Path]:
    """{trial_id: file} for the trials whose generator is kept: STUDY_DIR/generators/<id>.pt first, else the
    trial checkpoint under its trial_dir. trials: {trial_id: trial_dir relative to study_dir}."""
    root = Path(study_dir)
    out = {}
    for tid, rel in trials.items():
        for candidate in (root / GENERATORS_DIRNAME / f"{tid}.pt",
                          root / (rel or f"{TRIALS_DIRNAME}/{tid}") / CHECKPOINT_DIRNAME / CHECKPOINT_FILENAME):
            if candidate.is_file():
                out[tid] = candidate
                break
    return out


def keep_generators(study_dir: str | Path, dest: str | Path, trial_ids: Iterable[str] | None = None) -> list[Path]:
    """Write DEST/generators/<id>.pt from STUDY_DIR's trial checkpoints (the finished trials of trials.parquet,
    or `trial_ids`), and copy RESCORE_FILE and PAIRS_DIRNAME when present: the export hook that lets an exported
    study be re-scored. Returns the generator files written."""
    import shutil

    import pandas as pd

    src, dest = Path(study_dir), Path(dest)
    from trainers import metric_keys as K

    table = pd.read_parquet(src / TRIALS_FILE) if (src / TRIALS_FILE).is_file() else pd.DataFrame()
    if trial_ids is None:
        done = table[table[K.STATUS].astype(str) == K.STATUS_FINISHED] if K.STATUS in table.columns else table
        trial_ids = done[TRIAL_ID].astype(str).tolist() if TRIAL_ID in done.columns else []
    dirs = dict(zip(table[TRIAL_ID].astype(str), table[TRIAL_DIR].astype(str))) if TRIAL_DIR in table.columns else {}
    written = []
    for tid, file in generator_files(src, {t: dirs.get(t, "") for t in trial_ids}).items():
        target = dest / GENERATORS_DIRNAME / f"{tid}.pt"
        if file.resolve() == target.resolve():
            continue
        ck = torch.load(file, map_location="cpu", weights_only=True)
        written.append(save_generator(target, ck["generator"], ck["config"], ck.get("class_names") or ()))
    if (src / RESCORE_FILE).is_file() and (src / RESCORE_FILE).resolve() != (dest / RESCORE_FILE).resolve():
        shutil.copyfile(src / RESCORE_FILE, dest / RESCORE_FILE)
    if (src / PAIRS_DIRNAME).is_dir() and (src / PAIRS_DIRNAME).resolve() != (dest / PAIRS_DIRNAME).resolve():
        shutil.copytree(src / PAIRS_DIRNAME, dest / PAIRS_DIRNAME, dirs_exist_ok=True)
    return written
