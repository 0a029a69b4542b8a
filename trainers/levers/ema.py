"""Generator EMA: an exponential moving average of G's weights, the generator a trial is measured by.

After each G update: for the first `start` G steps the average is a copy of G (early weights never enter
it), then  w_ema <- decay * w_ema + (1 - decay) * w_G  for every parameter; buffers (BatchNorm running
statistics, spectral-norm vectors) are copied from G. FID/KID, TSTR and `gan-study generate` use it when
`apply_g_ema` is on (results say which: `eval_generator`); training never reads it.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class GeneratorEMA:
    def __init__(self, G: nn.Module, decay: float, start: int) -> None:
        self.module = copy.deepcopy(G).eval().requires_grad_(False)
        self.decay, self.start = decay, start
        self.steps = 0  # G updates seen (host counter, checkpointed)

    @torch.no_grad()
    def update(self, G: nn.Module) -> None:
        self.steps += 1
        for p_ema, p in zip(self.module.parameters(), G.parameters()):
            if self.steps <= self.start:
                p_ema.copy_(p)
            else:
                p_ema.lerp_(p, 1.0 - self.decay)
        for b_ema, b in zip(self.module.buffers(), G.buffers()):
            b_ema.copy_(b)
