"""Differentiable augmentation of D's inputs: DiffAugment (Zhao et al. 2020) and ADA (Karras et al. 2020).

Both augment real and fake images before D, in the D step and the G step, with ops G's gradient flows
through (indexing, masks, affine resampling: no `no_grad`, no detach). An augmentation draws its random
parameters once (`draw`) and applies them (`apply`): the D step applies one draw to the real and the
fake batch alike (image i of each gets the same ops), so the only difference D sees is real vs fake.
Draws come from the loop's device generator, which checkpoints restore.

DiffAugment ops on 1-channel radiographs (official `DiffAugment_pytorch.py`, images in [-1, 1]):
  brightness  x + U(-0.5, 0.5)                       (the grayscale half of its `color`; no saturation)
  contrast    (x - mean) * U(0.5, 1.5) + mean
  translation integer shift up to 1/8 of the side, zero fill
  cutout      a zeroed square of half the side at a random centre
  flip        horizontal, probability 1/2: opt-in only, a chest X-ray has a side (the heart is on the left)

ADA (StyleGAN2-ADA's `AugmentPipe`), a documented subset for grayscale radiographs, each op applied per
image with probability p: integer translation (up to 1/8 of the side, reflect padding), isotropic scaling
(2^N(0, 0.2), reflect padding, bilinear), brightness (+N(0, 0.2)) and contrast (x 2^N(0, 0.5) about mid-grey).
Left out: x-flip, 90-degree and arbitrary rotation (a radiograph has a side and an up), anisotropic
scaling, fractional translation, luma flip, hue, saturation, filtering, noise and cutout.
p moves every `ada_interval` D steps by sign(r_t - ada_target) * batch * interval / (ada_kimg * 1000),
clamped to [0, 1], where r_t = E[sign(D(x) - c)] over those steps (c: `GanLoss.decision_threshold`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

TRANSLATION_RATIO = 0.125  # DiffAugment rand_translation; ADA's xint_max
CUTOUT_RATIO = 0.5  # DiffAugment rand_cutout
ADA_SCALE_STD = 0.2  # log2 std of ADA's isotropic scale
ADA_BRIGHTNESS_STD = 0.2
ADA_CONTRAST_STD = 0.5  # log2 std


def translate(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, *, reflect: bool = False) -> torch.Tensor:
    """out[i, :, r, c] = x[i, :, r - dy[i], c - dx[i]]; outside the image zero (or its mirror image)."""
    B, C, H, W = x.shape
    rows = torch.arange(H, device=x.device).view(1, H, 1) - dy.view(B, 1, 1)
    cols = torch.arange(W, device=x.device).view(1, 1, W) - dx.view(B, 1, 1)
    if reflect:
        rows, cols = _mirror(rows, H), _mirror(cols, W)
    inside = ((rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)).unsqueeze(1)
    index = (rows.clamp(0, H - 1) * W + cols.clamp(0, W - 1)).view(B, 1, H * W).expand(B, C, H * W)
    out = x.reshape(B, C, H * W).gather(2, index).view(B, C, H, W)
    return out if reflect else out.masked_fill(~inside, 0.0)


def _mirror(i: torch.Tensor, n: int) -> torch.Tensor:
    i = i.abs()
    return torch.where(i > n - 1, 2 * (n - 1) - i, i)


def _shifts(n: int, size: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    s = int(size * TRANSLATION_RATIO + 0.5)
    return torch.randint(-s, s + 1, (n,), generator=gen, device=device)


class DiffAugment:
    """DiffAugment with a comma-separated policy of DIFFAUG_OPS (applied in the order listed there)."""

    ORDER = ("flip", "brightness", "contrast", "translation", "cutout")

    def __init__(self, policy: str, gen: torch.Generator) -> None:
        ops = {op.strip() for op in policy.split(",") if op.strip()}
        self.ops = [op for op in self.ORDER if op in ops]
        self.gen = gen

    def draw(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Random parameters for a batch shaped like x (one set per image)."""
        B, _, H, W = x.shape
        g, dev = self.gen, x.device
        p: dict[str, torch.Tensor] = {}
        for op in self.ops:
            if op == "flip":
                p["flip"] = torch.rand(B, generator=g, device=dev) < 0.5
            elif op == "brightness":
                p["brightness"] = torch.rand(B, generator=g, device=dev) - 0.5
            elif op == "contrast":
                p["contrast"] = torch.rand(B, generator=g, device=dev) + 0.5
            elif op == "translation":
                p["dx"], p["dy"] = _shifts(B, W, g, dev), _shifts(B, H, g, dev)
            elif op == "cutout":
                size = int(H * CUTOUT_RATIO + 0.5), int(W * CUTOUT_RATIO + 0.5)
                p["cy"] = torch.randint(0, H + (1 - size[0] % 2), (B,), generator=g, device=dev) - size[0] // 2
                p["cx"] = torch.randint(0, W + (1 - size[1] % 2), (B,), generator=g, device=dev) - size[1] // 2
        return p

    def apply(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        B, _, H, W = x.shape
        col = (B, 1, 1, 1)
        for op in self.ops:
            if op == "flip":
                x = torch.where(p["flip"].view(col), x.flip(3), x)
            elif op == "brightness":
                x = x + p["brightness"].view(col)
            elif op == "contrast":
                mean = x.mean(dim=(1, 2, 3), keepdim=True)
                x = (x - mean) * p["contrast"].view(col) + mean
            elif op == "translation":
                x = translate(x, p["dx"], p["dy"])
            elif op == "cutout":
                h, w = int(H * CUTOUT_RATIO + 0.5), int(W * CUTOUT_RATIO + 0.5)
                r = torch.arange(H, device=x.device).view(1, H, 1) - p["cy"].view(B, 1, 1)
                c = torch.arange(W, device=x.device).view(1, 1, W) - p["cx"].view(B, 1, 1)
                hole = (r >= 0) & (r < h) & (c >= 0) & (c < w)
                x = x.masked_fill(hole.unsqueeze(1), 0.0)
        return x


class AdaAugment:
    """ADA's pipeline (the subset above) and its probability p, a device scalar adapted from r_t."""

    def __init__(self, gen: torch.Generator, device: torch.device, *, target: float, kimg: int, interval: int,
                 batch_size: int) -> None:
        self.gen = gen
        self.target, self.interval = target, interval
        self.step_size = batch_size * interval / (kimg * 1000)
        self.p = torch.zeros((), device=device)
        self.rt_sum = torch.zeros((), device=device)  # r_t summed since the last adjustment
        self.count = 0  # D steps since the last adjustment (host counter: no device read)

    def observe(self, r_t: torch.Tensor) -> None:
        """Add one D step's r_t; every `interval` steps move p towards the target (device ops only)."""
        self.rt_sum += r_t
        self.count += 1
        if self.count == self.interval:
            sign = torch.sign(self.rt_sum / self.interval - self.target)
            self.p = (self.p + sign * self.step_size).clamp(0.0, 1.0)
            self.rt_sum.zero_()
            self.count = 0

    def draw(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        B, _, H, W = x.shape
        g, dev = self.gen, x.device

        def chosen() -> torch.Tensor:
            return torch.rand(B, generator=g, device=dev) < self.p

        return {
            "t": chosen(), "dx": _shifts(B, W, g, dev), "dy": _shifts(B, H, g, dev),
            "s": chosen(), "scale": torch.exp2(torch.randn(B, generator=g, device=dev) * ADA_SCALE_STD),
            "b": chosen(), "brightness": torch.randn(B, generator=g, device=dev) * ADA_BRIGHTNESS_STD,
            "c": chosen(), "contrast": torch.exp2(torch.randn(B, generator=g, device=dev) * ADA_CONTRAST_STD),
        }

    def apply(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        B = x.shape[0]
        col = (B, 1, 1, 1)
        zero = torch.zeros_like(p["dx"])
        x = translate(x, torch.where(p["t"], p["dx"], zero), torch.where(p["t"], p["dy"], zero), reflect=True)
        theta = torch.zeros(B, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / p["scale"]  # sampling at coordinates / s magnifies by s
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        scaled = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        x = torch.where(p["s"].view(col), scaled, x)
        x = x + torch.where(p["b"], p["brightness"], torch.zeros_like(p["brightness"])).view(col)
        return x * torch.where(p["c"], p["contrast"], torch.ones_like(p["contrast"])).view(col)

    def state_dict(self) -> dict:
        return {"p": self.p.detach().cpu(), "rt_sum": self.rt_sum.detach().cpu(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        device = self.p.device
        self.p, self.rt_sum = state["p"].to(device), state["rt_sum"].to(device)
        self.count = int(state["count"])
