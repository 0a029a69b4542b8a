"""Chest-X-ray FID features: torchxrayvision's DenseNet-121 `densenet121-res224-all` (Cohen et al., MIDL 2022).

The extractor medical-imaging GAN papers use for FID on radiographs: trained on NIH, PadChest, CheXpert,
MIMIC, Google, OpenI and RSNA. Features are its 1,024-d penultimate layer (ReLU, global average pool,
`DenseNet.features2`) at 224 px, the input scaled as torchxrayvision expects: [-1024, 1024] (our [-1, 1]
times 1024), resized to 224 px by antialiased bilinear interpolation (as the model's own resize).

Weights come only from $GAN_STUDY_XRV_WEIGHTS: torchxrayvision's own download (its GitHub releases) is never
attempted, so a node without the file stops with one line. The file may be torchxrayvision's release file
(`nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt`, a
pickled model, loaded as torchxrayvision loads it) or a plain state_dict of `xrv.models.DenseNet()`.
"""
from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from trainers.errors import UserError
from trainers.evaluation.weights_hash import weights_sha256

ENV_WEIGHTS = "GAN_STUDY_XRV_WEIGHTS"
WEIGHTS = "densenet121-res224-all"
INPUT_SIZE = 224
DIM = 1024


def _densenet() -> torch.nn.Module:
    """An untrained `xrv.models.DenseNet()` (the densenet121-res224-all architecture: 1 channel, 18 outputs)."""
    try:
        with warnings.catch_warnings():  # torchxrayvision silences every warning of the process at import
            import torchxrayvision as xrv
    except ImportError:
        raise UserError("extractor='xrv' needs the torchxrayvision package: pip install torchxrayvision") from None
    return xrv.models.DenseNet(weights=None)


def _state_dict(path: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torchxrayvision's release file is a pickled model; it loads it the same way (the user's own file)
        state = torch.load(path, map_location="cpu", weights_only=False)
    return state.state_dict() if isinstance(state, torch.nn.Module) else state


class XrvExtractor:
    """Callable: images (N, 1, R, R) in [-1, 1] -> features (N, 1024) float64 numpy."""

    def __init__(self, device: torch.device | str = "cpu"):
        path = os.environ.get(ENV_WEIGHTS)
        if not path or not os.path.isfile(path):
            raise UserError(
                f"extractor='xrv' needs torchxrayvision's {WEIGHTS} weights in a local file: "
                + (f"{ENV_WEIGHTS}={path} is not a file" if path else f"{ENV_WEIGHTS} is not set")
                + "; download https://github.com/mlmed/torchxrayvision/releases/download/v1/"
                "nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt "
                f"and set {ENV_WEIGHTS} to it, or use extractor='domain'")
        model = _densenet()
        try:
            model.load_state_dict(_state_dict(path))
        except Exception as exc:  # noqa: BLE001 - unpickling/shape errors all mean "not these weights"
            raise UserError(f"{ENV_WEIGHTS}={path} does not hold {WEIGHTS} weights "
                            f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})") from None
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.dim = DIM
        self.name = f"xrv-{WEIGHTS}-{DIM}d"
        self.weights_sha256 = weights_sha256(self.model)
        self.train_n = float("nan")  # pretrained elsewhere: not ours to count

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        out = []
        for i in range(0, images.shape[0], batch_size):
            x = images[i:i + batch_size].to(self.device).float().clamp(-1, 1) * 1024.0
            if x.shape[-1] != INPUT_SIZE or x.shape[-2] != INPUT_SIZE:
                x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True)
            out.append(self.model.features2(x).cpu())
        return torch.cat(out).numpy().astype(np.float64)
