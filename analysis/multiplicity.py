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
