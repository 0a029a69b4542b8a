"""`gan-study generate`: write synthetic images from a trial's checkpoint.

    gan-study generate --trial runs/smoke/trials/<trial_id> --n 256 --format png --out synth/
    gan-study generate --trial path/to/checkpoint.pt --n 500 --per-class --format npz --out synth.npz

The checkpoint holds the trial's flat config and the generator's weights; it is read with
`torch.load(weights_only=True)`, so no code from the file is executed.
PNG: one 8-bit grayscale file per image (in one folder per class with --per-class).
NPZ: `images` uint8 (N, R, R), `labels` int64 (N,) (-1 for an unconditional generator), `class_names`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from study.layout import TRIALS_DIRNAME
from trainers.errors import UserError
from trainers.layout import CHECKPOINT_DIRNAME, CHECKPOINT_FILENAME

DEFAULT_CLASS_NAMES = ("NORMAL", "PNEUMONIA")  # label order of every loader (sorted folder names, MedMNIST)
BATCH = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trial", required=True,
                        help=f"a trial directory (STUDY_DIR/{TRIALS_DIRNAME}/<id>), its {CHECKPOINT_DIRNAME} directory or "
                             f"{CHECKPOINT_FILENAME}")
    parser.add_argument("--n", type=int, required=True, help="images in total, or per class with --per-class")
    parser.add_argument("--per-class", action="store_true", help="N images of every class (conditional GANs)")
    parser.add_argument("--format", choices=("png", "npz"), default="png")
    parser.add_argument("--out", required=True, help="folder for png, file for npz")
    parser.add_argument("--seed", type=int, default=0, help="latent noise seed")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")


def find_checkpoint(path: str | Path) -> Path:
    p = Path(path).expanduser()
    for candidate in (p, p / CHECKPOINT_FILENAME, p / CHECKPOINT_DIRNAME / CHECKPOINT_FILENAME):
        if candidate.is_file():
            return candidate
    raise UserError(f"no checkpoint at {p}: give a trial directory, its {CHECKPOINT_DIRNAME}/ directory or a "
                    f"{CHECKPOINT_FILENAME}")


def load_generator(checkpoint: str | Path, device: str = "cpu") -> tuple[Any, Any, tuple[str, ...]]:
    """(generator in eval mode, its TrialConfig, class names) from a trial directory or checkpoint."""
    from trainers.checkpoint import load_checkpoint
    from trainers.config import TrialConfig
    from trainers.models import build_generator

    ck = load_checkpoint(find_checkpoint(checkpoint), map_location=device)
    if "config" not in ck or "generator" not in ck:
        raise UserError(f"{checkpoint} is not a gan-study checkpoint (needs 'config' and 'generator')")
    cfg = TrialConfig.from_dict({**ck["config"], "device": device})
    names = tuple(ck.get("class_names") or (DEFAULT_CLASS_NAMES if cfg.num_classes == 2 else
                                            tuple(f"class_{i}" for i in range(cfg.num_classes))))
    G = build_generator(cfg).to(device)
    G.load_state_dict(ck["generator"])
    return G.eval(), cfg, names


def generate(checkpoint: str | Path, n: int, *, per_class: bool = False, seed: int = 0,
             device: str = "cpu") -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images uint8 (N, R, R), labels int64 (N,), class names) from a checkpoint's generator."""
    import torch

    if n < 1:
        raise UserError(f"--n {n} must be >= 1")
    G, cfg, names = load_generator(checkpoint, device)
    conditional = cfg.conditioning != "none"
    if per_class and not conditional:
        raise UserError(f"--per-class needs a conditional generator, but this trial has conditioning='none'"
                        f"{' (trained on ' + cfg.class_subset + ' only)' if cfg.class_subset else ''}")
    gen = torch.Generator().manual_seed(seed)
    if per_class:
        labels = np.repeat(np.arange(cfg.num_classes), n)
    elif conditional:
        labels = torch.randint(0, cfg.num_classes, (n,), generator=gen).numpy()
    else:
        labels = np.full(n, -1)
    images = []
    with torch.no_grad():
        for start in range(0, len(labels), BATCH):
            y = labels[start:start + BATCH]
            z = torch.randn(len(y), cfg.latent_dim, generator=gen).to(device)
            y_t = torch.as_tensor(y, dtype=torch.long, device=device) if conditional else None
            x = G(z, y_t).float().clamp(-1, 1)
            images.append(((x[:, 0] + 1) * 127.5).round().to(torch.uint8).cpu().numpy())
    if cfg.class_subset and not conditional:
        names = (cfg.class_subset,)
    return np.concatenate(images), labels.astype(np.int64), names


def main(args: argparse.Namespace) -> int:
    images, labels, names = generate(args.trial, args.n, per_class=args.per_class, seed=args.seed,
                                     device=args.device)
    out = Path(args.out).expanduser()
    if args.format == "npz":
        if out.suffix != ".npz":
            out = out.with_suffix(".npz")
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, images=images, labels=labels, class_names=np.array(names))
    else:
        from PIL import Image

        out.mkdir(parents=True, exist_ok=True)
        for i, (img, label) in enumerate(zip(images, labels)):
            folder = out / names[label] if args.per_class else out
            folder.mkdir(exist_ok=True)
            Image.fromarray(img).save(folder / f"img_{i:05d}.png")
    print(f"wrote {len(images)} images ({images.shape[1]} px) to {out}")
    return 0
