"""Seed 002 (Belmekki et al. 2022) Table I, and what its four rows can and cannot support.

The paper reads "FID and the mean loss value of D are highly inversely correlated" off a Pearson matrix
of four runs. With n = 4, r = -0.90 has p ~ 0.10, and without the one failed run (FID 238) r ~ +0.03.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import columns as C
from analysis.stats import corr_test, fisher_ci
from trainers import metric_keys as mk

REFERENCE_CSV = Path(__file__).resolve().parent / "reference" / "belmekki2022_table1.csv"
FAILED = "failed_run"
PAPER_ROW = "paper_row"
STAT_COLUMNS = (mk.FID, mk.D_LOSS_MEAN, mk.D_LOSS_VAR, mk.D_LOSS_STD)
# Where the paper contradicts itself; the table's numbers are what we use.
PAPER_NOTES = (
    ("Table I's caption calls the row with the highest D-loss mean (1.185, AdaS+ELU+TTUR) the one with 'the "
    "highest FID score'; its FID is the lowest (100.581), and lower FID is better."),
    "Fig. 6 captions the AdaM run as 'ELU + TTUR', while Table I lists it without TTUR.",
    ("FID was computed with Inception features on an unstated number of samples; absolute values are not "
    "comparable with this project's FIDs."),
)


def load_reference(path: Path = REFERENCE_CSV) -> pd.DataFrame:
    """The four Table I rows with config columns (config/optimizer, ...) and metric columns (fid, ...)."""
    df = pd.read_csv(path)
    missing = {C.cfg("optimizer"), C.cfg("ttur"), *STAT_COLUMNS, FAILED} - set(df.columns)
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}")
    return df


def reference_correlations(df: pd.DataFrame | None = None, *, n_permutations: int = 5000) -> pd.DataFrame:
    """D-loss statistics vs FID on all four rows and without the failed run: r, exact permutation p, Fisher CI."""
    df = load_reference() if df is None else df
    subsets = {"all 4 runs": df, "without the failed run": df.loc[~df[FAILED].astype(bool)]}
    rows = []
    for subset, sub in subsets.items():
        for predictor in (mk.D_LOSS_MEAN, mk.D_LOSS_VAR, mk.D_LOSS_STD):
            res = corr_test(sub[predictor], sub[mk.FID], n_resamples=200, n_permutations=n_permutations)
            lo, hi = fisher_ci(res.r, res.n)
            rows.append({"subset": subset, "predictor": predictor, "target": mk.FID, "method": "pearson", "n": res.n,
                             "r": res.r, "p_param": res.p_param, "p_perm_exact": res.p_perm, "fisher_ci_low": lo,
                             "fisher_ci_high": hi})
    return pd.DataFrame(rows)


def reference_matrix(df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Seed 002 Fig. 5 recomputed: Pearson matrix of FID and the D-loss mean, variance and std."""
    df = load_reference() if df is None else df
    return df[list(STAT_COLUMNS)].astype(float).corr().rename(index=C.label, columns=C.label)
