"""Named configurations: the seed papers' setups and a seconds-long smoke run.

Each preset is a flat dict of TrialConfig overrides on top of the defaults (which are pytorch/examples'
DCGAN at 64 px). Where a paper leaves a setting out, the preset keeps the default and says so.

Example:
    >>> get_preset("smoke").resolution
    32
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainers.config import ConfigError, TrialConfig

# Seed 002 (Belmekki et al.) gives no TTUR learning rates; we use the common 1:4 split (G 1e-4, D 4e-4,
# as in SAGAN / Heusel et al.'s DCGAN runs). It reports batch 256 stalling and 128 working.
_TTUR = {"lr_g": 1e-4, "lr_d": 4e-4}
# Seed 002 Table II: ELU everywhere, no norm in G, BatchNorm only in D's hidden layers, 64 px, z = 100.
_BELMEKKI_ELU = {
    "resolution": 64, "latent_dim": 100, "g_features": 64, "d_features": 64, "kernel_size": 4,
    "g_activation": "elu", "d_activation": "elu", "g_norm": "none", "d_norm": "batch",
    "g_output": "tanh", "loss": "bce", "batch_size": 128,
}

PRESETS: dict[str, dict[str, Any]] = {
    # pytorch/examples dcgan/main.py: 64 px, nz 100, ngf = ndf = 64, BN + ReLU G, BN + LeakyReLU(0.2) D,
    # Adam lr 2e-4, betas (0.5, 0.999), batch 64, BCE.
    "dcgan": {
        "resolution": 64, "latent_dim": 100, "g_features": 64, "d_features": 64, "kernel_size": 4,
        "g_activation": "relu", "d_activation": "leaky_relu", "leaky_slope": 0.2, "g_norm": "batch",
        "d_norm": "batch", "optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999,
        "batch_size": 64, "loss": "bce",
    },
    # --- seed 002, Table I rows (FID 104.6, 238.3, 100.6, 111.9) and Table II (the best architecture)
    # Row 1: AdaS, ELU, no TTUR.
    "belmekki_adas_elu": {**_BELMEKKI_ELU, "optimizer": "adas"},
    # Row 2: Adam, ELU, no TTUR (Table I; its Fig. 6a caption says "ELU + TTUR ... AdaM", see next preset).
    "belmekki_adam_elu": {**_BELMEKKI_ELU, "optimizer": "adam", "beta1": 0.5},
    # Fig. 6a's reading of row 2: Adam, ELU, with TTUR.
    "belmekki_adam_elu_ttur": {**_BELMEKKI_ELU, "optimizer": "adam", "beta1": 0.5, **_TTUR},
    # Row 3, the paper's best (Table II): AdaS, ELU, TTUR.
    "belmekki_adas_elu_ttur": {**_BELMEKKI_ELU, "optimizer": "adas", **_TTUR},
    # Row 4: conventional DCGAN (ReLU G, LeakyReLU D, BN in both: "BN was only added to the
    # discriminator of the model with ELU") trained with AdaS, no TTUR.
    "belmekki_adas_relu": {
        "resolution": 64, "g_activation": "relu", "d_activation": "leaky_relu", "g_norm": "batch",
        "d_norm": "batch", "optimizer": "adas", "batch_size": 128, "loss": "bce",
    },
    # --- seed 000: ACGAN at 64 px; lr 1e-4, batch 16, z 100, kernel 5, LayerNorm + ReLU in G, sigmoid
    # output, MSE loss (our lsgan, see losses.py), weight decay 6e-9. D: LeakyReLU with dropout and no
    # BatchNorm mentioned (no dropout here). Adam's beta1 is not stated: DCGAN's 0.5.
    "acgan_seed000": {
        "resolution": 64, "latent_dim": 100, "kernel_size": 5, "g_activation": "relu", "g_norm": "layer",
        "g_output": "sigmoid", "d_activation": "leaky_relu", "d_norm": "none", "conditioning": "acgan",
        "num_classes": 2, "loss": "lsgan", "optimizer": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.5,
        "weight_decay": 6e-9, "batch_size": 16,
    },
    # --- seed 003: DCGAN, BN + ReLU G with tanh, LeakyReLU (+ BN) D, Adam beta1 0.55, batch 50, z 100.
    # Its table says lr 0.002 but the text credits 0.0002 for the good images: we use 2e-4.
    "dcgan_seed003": {
        "resolution": 64, "latent_dim": 100, "kernel_size": 4, "g_activation": "relu", "g_norm": "batch",
        "d_activation": "leaky_relu", "d_norm": "batch", "g_output": "tanh", "loss": "bce",
        "optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.55, "batch_size": 50,
    },
    # --- seed 004: upsample + conv G with LeakyReLU, strided-conv LeakyReLU D, tanh, 128 px, NORMAL only
    # (it augments the minority class). Norms, lr and batch size are not stated: DCGAN defaults.
    "upsample_seed004": {
        "resolution": 128, "latent_dim": 100, "g_upsample": "upsample_conv", "g_activation": "leaky_relu",
        "d_activation": "leaky_relu", "g_output": "tanh", "class_subset": "NORMAL", "loss": "bce",
    },
    # --- tiny and fast: for tests and `--smoke-test` runs (seconds on 2 CPU cores).
    "smoke": {
        "data": "phantom", "data_limit": 256, "resolution": 32, "g_features": 16, "d_features": 16,
        "batch_size": 16, "iterations": 40, "report_every": 10, "sample_grid": 16, "fid_every": 0,
        "eval_at_end": False, "downstream": "",
    },
}


def get_preset(name: str, overrides: Mapping[str, Any] | None = None) -> TrialConfig:
    """The validated TrialConfig of preset `name` (its `name` field set to it), with optional overrides."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; allowed presets: {', '.join(sorted(PRESETS))}")
    values: dict[str, Any] = {"name": name, **PRESETS[name]}
    values.update(overrides or {})
    return TrialConfig.from_dict(values)
