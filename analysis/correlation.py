"""Does a training signal (D-loss mean, ...) track sample quality (FID, KID)? Seed 002's claim, tested.

Across trials: every (target, predictor) pair, Pearson and Spearman, at trial and configuration level,
within each loss type (and pooled after z-scoring within loss), plain and partial on study factors.
Within trials: correlation across one trial's reports between its D loss and its FID.
Seeds are repeats of a configuration, so intervals and p-values resample configurations at both levels.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import columns as C
from analysis.cells import Cells, between_share, design_cells, leave_one_cell_out, within_cells
from analysis.groups import (LEVELS, at_level, configuration_codes, is_pooled, loss_groups, measurement_labels,
                             zscore_within)
from analysis.partial import control_columns, design_matrix
from analysis.stats import bootstrap_mean, corr_test, design_rank
from trainers import metric_keys as mk

WITHIN_X = (mk.LOSS_D, mk.D_LOSS_MEAN)
MIN_DOF_PARTIAL = 8  # configurations - control rank: >= 5 residual degrees of freedom after intercept and r
UNIT = {"trial": "trial", "config": "configuration"}  # what one point of r is
CONTROLLED_TARGETS = (C.LOG_FID, mk.FID)  # targets also tested within cells and on additive factors


def signal_correlations(
    trials: pd.DataFrame,
    *,
    targets: Sequence[str] = C.TARGETS,
    predictors: Sequence[str] = C.PREDICTORS,
    methods: Sequence[str] = ("pearson", "spearman"),
    levels: Sequence[str] = LEVELS,
    partial: bool = True,
    factors: Sequence[str] = C.FACTORS,
    n_resamples: int = 2000,
    n_permutations: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per test: level, unit, group, target, predictor, method, controls, n, n_configs, r, CI, p.

    Every CI and p-value treats the configuration as the unit: at trial level the seeds of one
    configuration are resampled and permuted together, and the t-test counts configurations.
    With `partial`, each plain test is repeated controlling for the study factors (additive one-hot,
    `control_kind` "factors") and within design cells (cell fixed effects, analysis.cells, `control_kind`
    "cells"; at trial level the cells are configurations and seeds are permuted within them), the cell
    rows with leave-one-cell-out r (`loco_*`) and the share of the association between cells.
    """
    targets = [t for t in targets if t in trials.columns and trials[t].notna().any()]
    predictors = [p for p in predictors if p in trials.columns and trials[p].notna().any()]
    rows: list[dict] = []
    if not targets or not predictors or trials.empty:
        return pd.DataFrame(rows)
    values = [*targets, *predictors]
    one_seed_each = len(at_level(trials, "config", values)) == len(trials)
    for level in levels:
        if level == "trial" and one_seed_each and "config" in levels:
            continue  # one seed per configuration: the trial level is the configuration level
        frame = at_level(trials, level, values)
        for group, sub in loss_groups(frame, values):
            design = _tests_in_group(sub, level, group, partial)
            for predictor in predictors:
                cells = design_cells(sub, factors, predictor, level=level) if partial else None
                for target in targets:
                    controlled = target in CONTROLLED_TARGETS  # FID (log and raw): the claim under test
                    for method in methods:
                        base = {"level": level, "unit": UNIT[level], "group": group, "target": target,
                                "predictor": predictor, "method": method}
                        kw = {"method": method, "n_resamples": n_resamples, "n_permutations": n_permutations,
                              "seed": seed + len(rows), **design.resampling}
                        res = corr_test(sub[predictor], sub[target], **kw)
                        rows.append({**base, "controls": "", "control_kind": "", **res.as_row()})
                        if cells is not None and controlled:
                            rows.append({**base, **_cell_row(sub, predictor, target, cells, kw)})
                        if design.matrix is None or not controlled:
                            continue
                        # Partial r needs spare degrees of freedom; a saturated fit says nothing.
                        if design.spare_dof >= MIN_DOF_PARTIAL:
                            row = corr_test(sub[predictor], sub[target], covariates=design.matrix, **kw).as_row()
                        else:
                            row = {"method": method, "n": len(sub), "n_configs": design.n_configs,
                                   "n_covariates": design.matrix.shape[1], "control_rank": design.rank,
                                   "note": f"partial skipped: control rank {design.rank}, "
                                           f"{design.n_configs} configurations"}
                        rows.append({**base, "controls": ", ".join(design.controls), "control_kind": "factors",
                                     **row})
    return pd.DataFrame(rows)


def _cell_row(sub: pd.DataFrame, predictor: str, target: str, cells: Cells, kw: dict) -> dict:
    """The test within design cells, with leave-one-cell-out r and the share of the association between cells."""
    res = within_cells(sub[predictor], sub[target], cells, **kw).as_row()
    x, y = sub[predictor].to_numpy(float), sub[target].to_numpy(float)
    return {"controls": "cells: " + " x ".join(map(C.label, cells.columns or ["configuration"])),
            "control_kind": "cells", "cells": cells.describe(), "n_cells": cells.n_cells, "cells_r2": cells.r2,
            **res, **leave_one_cell_out(x, y, cells.labels, kw["method"]),
            "between_share": between_share(x, y, cells.labels, kw["method"])}


@dataclass
class _GroupDesign:
    """What every test in one (level, group) shares: resampling units, strata and the control design."""

    resampling: dict
    n_configs: int
    controls: list[str]
    matrix: np.ndarray | None
    rank: int

    @property
    def spare_dof(self) -> int:
        return self.n_configs - self.rank


def _tests_in_group(sub: pd.DataFrame, level: str, group: str, partial: bool) -> _GroupDesign:
    clusters = configuration_codes(sub) if level == "trial" else np.arange(len(sub))
    # In the pooled group configurations are only exchanged with configurations of the same loss type.
    strata = sub[C.LOSS].astype(str).to_numpy() if is_pooled(group) and C.LOSS in sub.columns else None
    controls = control_columns(sub) if partial else []
    matrix = design_matrix(sub, controls)[0] if controls else None
    matrix = matrix if matrix is not None and matrix.shape[1] else None
    return _GroupDesign({"clusters": clusters, "strata": strata}, len(np.unique(clusters)), controls, matrix,
                        design_rank(matrix))


def correlation_matrices(trials: pd.DataFrame, columns: Sequence[str],
                         method: str = "pearson") -> dict[str, pd.DataFrame]:
    """Seed 002 Fig. 5 per loss group: pairwise-complete correlation of the columns that have data."""
    cols = [c for c in columns if c in trials.columns and trials[c].notna().sum() >= 3]
    out: dict[str, pd.DataFrame] = {}
    if len(cols) < 2:
        return out
    for group, sub in loss_groups(trials, cols):
        if len(sub) >= 3:
            mat = sub[cols].astype(float).corr(method=method, min_periods=3)
            out[group] = mat.rename(index=C.label, columns=C.label)
    return out


def within_trial(
    history: pd.DataFrame,
    trial_keys: Iterable[str],
    *,
    xs: Sequence[str] = WITHIN_X,
    y: str = mk.FID,
    min_points: int = 3,
    method: str = "spearman",
) -> pd.DataFrame:
    """Per trial: r across its reports where `y` was measured (FID is sparse), for each x signal."""
    rows: list[dict] = []
    if history.empty or y not in history.columns:
        return pd.DataFrame(rows)
    keys = set(trial_keys)
    hist = history.loc[history[C.TRIAL_KEY].isin(keys) & history[y].notna()]
    for key, sub in hist.groupby(C.TRIAL_KEY, sort=True):
        loss = sub[C.LOSS].iloc[0] if C.LOSS in sub.columns else "all"
        for x in xs:
            if x not in sub.columns:
                continue
            pair = sub[[x, y]].astype(float).dropna()
            if len(pair) < min_points:
                continue
            r = pair[x].corr(pair[y], method=method)
            rows.append({C.TRIAL_KEY: key, C.LOSS: loss, "x": x, "y": y, "method": method,
                         "n_points": len(pair), "r": r})
    return pd.DataFrame(rows)


def summarise_within(per_trial: pd.DataFrame, trials: pd.DataFrame | None = None, *, n_resamples: int = 2000,
                     seed: int = 0) -> pd.DataFrame:
    """Per x signal, measurement setting and loss type: trials, mean r with a CI, share negative.

    With `trials` (the analysed trial table) the CI resamples configurations, keeping their seeds
    together, and per-trial r from different FID measurement settings are summarised apart.
    """
    rows: list[dict] = []
    if per_trial.empty:
        return pd.DataFrame(rows)
    per_trial = per_trial.assign(_config=np.arange(len(per_trial)), _measurement="")
    if trials is not None and C.TRIAL_KEY in trials.columns:
        key = trials[C.TRIAL_KEY]
        per_trial["_config"] = per_trial[C.TRIAL_KEY].map(dict(zip(key, configuration_codes(trials))))
        per_trial["_measurement"] = per_trial[C.TRIAL_KEY].map(dict(zip(key, measurement_labels(trials))))
        if per_trial["_measurement"].nunique() <= 1:
            per_trial["_measurement"] = ""
    for (x, measurement, loss), sub in per_trial.groupby(["x", "_measurement", C.LOSS], sort=True, dropna=False):
        y_name, method = sub["y"].iloc[0], sub["method"].iloc[0]  # before filtering: a group may have no finite r
        sub = sub.loc[np.isfinite(sub["r"].astype(float))]
        r = sub["r"].to_numpy(dtype=float)
        mean, lo, hi = bootstrap_mean(r, clusters=sub["_config"].to_numpy(), n_resamples=n_resamples, seed=seed)
        group = f"{measurement}; loss={loss}" if measurement else f"loss={loss}"
        rows.append({"x": x, "y": y_name, "method": method, "group": group,
                     "n_trials": len(r), "n_configs": int(sub["_config"].nunique()), "mean_r": mean,
                     "ci_low": lo, "ci_high": hi, "median_r": float(np.median(r)) if len(r) else np.nan,
                     "share_negative": float(np.mean(r < 0)) if len(r) else np.nan,
                     "median_points": float(sub["n_points"].median()) if len(sub) else np.nan})
    return pd.DataFrame(rows)


def pooled_view(trials: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Trials with `columns` z-scored within loss type (for pooled plots); unchanged with one loss."""
    if C.LOSS not in trials.columns or trials[C.LOSS].nunique() < 2:
        return trials
    return zscore_within(trials, columns, C.LOSS)

