"""Divergence detection: end a trial that has failed instead of spending its budget.

Three signals (seed 002 saw mode collapse as "a sudden exponential rise of both losses"):
1. a non-finite D or G loss;
2. both losses' means over the last `window` iterations are `factor` times their means over the
   window before, and both exceed an absolute floor (so a rise from 0.01 to 0.3 at the healthy end
   of T0 does not count: only losses far above any balanced game's scale do);
3. sample diversity collapse at two consecutive reports: the per-pixel std *across* the fixed-latent
   samples, relative to the std *within* them, falls below `collapse_threshold`. Relative, because an
   untrained generator's outputs are all near zero (tiny across-sample std, but no collapse); and only
   once the samples have contrast (within-sample std >= MIN_CONTRAST). Real X-ray batches score ~0.7.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

LOSS_FLOOR = 5.0  # |loss| above which a rise counts: far above 2 ln 2 (BCE) or 2 (hinge) equilibria
MIN_CONTRAST = 0.1  # within-sample std (images in [-1, 1]) below which samples are too blank to judge


@dataclass
class DivergenceDetector:
    window: int = 50
    factor: float = 20.0
    collapse_threshold: float = 0.02
    enabled: bool = True
    d_hist: deque = field(default_factory=deque)
    g_hist: deque = field(default_factory=deque)
    iterations_seen: int = 0
    collapsed_reports: int = 0

    def check_losses(self, d_losses: np.ndarray, g_losses: np.ndarray) -> str:
        """Feed a chunk of per-iteration losses; return a reason string if diverged, else ''."""
        for i, (d, g) in enumerate(zip(np.asarray(d_losses, float), np.asarray(g_losses, float))):
            self.iterations_seen += 1
            if not (math.isfinite(d) and math.isfinite(g)):
                return f"non-finite loss at iteration {self.iterations_seen} (loss_d={d}, loss_g={g})"
            if not self.enabled:
                continue
            self.d_hist.append(abs(d))
            self.g_hist.append(abs(g))
            if len(self.d_hist) > 2 * self.window:
                self.d_hist.popleft()
                self.g_hist.popleft()
            if len(self.d_hist) == 2 * self.window:
                reason = self._exponential_rise()
                if reason:
                    return reason
        return ""

    def _exponential_rise(self) -> str:
        d = np.fromiter(self.d_hist, float)
        g = np.fromiter(self.g_hist, float)
        w = self.window
        d_old, d_new = d[:w].mean(), d[w:].mean()
        g_old, g_new = g[:w].mean(), g[w:].mean()
        rising = d_new > self.factor * max(d_old, 1e-8) and g_new > self.factor * max(g_old, 1e-8)
        if rising and d_new > LOSS_FLOOR and g_new > LOSS_FLOOR:
            return (
                f"both losses rose sharply by iteration {self.iterations_seen}: D {d_old:.3g}->{d_new:.3g}, "
                f"G {g_old:.3g}->{g_new:.3g} over {w}-iteration windows"
            )
        return ""

    def check_samples(self, samples: torch.Tensor) -> str:
        """Mode collapse: samples of the fixed latent batch are (almost) all the same image."""
        if not self.enabled or samples.shape[0] < 2:
            return ""
        diversity = sample_diversity(samples)
        if not math.isfinite(diversity):
            return "non-finite generator output"
        contrast = float(samples.detach().float().reshape(samples.shape[0], -1).std(dim=1).mean())
        if contrast >= MIN_CONTRAST and diversity < self.collapse_threshold:
            self.collapsed_reports += 1
        else:
            self.collapsed_reports = 0
        if self.collapsed_reports >= 2:
            return (f"mode collapse: fixed-latent samples nearly identical at two consecutive reports "
                    f"(relative diversity {diversity:.4f} < {self.collapse_threshold})")
        return ""

    def state_dict(self) -> dict:
        return {"d_hist": [float(v) for v in self.d_hist], "g_hist": [float(v) for v in self.g_hist],
                "iterations_seen": self.iterations_seen,
                "collapsed_reports": self.collapsed_reports}

    def load_state_dict(self, state: dict) -> None:
        self.d_hist = deque(float(v) for v in state["d_hist"])
        self.g_hist = deque(float(v) for v in state["g_hist"])
        self.iterations_seen = int(state["iterations_seen"])
        self.collapsed_reports = int(state.get("collapsed_reports", 0))


def sample_diversity(samples: torch.Tensor) -> float:
    """Across-sample pixel std relative to within-sample std (0 = every sample identical)."""
    flat = samples.detach().float().reshape(samples.shape[0], -1)
    across = flat.std(dim=0, unbiased=False).mean()
    within = flat.std(dim=1, unbiased=False).mean()
    return float(across / within.clamp_min(1e-8))
