"""The seed papers `gan-study reproduce` knows: which study reproduces each, at which scale.

Each paper maps a scale to a search space shipped in search_spaces/:
- `cpu`: fits a 2-core machine (32 px, PneumoniaMNIST, small CNN classifier), real data;
- `gpu`: the paper's own setting (64-128 px, the Kaggle/Kermany tree, VGG-16 where the paper used it);
- `smoke`: the cpu space on the procedural phantom at toy size, a pipeline check for tests (never findings).
The claims each paper makes, and how ours are judged against them, live in analysis/comparison.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainers.errors import UserError

SCALES = ("cpu", "gpu", "smoke")

# Toy settings for the smoke scale: seconds per trial on the phantom; FID on 64 samples; one classifier fit
# per downstream measurement.
SMOKE = {"data": "phantom", "data_limit": 256, "resolution": 32, "g_features": 16, "d_features": 16,
         "latent_dim": 32, "iterations": 40, "report_every": 10, "fid_every": 2, "eval_samples": 64,
         "allow_low_n": True, "sample_grid": 16, "seed": 0, "classifier_epochs": 2, "classifier_repeats": 1,
         "num_threads": 1}


@dataclass(frozen=True)
class Paper:
    name: str  # the CLI name
    seed: str  # ../shared/seeds/<seed>_*.txt
    reproduces: str  # one line for --help
    space: str  # the gpu-scale space; the cpu one is `<space>_cpu`
    gpu_data_hint: str  # what --data should be at gpu scale
    smoke: dict[str, Any] = field(default_factory=dict)  # extra smoke overrides (fewer trials)

    def space_for(self, scale: str) -> str:
        return self.space if scale == "gpu" else f"{self.space}_cpu"

    def overrides_for(self, scale: str) -> dict[str, Any]:
        return {**SMOKE, **self.smoke} if scale == "smoke" else {}


PAPERS: dict[str, Paper] = {p.name: p for p in (
    Paper("acgan_tstr", "000", "ACGAN synthetic X-rays train a classifier tested on real ones (TSTR accuracy 0.85)",
          "acgan_tstr", "the Kaggle tree (64 px, VGG-16 as the paper)",
          {"tstr_samples": 200, "batch_size": 16}),
    Paper("minority_augmentation", "001", "synthetic NORMAL images added to real training data "
          "(accuracy 71.31% -> 74.68%)", "minority_augmentation", "the Kaggle tree (64 px, hist_eq)",
          {"augment_samples": 100, "batch_size": 16}),
    Paper("belmekki2022", "002", "D-loss mean vs FID (Table I, r = -0.90), optimizer/activation/TTUR effects, "
          "T0 vs batch size", "belmekki2022", "the Kaggle tree (64 px, batch 128)",
          {"activation": "relu", "ttur": "off", "batch_size": 16}),
    Paper("dcgan_training", "003", "a DCGAN's Loss_D, Loss_G, D(x), D(G(z)) over training (final 1.22, 2.16, "
          "0.65, 0.09)", "dcgan_training", "the Kaggle tree (64 px, batch 50)", {"seed": 0}),
    Paper("upsample_dcgan", "004", "upsample+conv generator on NORMAL images (FID 1.289 with 768-d Inception "
          "features)", "upsample_dcgan", "the Kaggle tree (128 px, NORMAL)", {"batch_size": 16}),
)}


def get_paper(name: str) -> Paper:
    """The paper called `name`; a one-line error listing the valid names otherwise."""
    if name not in PAPERS:
        raise UserError(f"unknown paper {name!r}; valid papers: {', '.join(PAPERS)}")
    return PAPERS[name]


def describe() -> str:
    """The --help text listing every paper and what it reproduces."""
    return "\n".join(f"  {p.name:<22} seed {p.seed}: {p.reproduces}" for p in PAPERS.values())
