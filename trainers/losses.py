"""GAN objectives on D's raw logits, selected by `cfg.loss`.

Every D loss is the sum of a real-sample term and a fake-sample term (pytorch/examples' errD_real +
errD_fake). The "chance" level T0 uses (`chance_level`) is the loss of the best discriminator that
cannot tell real from fake, i.e. outputs one constant c for every input, minimised over c:
2 ln 2 for bce (c = logit 0), 0.5 for lsgan (c = 0.5: the logit-0 value 1 is not chance there),
2 for hinge (any c in [-1, 1]) and 0 for wgan_gp (no positive chance level: T0 is undefined).

| loss        | D minimises                               | G minimises            | score(logits) |
|-------------|-------------------------------------------|------------------------|---------------|
| bce         | -log D(x) - log(1 - D(G(z)))              | -log D(G(z)) (non-sat.)| sigmoid       |
| bce_minimax | same                                      | log(1 - D(G(z)))       | sigmoid       |
| lsgan       | (D(x) - 1)^2 + D(G(z))^2                  | (D(G(z)) - 1)^2        | raw output    |
| hinge       | relu(1 - D(x)) + relu(1 + D(G(z)))        | -D(G(z))               | raw output    |
| wgan_gp     | D(G(z)) - D(x) (+ gradient penalty)       | -D(G(z))               | raw output    |

D(.) is sigmoid(logit) for the BCE rows and the raw logit otherwise; each term is a batch mean.

LSGAN decision: we use Mao et al. (2017) least squares on D's *raw* output with targets 1 (real) and
0 (fake). Seed 000's Keras ACGAN applied MSE to *sigmoid* probabilities, which saturates exactly like
minimax BCE; the raw form keeps gradients alive and is what "LSGAN" means elsewhere. Its score is the
raw output, which sits on the same 1 = real / 0 = fake scale as a probability.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainers.config import TrialConfig

_SIGMOID_SCORES = ("bce", "bce_minimax")


class GanLoss:
    """The adversarial objective of one trial. Example:

    >>> loss = GanLoss(TrialConfig(loss="hinge"))
    >>> float(loss.d_loss(torch.zeros(4), torch.zeros(4)))
    2.0
    """

    def __init__(self, cfg: TrialConfig) -> None:
        self.kind = cfg.loss
        self.gp_weight = cfg.gp_weight

    def chance_level(self) -> float:
        """D loss of the best non-discriminating D (one constant output for real and fake alike)."""
        return {"bce": 2 * math.log(2), "bce_minimax": 2 * math.log(2), "lsgan": 0.5, "hinge": 2.0,
                "wgan_gp": 0.0}[self.kind]

    # ------------------------------------------------------------------
    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Discriminator loss (scalar); the WGAN-GP penalty is added separately (`gradient_penalty`)."""
        if self.kind in ("bce", "bce_minimax"):
            # softplus(-l) = -log sigmoid(l); softplus(l) = -log(1 - sigmoid(l)), stable for any logit
            return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        if self.kind == "lsgan":
            return (real_logits - 1.0).pow(2).mean() + fake_logits.pow(2).mean()
        if self.kind == "hinge":
            return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
        if self.kind == "wgan_gp":
            return fake_logits.mean() - real_logits.mean()
        raise ValueError(f"unknown loss {self.kind!r}")

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Generator loss (scalar)."""
        if self.kind == "bce":
            return F.softplus(-fake_logits).mean()  # -log D(G(z)): strong gradients while D wins (Goodfellow)
        if self.kind == "bce_minimax":
            return -F.softplus(fake_logits).mean()  # log(1 - D(G(z))): the original minimax game
        if self.kind == "lsgan":
            return (fake_logits - 1.0).pow(2).mean()
        if self.kind in ("hinge", "wgan_gp"):
            return -fake_logits.mean()
        raise ValueError(f"unknown loss {self.kind!r}")

    def gradient_penalty(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """gp_weight * E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates x_hat (Gulrajani et al. 2017).

        Zero for every loss but wgan_gp. The mixing weights are drawn on the training device from its global
        RNG (no host-to-device copy per step); checkpoints restore that RNG, so a resumed run draws the same.
        """
        if self.kind != "wgan_gp":
            return torch.zeros((), device=real.device)
        eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
        x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
        logits, _ = D(x_hat, labels)
        (grad,) = torch.autograd.grad(logits.sum(), x_hat, create_graph=True)
        norm = grad.flatten(1).norm(2, dim=1)
        return self.gp_weight * (norm - 1.0).pow(2).mean()

    def decision_threshold(self) -> float:
        """The raw D output above which D calls an image real: logit 0 (probability 0.5) for BCE, 0.5 for
        LSGAN (its targets are 1 and 0), 0 for hinge and WGAN (their sign). ADA's r_t and D's accuracy use it."""
        return 0.5 if self.kind == "lsgan" else 0.0

    def score(self, logits: torch.Tensor) -> torch.Tensor:
        """What D(x) / D(G(z)) report: a probability for BCE losses, the raw output otherwise."""
        return torch.sigmoid(logits) if self.kind in _SIGMOID_SCORES else logits

    def aux_loss(self, class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """ACGAN auxiliary classification loss: cross-entropy of D's class head against the labels."""
        return F.cross_entropy(class_logits, labels)
