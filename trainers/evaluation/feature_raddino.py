"""RAD-DINO features (Perez-Garcia et al. 2025, `microsoft/rad-dino`): a DINOv2 ViT-B/14 trained on chest X-rays.

An optional extractor for `gan-study rescore --extractor raddino`: its weights come only from a local directory
(`--weights DIR` or $GAN_STUDY_RAD_DINO_WEIGHTS) holding the Hugging Face snapshot of microsoft/rad-dino
(config.json, model.safetensors, preprocessor_config.json); nothing is downloaded, so a node without it stops
with one line naming the missing path. It needs the `transformers` package (class `Dinov2Model`).

Features: the model's pooled output (the final layer-normed CLS token, 768-d for the real weights), as the
model card embeds an image. Input as its image processor prepares it: grayscale in [0, 1] tiled to 3 channels,
resized (bicubic, antialiased) to the processor's crop size (518 px), normalised by its mean and std.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainers.errors import UserError
from trainers.evaluation.weights_hash import weights_sha256

ENV_WEIGHTS = "GAN_STUDY_RAD_DINO_WEIGHTS"
HF_NAME = "microsoft/rad-dino"
# microsoft/rad-dino's preprocessor_config.json; used when the directory has none.
DEFAULT_SIZE, DEFAULT_MEAN, DEFAULT_STD = 518, 0.5307, 0.2583
NEEDS = f"config.json and model.safetensors of {HF_NAME} (huggingface.co/{HF_NAME})"


class RadDinoExtractor:
    """Callable: images (N, 1, R, R) in [-1, 1] -> features (N, hidden_size) float64 numpy."""

    def __init__(self, weights_dir: str | Path | None = None, device: torch.device | str = "cpu"):
        path = weights_dir or os.environ.get(ENV_WEIGHTS)
        if not path:
            raise UserError(f"extractor 'raddino' needs RAD-DINO weights in a local directory: give --weights DIR "
                            f"or set {ENV_WEIGHTS} (the directory holds {NEEDS})")
        root = Path(path).expanduser()
        if not (root / "config.json").is_file():
            what = "is not a directory" if not root.is_dir() else "has no config.json"
            raise UserError(f"RAD-DINO weights directory {root} {what}: it must hold {NEEDS}")
        try:
            from transformers import Dinov2Model
        except ImportError:
            raise UserError("extractor 'raddino' needs the transformers package: pip install transformers") from None
        try:
            model = Dinov2Model.from_pretrained(str(root), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - missing/corrupt weight files all mean "not these weights"
            why = f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}"
            raise UserError(f"RAD-DINO weights directory {root} could not be loaded ({why}); "
                            f"it must hold {NEEDS}") from None
        self.size, self.mean, self.std = _preprocessing(root, model.config)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.dim = int(model.config.hidden_size)
        self.name = f"raddino-{self.size}px-{self.dim}d"
        self.weights_sha256 = weights_sha256(self.model)
        self.train_n = math.nan  # pretrained elsewhere: not ours to count

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 32) -> np.ndarray:
        out = []
        for i in range(0, images.shape[0], batch_size):
            x = (images[i:i + batch_size].to(self.device).float().clamp(-1, 1) + 1) / 2
            if x.shape[-1] != self.size or x.shape[-2] != self.size:
                x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", antialias=True).clamp(0, 1)
            x = (x.repeat(1, 3, 1, 1) - self.mean) / self.std
            out.append(self.model(pixel_values=x).pooler_output.float().cpu())
        return torch.cat(out).numpy().astype(np.float64)


def _preprocessing(root: Path, config) -> tuple[int, float, float]:
    """(input size, mean, std) from the directory's preprocessor_config.json, else RAD-DINO's published ones."""
    size, mean, std = int(getattr(config, "image_size", None) or DEFAULT_SIZE), DEFAULT_MEAN, DEFAULT_STD
    path = root / "preprocessor_config.json"
    if path.is_file():
        pre = json.loads(path.read_text())
        crop = pre.get("crop_size") or pre.get("size") or {}
        size = int(crop.get("height") or crop.get("shortest_edge") or size) if isinstance(crop, dict) else int(crop)
        mean = float(np.mean(pre.get("image_mean", [mean])))
        std = float(np.mean(pre.get("image_std", [std])))
    return size, mean, std
