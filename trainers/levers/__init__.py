"""Levers against D overfitting on small data, as the GAN step calls them (trainers/loop.py `gan_step`).

Each is a TrialConfig key, off by default (StudioGAN's names); off, its call is the identity or a zero:

| config key     | where in the step                                   | module            |
|----------------|-----------------------------------------------------|-------------------|
| apply_diffaug  | D's real and fake inputs (D step, one draw) and G's fake (G step) | augment.py |
| apply_ada      | the same places; p adapted from r_t after each D step | augment.py      |
| apply_r1_reg   | D's loss += gamma/2 E||grad_x D(x)||^2 (every r1_interval-th D step) | regularisers.py |
| apply_lecam    | D's loss += LeCam on D's raw outputs                | regularisers.py   |
| apply_bcr      | D's loss += consistency of D under translation      | regularisers.py   |
| apply_g_ema    | after G's update: the averaged generator that is measured | ema.py      |

r_t (signals.py) is recorded after every D step whatever is on: ADA steers by it, the loop reports it.
`Levers.state_dict` holds what a resumed run needs (ADA's p, LeCam's averages, step counters); the EMA
generator's weights go into the checkpoint as the generator to sample from (trainers/checkpoint.py).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainers.config import TrialConfig
from trainers.levers.augment import AdaAugment, DiffAugment
from trainers.levers.ema import GeneratorEMA
from trainers.levers.regularisers import LeCam, bcr_penalty, r1_penalty
from trainers.levers.signals import real_sign

__all__ = ["Levers"]


class Levers:
    """The enabled levers of one trial, with the state they carry from step to step."""

    def __init__(self, cfg: TrialConfig, G: nn.Module, threshold: float, gen: torch.Generator,
                 device: torch.device) -> None:
        self.cfg, self.threshold, self.gen, self.device = cfg, threshold, gen, device
        self.augmentation: DiffAugment | AdaAugment | None = None
        if cfg.apply_diffaug:
            self.augmentation = DiffAugment(cfg.diffaug_type, gen)
        elif cfg.apply_ada:
            self.augmentation = AdaAugment(gen, device, target=cfg.ada_target, kimg=cfg.ada_kimg,
                                           interval=cfg.ada_interval, batch_size=cfg.batch_size)
        self.ada = self.augmentation if cfg.apply_ada else None
        self.ema = GeneratorEMA(G, cfg.g_ema_decay, cfg.g_ema_start) if cfg.apply_g_ema else None
        self.lecam_reg = LeCam(cfg.lecam_lambda, cfg.lecam_ema_decay, device) if cfg.apply_lecam else None
        self.d_steps = 0  # D steps done (lazy R1's clock)
        self.rt_steps: list[torch.Tensor] = []  # r_t per D step since the last `drain_rt` (device scalars)

    # ---- augmentation (DiffAugment or ADA): identity when off
    def augment_pair(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Real and fake batches augmented with one draw: image i of each gets the same ops."""
        if self.augmentation is None:
            return real, fake
        params = self.augmentation.draw(real)
        return self.augmentation.apply(real, params), self.augmentation.apply(fake, params)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """One batch augmented with a fresh draw (G's fakes in the G step)."""
        if self.augmentation is None:
            return x
        return self.augmentation.apply(x, self.augmentation.draw(x))

    # ---- D's regularisers: zero when off
    @property
    def r1_due(self) -> bool:
        """R1 is computed in this D step (every step, or every r1_interval-th when lazy)."""
        return self.cfg.apply_r1_reg and self.d_steps % self.cfg.r1_interval == 0

    def r1(self, real_in: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
        if not self.r1_due:
            return torch.zeros((), device=self.device)
        return r1_penalty(real_in, real_logits, self.cfg.r1_lambda * self.cfg.r1_interval)

    def lecam(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.lecam_reg is None:
            return torch.zeros((), device=self.device)
        return self.lecam_reg(real_logits, fake_logits)

    def bcr(self, D: nn.Module, real_in: torch.Tensor, fake_in: torch.Tensor, real_logits: torch.Tensor,
            fake_logits: torch.Tensor, y_real: torch.Tensor | None, y_fake: torch.Tensor | None) -> torch.Tensor:
        if not self.cfg.apply_bcr:
            return torch.zeros((), device=self.device)
        return bcr_penalty(D, real_in, fake_in, real_logits, fake_logits, y_real, y_fake, self.gen,
                           self.cfg.bcr_real_lambda, self.cfg.bcr_fake_lambda)

    # ---- after the updates
    def observe(self, real_logits: torch.Tensor) -> None:
        """After a D step: record its r_t (reported) and let ADA adjust p."""
        r_t = real_sign(real_logits, self.threshold)
        self.rt_steps.append(r_t)
        if self.ada is not None:
            self.ada.observe(r_t)
        self.d_steps += 1

    def update_ema(self, G: nn.Module) -> None:
        if self.ema is not None:
            self.ema.update(G)

    # ---- reporting and checkpoints
    def drain_rt(self) -> np.ndarray:
        """r_t of every D step since the last call (one device-to-host read)."""
        if not self.rt_steps:
            return np.zeros(0)
        out = torch.stack(self.rt_steps).cpu().numpy().astype(np.float64)
        self.rt_steps = []
        return out

    @property
    def ada_p(self) -> float:
        return float(self.ada.p) if self.ada is not None else 0.0

    def state_dict(self) -> dict:
        return {"d_steps": self.d_steps, "ema_steps": self.ema.steps if self.ema is not None else 0,
                "ada": self.ada.state_dict() if self.ada is not None else {},
                "lecam": self.lecam_reg.state_dict() if self.lecam_reg is not None else {}}

    def load_state_dict(self, state: dict) -> None:
        self.d_steps = int(state["d_steps"])
        if self.ema is not None:
            self.ema.steps = int(state["ema_steps"])
        if self.ada is not None:
            self.ada.load_state_dict(state["ada"])
        if self.lecam_reg is not None:
            self.lecam_reg.load_state_dict(state["lecam"])
