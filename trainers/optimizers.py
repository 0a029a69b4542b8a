"""Optimisers for G and D: Adam, SGD, RMSprop (torch) and AdaS, the adaptive step-size optimiser of seed 002.

AdaS here is Yanai Eliyahu's AdasOptimizer (ref. [15] of seed 002, MIT), written from its description
in ../shared/REFERENCE.md — not Hosseini & Plataniotis' per-layer schedule of the same name.

Example:
    >>> cfg = TrialConfig(optimizer="adas", lr_g=1e-4, lr_d=4e-4)
    >>> G, D = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    >>> opt_g, opt_d = build_optimizers(cfg, G, D)
    >>> opt_g.param_groups[0]["lr_scale"], opt_d.param_groups[0]["lr_scale"]
    (0.5, 2.0)
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from trainers.config import TrialConfig

# The original AdaS has no learning rate. TTUR needs one, so the update is multiplied by an explicit
# lr_scale = lr / ADAS_REFERENCE_LR: at the DCGAN default lr (2e-4) AdaS is exactly the original, and
# lr_g=1e-4, lr_d=4e-4 make G's steps half and D's steps twice the original size.
ADAS_REFERENCE_LR = 2e-4


class AdaS(Optimizer):
    """Adaptive step sizes learned by hypergradient descent (AdasOptimizer).

    For each weight tensor W (viewed as rows x columns, rows = dim 0):
      - v is a bias-corrected second-moment estimate of the gradient g (decay `beta_v`, no momentum);
        n = g / sqrt(v) is the normalised gradient.
      - s holds one step size per column (per input position, shared across dim 0 — output units for
        Linear/Conv2d, input channels for ConvTranspose2d, as in the original), initially `init_step`.
        The update is W -= lr_scale * s * n.
      - u is a moving average of n (decay `beta_u`). h = sum over rows of (u_prev * g) is the negative
        hypergradient of the loss w.r.t. s: positive when the gradient keeps its direction. After
        normalising h by its own second moment, s <- s * (1 + m * h_hat): consistent directions grow
        the step, oscillation shrinks it.
      - m, one meta-rate per tensor (initially `meta_rate`), adapts the same way from the hypergradient
        of s's own update (moving average decay `beta_s`), with the fixed rate `meta_meta_rate`.

    Args:
        params: parameters or parameter groups.
        lr_scale: multiplies every update (TTUR). Stored as group["lr"] = lr_scale * ADAS_REFERENCE_LR so
            logs and LR schedulers see an Adam-scale learning rate; `step` uses lr / ADAS_REFERENCE_LR.
        init_step, meta_rate, meta_meta_rate: initial step sizes, initial meta-rate, fixed meta-meta-rate.
        beta_v: decay of every second-moment normaliser; beta_u: decay of the normalised-update average;
        beta_s: decay of the average of normalised step-size hypergradients.
        eps: added to the normalisers' square roots.
        weight_decay: L2 penalty added to the gradient (the original has none; 0 = off).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr_scale: float = 1.0,
        *,
        init_step: float = 1e-3,
        meta_rate: float = 0.005,
        meta_meta_rate: float = 0.0005,
        beta_v: float = 0.999,
        beta_u: float = 0.9999,
        beta_s: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if not lr_scale > 0:
            raise ValueError(f"AdaS lr_scale={lr_scale!r} must be > 0")
        for name, beta in (("beta_v", beta_v), ("beta_u", beta_u), ("beta_s", beta_s)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"AdaS {name}={beta!r} must be in [0, 1)")
        if init_step <= 0 or meta_rate < 0 or meta_meta_rate < 0 or eps < 0 or weight_decay < 0:
            raise ValueError("AdaS init_step must be > 0; meta rates, eps and weight_decay must be >= 0")
        defaults = {
            "lr": lr_scale * ADAS_REFERENCE_LR, "init_step": init_step, "meta_rate": meta_rate,
            "meta_meta_rate": meta_meta_rate, "beta_v": beta_v, "beta_u": beta_u, "beta_s": beta_s, "eps": eps,
            "weight_decay": weight_decay,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            group.setdefault("lr_scale", group["lr"] / ADAS_REFERENCE_LR)

    @staticmethod
    def _normalise(x: torch.Tensor, v: torch.Tensor, beta: float, correction: float, eps: float) -> torch.Tensor:
        """Update v <- beta v + (1 - beta) x^2 in place and return x / sqrt(bias-corrected v)."""
        v.mul_(beta).addcmul_(x, x, value=1.0 - beta)
        return torch.div(x, v.sqrt().add_(eps)).mul_(correction)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            scale = group["lr"] / ADAS_REFERENCE_LR
            group["lr_scale"] = scale  # keep the derived view in sync if a scheduler changed lr
            bv, bu, bs, eps = group["beta_v"], group["beta_u"], group["beta_s"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdaS does not support sparse gradients")
                # rows = dim 0 (shared step sizes), columns = everything else; a 0-d tensor is 1 x 1
                w = p.view(p.shape[0], -1) if p.dim() > 0 else p.view(1, 1)
                g = p.grad.reshape(w.shape)
                if group["weight_decay"]:
                    g = g.add(w, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["v"] = torch.zeros_like(w)  # gradient second moment
                    state["u"] = torch.zeros_like(w)  # moving average of normalised updates
                    state["s"] = torch.full_like(w[0], group["init_step"])  # step sizes, one per column
                    state["v_s"] = torch.zeros_like(w[0])  # second moment of the step-size hypergradient
                    state["u_s"] = torch.zeros_like(w[0])  # moving average of its normalised form
                    state["m"] = torch.full((), group["meta_rate"], dtype=w.dtype, device=w.device)
                    state["v_m"] = torch.zeros((), dtype=w.dtype, device=w.device)
                state["step"] += 1
                correction = math.sqrt(1.0 - bv ** state["step"])
                s, u, m = state["s"], state["u"], state["m"]

                # (1) parameter update with the current step sizes
                n = self._normalise(g, state["v"], bv, correction, eps)
                w.addcmul_(s.expand_as(w), n, value=-scale)

                # (2) step sizes: hypergradient = previous average update direction . current gradient
                h = (u * g).sum(dim=0)
                u.mul_(bu).add_(n, alpha=1.0 - bu)
                h_hat = self._normalise(h, state["v_s"], bv, correction, eps)
                s.mul_(1.0 + m * h_hat)

                # (3) meta-rate: the same rule one level up, with a fixed rate
                h_m = (state["u_s"] * h).sum()
                state["u_s"].mul_(bs).add_(h_hat, alpha=1.0 - bs)
                h_m_hat = self._normalise(h_m, state["v_m"], bv, correction, eps)
                m.add_(m * h_m_hat * group["meta_meta_rate"])
        return loss


def build_optimizers(cfg: TrialConfig, G: nn.Module, D: nn.Module) -> tuple[Optimizer, Optimizer]:
    """(opt_g, opt_d) of kind cfg.optimizer at lr_g and lr_d (different rates = TTUR)."""
    return _build(cfg, G.parameters(), cfg.lr_g), _build(cfg, D.parameters(), cfg.lr_d)


def _build(cfg: TrialConfig, params: Iterable[nn.Parameter], lr: float) -> Optimizer:
    wd = cfg.weight_decay
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2), weight_decay=wd)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=wd)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=cfg.momentum, weight_decay=wd)
    if cfg.optimizer == "adas":
        return AdaS(params, lr_scale=lr / ADAS_REFERENCE_LR, weight_decay=wd)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")
