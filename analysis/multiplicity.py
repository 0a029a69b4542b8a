"""Benjamini-Hochberg q-values: the false discovery rate at which each test of a family would be rejected.

One report runs dozens of tests; q (not p) says how many of the "significant" ones to expect to be flukes.
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def bh_qvalues(p) -> np.ndarray:
    """BH-adjusted p-values of the finite entries of p; NaN (no test) stays NaN and is not counted.

    q_(i) = min over j >= i of p_(j) * m / j for sorted p, capped at 1 (scipy's false_discovery_control).
    """
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return q


def holm_adjust(p) -> np.ndarray:
    """Holm-adjusted p-values (family-wise error) of the finite entries of p; NaN stays NaN and is not counted.

    adj_(i) = max over j <= i of min(1, (m - j + 1) * p_(j)) for ascending p (Holm 1979; statsmodels' 'holm').
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    if len(idx):
        order = idx[np.argsort(p[idx], kind="stable")]
        m = len(order)
        steps = np.minimum(1.0, (m - np.arange(m)) * p[order])
        out[order] = np.maximum.accumulate(steps)
    return out
