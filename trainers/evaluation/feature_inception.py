"""Standard FID features: Inception-v3 pool3 with the pt_inception-2015-12-05 weights (torch-fidelity).

Weights come from $GAN_STUDY_INCEPTION_WEIGHTS (a local .pth file) or torch-fidelity's download;
offline without the file we stop with one line saying what is missing — never a silent substitute.
Grayscale is tiled to 3 channels and passed as uint8; torch-fidelity resizes to 299 px with its own
fixed bilinear interpolation (the same for every trial). Feature layer: 64, 192, 768 or 2048.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from trainers.errors import UserError
from trainers.evaluation.weights_hash import weights_sha256

ENV_WEIGHTS = "GAN_STUDY_INCEPTION_WEIGHTS"


class InceptionExtractor:
    def __init__(self, dims: int = 2048, device: torch.device | str = "cpu"):
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3

        path = os.environ.get(ENV_WEIGHTS) or None
        if path and not os.path.isfile(path):
            raise UserError(f"{ENV_WEIGHTS}={path} is not a file; point it at the pt_inception-2015-12-05 weights")
        try:
            self.model = FeatureExtractorInceptionV3("inception-v3-compat", [str(dims)],
                                                     feature_extractor_weights_path=path)
        except Exception as exc:  # noqa: BLE001 - download/HTTP/unpickling errors all mean "no weights"
            raise UserError(
                f"Inception-v3 weights (pt_inception-2015-12-05) unavailable ({exc.__class__.__name__}); "
                f"download {URL_INCEPTION_V3} "
                f"and set {ENV_WEIGHTS}=/path/to/that/file, or use extractor='domain'"
            ) from None
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.dim = dims
        self.name = f"inception-{dims}"
        self.weights_sha256 = weights_sha256(self.model)
        self.train_n = float("nan")  # pretrained elsewhere: not ours to count

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        out = []
        for i in range(0, images.shape[0], batch_size):
            x = ((images[i:i + batch_size].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            out.append(self.model(x.repeat(1, 3, 1, 1).to(self.device))[0].cpu())
        return torch.cat(out).numpy().astype(np.float64)
