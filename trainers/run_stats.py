"""Whole-run statistics of the losses (seed 002 Table I) and the initial low-D-loss phase T0.

Moments are exact over every iteration of the run so far (Chan/Welford merging of per-chunk
moments in float64), never estimated from the last batch or the last report.

T0, precisely: let `chance` be the adversarial D loss of the best discriminator that cannot tell
real from fake (`GanLoss.chance_level`: 2 ln 2 for BCE, 0.5 for least squares, 2 for hinge). Let
`m_t` be the mean adversarial D loss over the `T0_WINDOW` iterations ending at iteration t (an
iteration's D loss is the mean over its D steps). The low-D-loss phase *starts* at the first t with
`m_t < T0_FRACTION * chance` and *ends* at the first later t with `m_t >= T0_FRACTION * chance`;
T0 is the number of iterations from the start of training to that end (so it includes the few
iterations before D first wins). T0 is NaN until it is known: a number once the phase has ended,
or at the end of the run: 0 if D never entered the phase, the iterations run if it never left it
(right-censored; `t0_censored` says so). A reported T0 never changes later. Losses with no
positive chance level (WGAN-GP) have no T0 (NaN).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

T0_WINDOW = 20  # iterations in the trailing mean; short enough to resolve seed 002's ~200-iteration phases
T0_FRACTION = 0.5  # "low" = below half the chance-level loss


@dataclass
class RunningMoments:
    """Exact running count/mean/M2 over a stream of values (float64)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def update(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        n_b = values.size
        if n_b == 0:
            return
        mean_b = float(values.mean())
        m2_b = float(((values - mean_b) ** 2).sum())
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.count * n_b / n
        self.count = n

    @property
    def variance(self) -> float:
        """Population variance (ddof=0), as a description of the whole run."""
        return self.m2 / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        return math.sqrt(self.variance) if self.count else math.nan

    def state_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict) -> None:
        self.count, self.mean, self.m2 = int(state["count"]), float(state["mean"]), float(state["m2"])


@dataclass
class T0Tracker:
    """Online detector of the initial low-D-loss phase (definition in the module docstring)."""

    chance: float
    iterations_seen: int = 0
    started: bool = False
    ended_at: int = -1  # iteration count at which the phase ended; -1 = not ended
    window: list = field(default_factory=list)

    def update(self, d_losses: np.ndarray) -> None:
        if not self.defined or self.ended_at >= 0:
            self.iterations_seen += len(d_losses)
            return
        threshold = T0_FRACTION * self.chance
        values = np.asarray(d_losses, dtype=np.float64)
        for i, value in enumerate(values):
            self.iterations_seen += 1
            self.window.append(float(value))
            if len(self.window) > T0_WINDOW:
                self.window.pop(0)
            if len(self.window) < T0_WINDOW:
                continue
            m = sum(self.window) / T0_WINDOW
            if not self.started and m < threshold:
                self.started = True
            elif self.started and m >= threshold:
                self.ended_at = self.iterations_seen
                self.window = []
                self.iterations_seen += len(values) - i - 1  # the rest of the chunk needs no scan
                return

    @property
    def defined(self) -> bool:
        return self.chance > 0 and math.isfinite(self.chance)

    def value(self, final: bool = False) -> float:
        if not self.defined:
            return math.nan
        if self.ended_at >= 0:
            return float(self.ended_at)
        if not final:
            return math.nan  # D may still enter (or leave) the phase: not known yet
        return float(self.iterations_seen) if self.started else 0.0

    @property
    def censored(self) -> bool:
        return self.defined and self.started and self.ended_at < 0

    def state_dict(self) -> dict:
        return {
            "chance": self.chance,
            "iterations_seen": self.iterations_seen,
            "started": self.started,
            "ended_at": self.ended_at,
            "window": list(self.window),
        }

    def load_state_dict(self, state: dict) -> None:
        self.chance = float(state["chance"])
        self.iterations_seen = int(state["iterations_seen"])
        self.started = bool(state["started"])
        self.ended_at = int(state["ended_at"])
        self.window = [float(v) for v in state["window"]]
