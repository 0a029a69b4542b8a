"""Design cells: is an association of FID with a training signal there *within* the study's design cells?

Factors such as the optimizer move both the D loss and FID, so an across-configuration r can come from
the differences between factor cells alone. A cell is one combination of the study's categorical factors.
Controlling for cells (cell fixed effects: one dummy per cell) leaves only the variation inside cells.

Which cells, at configuration level: the full crossing of the categorical factors when it leaves at least
`MIN_CELL_DOF` configurations beyond the cells; in a full factorial with one configuration per
combination it is saturated (nothing is left within a cell), so the cells are then the crossing of the
factors that explain the predictor: factors are added in order of the predictor's variance they explain
(their own cell means) until the crossing explains `EXPLAINED` of it, while the residual degrees of
freedom allow. At trial level the cells are the configurations themselves (seeds within a configuration).
The rule never looks at the outcome, so it cannot be tuned towards a result.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis import columns as C
from analysis.groups import config_labels, configuration_codes, configuration_key, varied
from analysis.partial import MAX_LEVELS_AS_DUMMIES
from analysis.stats import CorrResult, corr_test

MIN_CELL_DOF = 4  # configurations beyond the cells: the partial r then has >= 3 residual degrees of freedom
EXPLAINED = 0.9  # share of the predictor's between-configuration variance the cells should account for


@dataclass
class Cells:
    """Cell label per row, the factor columns crossed, the rule that chose them and the R^2 of the predictor."""

    labels: np.ndarray
    columns: list[str]
    rule: str
    r2: float

    @property
    def n_cells(self) -> int:
        return len(np.unique(self.labels))

    def dummies(self) -> np.ndarray:
        """(n, cells - 1) one-hot design without intercept (corr_test adds the intercept)."""
        return pd.get_dummies(pd.Series(self.labels, dtype=str), drop_first=True, dtype=float).to_numpy()

    def describe(self) -> str:
        if not self.columns:
            return f"{self.n_cells} configurations (seeds within a configuration)"
        names = " x ".join(C.label(c) for c in self.columns)
        explained = f"; they explain {self.r2:.0%} of the predictor" if np.isfinite(self.r2) else ""
        return f"{self.n_cells} cells ({names}; {self.rule}{explained})"


def categorical_factors(df: pd.DataFrame, factors: Sequence[str]) -> list[str]:
    """Factors that vary in df with few enough levels to form cells (continuous ones cannot)."""
    return [f for f in factors if f in df.columns and 1 < df[f].nunique(dropna=False) <= MAX_LEVELS_AS_DUMMIES]


def design_cells(units: pd.DataFrame, factors: Sequence[str], predictor: str, *, level: str = "config",
                 min_dof: int = MIN_CELL_DOF) -> Cells | None:
    """The cells for a test of `predictor` over `units` (configuration means, or trials at trial level).

    None when no categorical factor varies, or when even one factor would leave too few degrees of freedom.
    """
    x = pd.to_numeric(units[predictor], errors="coerce").to_numpy(float) if predictor in units else None
    if x is None or not np.isfinite(x).any():
        return None
    if level == "trial":
        codes = configuration_codes(units)
        named = varied(units, factors)  # the declared factors name a configuration more briefly than every column
        labels = config_labels(units, named or varied(units, configuration_key(units))).to_numpy(dtype=object)
        if len(np.unique(labels)) != len(np.unique(codes)):  # configurations told apart by measurement alone
            labels = codes.astype(str).astype(object)
        if len(units) - len(np.unique(codes)) < min_dof:
            return None
        return Cells(np.asarray(labels, dtype=object), [], "configurations: seeds within a configuration",
                     _r2(x, labels))
    cats = categorical_factors(units, factors)
    if not cats:
        return None
    full = _labels(units, cats)
    if len(units) - len(np.unique(full)) >= min_dof:
        return Cells(full, cats, "full crossing of the categorical factors", _r2(x, full))
    order = sorted(cats, key=lambda f: -_r2(x, _labels(units, [f])))
    chosen: list[str] = []
    for f in order:
        trial = _labels(units, [*chosen, f])
        if len(units) - len(np.unique(trial)) < min_dof:
            break
        chosen.append(f)
        if _r2(x, trial) >= EXPLAINED:
            break
    if not chosen:
        return None
    labels = _labels(units, chosen)
    return Cells(labels, chosen, "the full crossing is saturated: the factors that explain the predictor, added "
                 f"in order of variance explained until {EXPLAINED:.0%}", _r2(x, labels))


def within_cells(x, y, cells: Cells, **kw) -> CorrResult:
    """`corr_test` with cell fixed effects. Cells without factor columns are configurations (trial level):
    under H0 seeds are exchangeable within their configuration, so they are permuted and resampled there."""
    if not cells.columns:
        kw.update(clusters=np.arange(len(cells.labels)), strata=cells.labels)
    return corr_test(x, y, covariates=cells.dummies(), **kw)


def leave_one_cell_out(x, y, labels, method: str = "pearson") -> dict:
    """Plain r with each cell left out in turn: the smallest and largest, and the cell whose removal gives each."""
    x, y, labels = np.asarray(x, float), np.asarray(y, float), np.asarray(labels, dtype=object)
    out = {"loco_min": np.nan, "loco_min_cell": "", "loco_max": np.nan, "loco_max_cell": ""}
    rs = {}
    for cell in pd.unique(labels):
        keep = (labels != cell) & np.isfinite(x) & np.isfinite(y)
        if keep.sum() >= 3 and np.ptp(x[keep]) > 0 and np.ptp(y[keep]) > 0:
            rs[str(cell)] = _r(x[keep], y[keep], method)
    if rs:
        lo, hi = min(rs, key=rs.get), max(rs, key=rs.get)
        out.update(loco_min=rs[lo], loco_min_cell=lo, loco_max=rs[hi], loco_max_cell=hi)
    return out


def between_share(x, y, labels, method: str = "pearson") -> float:
    """Share of the x-y cross-product that lies between cell means: 1 = all between cells, 0 = all within.

    Outside [0, 1] when the within-cell association has the opposite sign of the between-cell one.
    """
    x, y, labels = np.asarray(x, float), np.asarray(y, float), np.asarray(labels, dtype=object)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, labels = x[ok], y[ok], labels[ok]
    if len(x) < 3:
        return float("nan")
    if method == "spearman":
        x, y = stats.rankdata(x), stats.rankdata(y)
    total = np.sum((x - x.mean()) * (y - y.mean()))
    if total == 0:
        return float("nan")
    codes = _codes(labels)
    within = np.sum((x - _cell_means(x, codes)) * (y - _cell_means(y, codes)))
    return float((total - within) / total)


def _labels(df: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    return config_labels(df, columns).to_numpy(dtype=object)


def _codes(labels) -> np.ndarray:
    return np.unique(np.asarray(labels, dtype=str), return_inverse=True)[1].ravel()


def _cell_means(v: np.ndarray, codes: np.ndarray) -> np.ndarray:
    return (np.bincount(codes, weights=v) / np.bincount(codes))[codes]


def _r2(x: np.ndarray, labels) -> float:
    """Share of x's variance explained by its cell means."""
    ok = np.isfinite(x)
    x, codes = x[ok], _codes(np.asarray(labels, dtype=object)[ok])
    total = np.sum((x - x.mean()) ** 2) if len(x) else 0.0
    if total == 0:
        return float("nan")
    return float(1 - np.sum((x - _cell_means(x, codes)) ** 2) / total)


def _r(x: np.ndarray, y: np.ndarray, method: str) -> float:
    if method == "spearman":
        x, y = stats.rankdata(x), stats.rankdata(y)
    return float(np.corrcoef(x, y)[0, 1])
