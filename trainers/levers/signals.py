"""Signals of D overfitting, beside its loss (issue #22 section 3), measured whatever levers are on.

  r_t            E[sign(D(x) - c)] over the real images D trains on, every D step (ADA's overfitting
                 signal; c = `GanLoss.decision_threshold`): 0 when D cannot tell, 1 when it calls every real
                 training image real.
  D(x) - D(G(z)) the margin between D's mean scores on real and fake, every D step (the loop's d_x, d_g_z).
  D accuracy     the share of a fixed batch of training images and of a fixed batch of held-out real images
                 (the validation split, else test) that D calls real, at every report. BigGAN's overfitting
                 gap: an overfitting D nears 100% on training images and 50% on held-out ones.

The accuracy runs D in training mode (batch statistics, as D sees every real batch in training) on
`batch_size` chunks without gradients, then restores every buffer (BatchNorm running statistics,
spectral-norm vectors), and draws nothing from any RNG: measuring leaves training exactly as it was.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from trainers.config import TrialConfig


def real_sign(real_logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """r_t of one batch: the mean sign of D's raw output relative to its decision threshold."""
    return torch.sign(real_logits.detach() - threshold).mean()


class DAccuracy:
    """D's accuracy on fixed real images: training vs held-out (each `n` images, chosen once per trial)."""

    def __init__(self, train_set: Any, heldout: Any, n: int, seed: int, batch_size: int, conditional: bool,
                 device: torch.device) -> None:
        self.batch_size, self.conditional = batch_size, conditional
        self.train = _fixed(train_set, n, seed, device)
        self.heldout = _fixed(heldout, n, seed, device) if heldout is not None and len(heldout) else None

    @torch.no_grad()
    def measure(self, D: nn.Module, threshold: float) -> tuple[float, float]:
        """(accuracy on training images, on held-out images); NaN where there are none."""
        saved = [b.detach().clone() for b in D.buffers()]
        try:
            return self._accuracy(D, self.train, threshold), self._accuracy(D, self.heldout, threshold)
        finally:
            for b, s in zip(D.buffers(), saved):
                b.copy_(s)

    def _accuracy(self, D: nn.Module, batch: tuple | None, threshold: float) -> float:
        if batch is None:
            return math.nan
        images, labels = batch
        hits = 0
        for start in range(0, len(images), self.batch_size):
            x = images[start:start + self.batch_size].float().div(127.5).sub(1.0)
            y = labels[start:start + self.batch_size] if self.conditional else None
            logits, _ = D(x, y)
            hits += int((logits.float() > threshold).sum())
        return hits / len(images)


def heldout_split(cfg: TrialConfig) -> Any:
    """Real images D never trains on, for its held-out accuracy: the validation split, else test (None if neither
    can be read: the accuracy is then NaN, and training goes on)."""
    from trainers.data import load_split, task_options
    from trainers.errors import UserError

    for split in ("val", "test"):
        try:
            images = load_split(cfg.data, split, cfg.resolution, hist_eq=cfg.hist_eq, class_subset=cfg.class_subset,
                                seed=cfg.seed, **task_options(cfg))
        except UserError:
            continue
        if len(images):
            return images
    return None


def _fixed(image_set: Any, n: int, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """n images of a set (all when it has fewer), chosen by a numpy RNG: the training RNG is not touched."""
    idx = np.sort(np.random.default_rng(seed).permutation(len(image_set))[:n])
    images = torch.from_numpy(np.ascontiguousarray(np.asarray(image_set.images)[idx])).unsqueeze(1).to(device)
    labels = torch.as_tensor(np.asarray(image_set.labels)[idx], dtype=torch.long).to(device)
    return images, labels
