"""Every feature extractor by name, for re-scoring a study with another yardstick (`gan-study rescore`).

Trials measure with `cfg.extractor` (`evaluator.build_extractor`); re-scoring may also use the domain extractor
retrained with another seed, pretrained extractors from a local weights file given on the command line, and
RAD-DINO, which trials do not offer. Each result column is tagged by `tag()`: `fid@domain-seed1`, `fid@xrv`.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from trainers.errors import UserError

NAMES = ("domain", "xrv", "inception", "raddino")
WEIGHTS_ENV = {"inception": "GAN_STUDY_INCEPTION_WEIGHTS", "xrv": "GAN_STUDY_XRV_WEIGHTS",
               "raddino": "GAN_STUDY_RAD_DINO_WEIGHTS"}


@dataclass(frozen=True)
class ExtractorChoice:
    """An extractor to re-score with: its name, the domain extractor's seed, a local weights path."""

    name: str
    seed: int = 0
    weights: str | None = None  # a file (inception, xrv) or directory (raddino); else the WEIGHTS_ENV variable
    inception_dims: int = 2048

    def __post_init__(self) -> None:
        if self.name not in NAMES:
            raise UserError(f"--extractor {self.name!r} is not an extractor; allowed: {', '.join(NAMES)}")
        if self.seed and self.name != "domain":
            raise UserError(f"--extractor-seed {self.seed}: only the domain extractor is trained here and has a seed; "
                            f"{self.name!r} is pretrained")
        if self.seed < 0:
            raise UserError(f"--extractor-seed {self.seed} must be >= 0")
        if self.name == "domain" and self.weights:
            raise UserError("--weights is for pretrained extractors (inception, xrv, raddino); the domain extractor "
                            "is trained on the study's data")
        if self.name == "inception" and not (self.weights or os.environ.get(WEIGHTS_ENV["inception"])):
            raise UserError("--extractor inception needs its weights file (pt_inception-2015-12-05-6726825d.pth): "
                            f"give --weights FILE or set {WEIGHTS_ENV['inception']}; nothing is downloaded")
        if self.weights and not Path(self.weights).expanduser().exists():
            raise UserError(f"--weights {self.weights} does not exist")

    @property
    def tag(self) -> str:
        """The column suffix: domain, domain-seed1, xrv, inception-2048, raddino."""
        if self.name == "domain":
            return "domain" if self.seed == 0 else f"domain-seed{self.seed}"
        return f"inception-{self.inception_dims}" if self.name == "inception" else self.name


def build(choice: ExtractorChoice, *, reference: Any, cache_dir: Path, device: torch.device | str = "cpu",
          hist_eq: bool = False) -> Any:
    """The extractor; the domain one is trained on `reference` (all classes) with choice.seed, once per dataset."""
    if choice.name == "domain":
        from trainers.evaluation.feature_domain import DomainExtractor

        return DomainExtractor(reference, cache_dir, device, seed=choice.seed, hist_eq=hist_eq)
    if choice.name == "raddino":
        from trainers.evaluation.feature_raddino import RadDinoExtractor

        return RadDinoExtractor(choice.weights, device)
    with _weights_env(WEIGHTS_ENV[choice.name], choice.weights):
        if choice.name == "xrv":
            from trainers.evaluation.feature_xrv import XrvExtractor

            return XrvExtractor(device)
        from trainers.evaluation.feature_inception import InceptionExtractor

        return InceptionExtractor(choice.inception_dims, device)


@contextmanager
def _weights_env(var: str, path: str | None) -> Iterator[None]:
    """The extractors read their weights path from the environment: set it for the build only."""
    if not path:
        yield
        return
    old = os.environ.get(var)
    os.environ[var] = str(Path(path).expanduser().resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = old
