"""Content hash of a feature extractor's weights: what makes two FIDs comparable, beyond its name."""
from __future__ import annotations

import hashlib

import torch


def weights_sha256(module: torch.nn.Module) -> str:
    """First 16 hex digits of the SHA-256 over the state dict (names, dtypes, shapes and values, in key order).

    Same weights give the same hash on any device or process; retraining or other weights change it.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:16]
