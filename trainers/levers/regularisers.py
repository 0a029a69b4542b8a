"""D regularisers beside its adversarial loss: R1, LeCam and balanced consistency (bCR). Each returns the
weighted term D's loss adds; the GAN step (trainers/loop.py) adds them where a reader sees D's objective.

  R1    gamma/2 * E_x[||grad_x D(x)||^2] on the real images D saw (Mescheder et al. 2018); lazy: every k-th
        D step with weight k * gamma (StyleGAN2).
  LeCam lambda * (E_x[(D(x) - a_F)^2] + E_z[(D(G(z)) - a_R)^2]), a_R and a_F exponential moving averages of
        D's mean raw output on real and fake batches (Tseng et al. 2021, their Eq. 3). The authors' code
        squares relu(D(x) - a_F) and relu(a_R - D(G(z))) instead; the two agree while D ranks real above
        fake. The EMAs start at the first batch's means, then a <- decay * a + (1 - decay) * mean.
  bCR   lambda_real * E[(D(x) - D(T(x)))^2] + lambda_fake * E[(D(G(z)) - D(T(G(z))))^2] on raw outputs, T an
        integer translation of up to 1/8 of the side (Zhao et al. 2021 use flip + translation; a chest X-ray
        has a side, so no flip). lambda_fake = 0 is CR (Zhang et al. 2020).
"""
from __future__ import annotations

import torch
from torch import nn

from trainers.levers.augment import _shifts, translate


def r1_penalty(real_in: torch.Tensor, real_logits: torch.Tensor, gamma: float) -> torch.Tensor:
    """gamma/2 * E[||grad_x D(x)||^2]; `real_in` required grad when D produced `real_logits` from it."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_in, create_graph=True)
    return 0.5 * gamma * grad.pow(2).flatten(1).sum(1).mean()


class LeCam:
    """R_LC with the moving averages it pulls D's outputs towards (device scalars, checkpointed)."""

    def __init__(self, weight: float, decay: float, device: torch.device) -> None:
        self.weight, self.decay = weight, decay
        self.ema_real = torch.zeros((), device=device)
        self.ema_fake = torch.zeros((), device=device)
        self.started = False

    def __call__(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        real_mean, fake_mean = real_logits.detach().mean(), fake_logits.detach().mean()
        if self.started:
            self.ema_real = self.ema_real.lerp(real_mean, 1.0 - self.decay)
            self.ema_fake = self.ema_fake.lerp(fake_mean, 1.0 - self.decay)
        else:
            self.ema_real, self.ema_fake, self.started = real_mean, fake_mean, True
        return self.weight * ((real_logits - self.ema_fake).pow(2).mean()
                              + (fake_logits - self.ema_real).pow(2).mean())

    def state_dict(self) -> dict:
        return {"ema_real": self.ema_real.detach().cpu(), "ema_fake": self.ema_fake.detach().cpu(),
                "started": self.started}

    def load_state_dict(self, state: dict) -> None:
        device = self.ema_real.device
        self.ema_real, self.ema_fake = state["ema_real"].to(device), state["ema_fake"].to(device)
        self.started = bool(state["started"])


def bcr_penalty(D: nn.Module, real_in: torch.Tensor, fake_in: torch.Tensor, real_logits: torch.Tensor,
                fake_logits: torch.Tensor, y_real: torch.Tensor | None, y_fake: torch.Tensor | None,
                gen: torch.Generator, real_weight: float, fake_weight: float) -> torch.Tensor:
    """bCR: D's raw output should not move when its input is translated (one draw for real and fake)."""
    B, _, H, W = real_in.shape
    dx, dy = _shifts(B, W, gen, real_in.device), _shifts(B, H, gen, real_in.device)
    real_t, _ = D(translate(real_in.detach(), dx, dy), y_real)
    fake_t, _ = D(translate(fake_in.detach(), dx, dy), y_fake)
    return (real_weight * (real_logits - real_t.float()).pow(2).mean()
            + fake_weight * (fake_logits - fake_t.float()).pow(2).mean())
