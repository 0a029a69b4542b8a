"""Column names analysis reads, derived once from the config dataclass and `trainers.metric_keys`.

Config columns are `config/<TrialConfig field>`; `cfg()` refuses a field the dataclass does not have,
so a renamed field fails loudly here instead of silently dropping out of every analysis.
"""
from __future__ import annotations

import dataclasses

from trainers import metric_keys as mk
from trainers.config import TrialConfig

CONFIG_PREFIX = "config/"
CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(TrialConfig)) | {"ttur", "design_id"}
CELL_PREFIX = "cell/"  # a design cell's level per factor (study.tables.CELL_PREFIX)


def cfg(field: str) -> str:
    """`config/<field>` for a TrialConfig field (or the derived `ttur`)."""
    if field not in CONFIG_FIELDS:
        raise KeyError(f"{field!r} is not a TrialConfig field")
    return CONFIG_PREFIX + field


# --- identity columns (RESULTS_SCHEMA "Common columns") and trials.parquet extras
STUDY = "study"
TRIAL_ID = "trial_id"
TIMESTAMP = "timestamp"
TRIAL_DIR = "trial_dir"
BEST_FID = "best_" + mk.FID  # trials.parquet: minimum over reports
# Added by analysis.load: a key unique across several study dirs, and the dir sample paths are relative to.
TRIAL_KEY = "_trial"
STUDY_DIR = "_study_dir"

SEED = cfg("seed")
NAME = cfg("name")
LOSS = cfg("loss")
# Columns that never define a configuration: averaging over them gives the configuration level.
NOT_CONFIGURATION = (SEED, NAME)
# How FID/KID were measured (feature extractor, samples per side): values measured differently never pool.
MEASUREMENT = (mk.EVAL_EXTRACTOR, mk.EVAL_N)

# --- factors the study varies (seed 002: optimizer, activation, TTUR; plus compare_gan-style extras)
FACTORS = (
    cfg("optimizer"),
    cfg("g_activation"),
    cfg("d_activation"),
    cfg("ttur"),
    cfg("batch_size"),
    cfg("kernel_size"),
    cfg("resolution"),
    cfg("loss"),
    cfg("g_norm"),
    cfg("d_norm"),
    cfg("g_upsample"),
    cfg("conditioning"),
)

# --- training signals tested against sample quality (seed 002 Table I / Fig. 5, seed 003)
PREDICTORS = (mk.D_LOSS_MEAN, mk.D_LOSS_VAR, mk.D_LOSS_STD, mk.G_LOSS_MEAN, mk.D_X, mk.D_G_Z, mk.T0,
              # D signals beside the loss (issue #22): only studies that recorded them have the columns
              mk.R_T_MEAN, mk.D_MARGIN_MEAN, mk.D_ACC_GAP)
# FID and KID are analysed on the log scale by default: a few collapsed seeds (FID in the hundreds next to
# single digits) dominate every raw variance. Raw values stay, labelled exploratory. log is NaN where the
# value is not positive (KID's unbiased estimate can be <= 0).
LOG_FID = "log_fid"
LOG_KID = "log_kid_mean"
LOG_OF = {LOG_FID: mk.FID, LOG_KID: mk.KID_MEAN}
TARGETS = (LOG_FID, LOG_KID, mk.FID, mk.KID_MEAN)
RAW_TARGETS = (mk.FID, mk.KID_MEAN)
# D(x) - D(G(z)) at the trial's last report (seed 003's gap; a plan may test it, analysis.load adds it).
D_GAP = "d_gap"
COLLAPSED = "collapsed"  # 1 = the run collapsed under the study's rule (analysis.collapse); its config mean is the rate
CURVES = (mk.LOSS_D, mk.LOSS_G, mk.D_X, mk.D_G_Z, mk.FID)

TSTR_ACCURACY = mk.TSTR_PREFIX + mk.ACCURACY
TRTR_ACCURACY = mk.TRTR_PREFIX + mk.ACCURACY
AUGMENT_ACCURACY = mk.AUGMENT_PREFIX + mk.ACCURACY

LABELS = {
    mk.FID: "FID",
    mk.KID_MEAN: "KID",
    LOG_FID: "log FID",
    LOG_KID: "log KID",
    COLLAPSED: "collapse rate",
    BEST_FID: "best FID",
    mk.D_LOSS_MEAN: "D-loss mean",
    mk.D_LOSS_VAR: "D-loss variance",
    mk.D_LOSS_STD: "D-loss std",
    mk.G_LOSS_MEAN: "G-loss mean",
    mk.D_X: "D(x)",
    mk.D_G_Z: "D(G(z))",
    D_GAP: "D(x) - D(G(z))",
    mk.T0: "T0",
    mk.LOSS_D: "D loss",
    mk.LOSS_G: "G loss",
    TSTR_ACCURACY: "TSTR accuracy",
    TRTR_ACCURACY: "TRTR accuracy",
    AUGMENT_ACCURACY: "augmented accuracy",
    mk.AUGMENT_GAIN: "augmentation gain",
    mk.R_T_MEAN: "r_t mean",
    mk.D_MARGIN_MEAN: "D(x) - D(G(z)) mean",
    mk.D_ACC_GAP: "D accuracy gap (train - held-out)",
    mk.R_T: "r_t",
    mk.D_ACC_TRAIN: "D accuracy (train)",
    mk.D_ACC_HELDOUT: "D accuracy (held-out)",
    mk.ADA_P: "ADA p",
}


def label(column: str) -> str:
    """Human name of a metric or config column."""
    if column in LABELS:
        return LABELS[column]
    return str(column).removeprefix(CONFIG_PREFIX).removeprefix(CELL_PREFIX)


def config_columns(columns) -> list[str]:
    """Config columns present in a frame, in their stored order."""
    return [c for c in columns if str(c).startswith(CONFIG_PREFIX)]
