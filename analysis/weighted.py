"""Weighted correlation, ranks and least squares, batched over rows of a (B, n) weight matrix.

A bootstrap resample that holds row i w_i times is the same data as row weights w: Pearson r on the
stacked resample equals the weighted r, the OLS fit equals weighted least squares, and the average
ranks of the stacked values are the weighted mid-ranks below. So one code path serves the ordinary
bootstrap (weights = counts), the cluster bootstrap (weights = counts of a row's configuration), the
jackknife (a zero weight) and the observed statistic (all ones).
"""
from __future__ import annotations

import numpy as np

TINY = 1e-10  # relative spread below which a variable counts as constant (float noise, not data)


def weighted_corr(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Pearson r along the last axis with weights (broadcast); NaN where a variable is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    w = np.ones(np.broadcast_shapes(x.shape, y.shape)) if w is None else np.asarray(w, dtype=float)
    sw = w.sum(axis=-1, keepdims=True)
    xm = x - (w * x).sum(axis=-1, keepdims=True) / sw
    ym = y - (w * y).sum(axis=-1, keepdims=True) / sw
    sxx, syy = (w * xm * xm).sum(axis=-1), (w * ym * ym).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (w * xm * ym).sum(axis=-1) / np.sqrt(sxx * syy)
    # A resample of one configuration's copies leaves rounding-level spread; that is "constant".
    floor_x = (TINY * _spread(x)) ** 2 * sw[..., 0]
    floor_y = (TINY * _spread(y)) ** 2 * sw[..., 0]
    r = np.where((sxx > floor_x) & (syy > floor_y), r, np.nan)
    return np.clip(r, -1.0, 1.0)


def weighted_ranks(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B, n) average ranks of values ((n,) or (B, n)) in each weighted resample (scipy's 'average' at w = 1).

    A value held w_i times, tied with others, occupies the positions after everything smaller:
    its mid-rank is (weight below its tie group) + (weight of the tie group + 1) / 2.
    """
    v = np.broadcast_to(values, w.shape)
    order = np.argsort(v, axis=-1, kind="stable")
    sv, sw = np.take_along_axis(v, order, axis=-1), np.take_along_axis(w, order, axis=-1)
    n = v.shape[-1]
    first = np.ones(sv.shape, dtype=bool)
    first[..., 1:] = sv[..., 1:] != sv[..., :-1]
    last = np.ones(sv.shape, dtype=bool)
    last[..., :-1] = first[..., 1:]
    pos = np.arange(n)
    start = np.maximum.accumulate(np.where(first, pos, 0), axis=-1)
    end = np.flip(np.minimum.accumulate(np.flip(np.where(last, pos, n - 1), axis=-1), axis=-1), axis=-1)
    cum = np.cumsum(sw, axis=-1)
    below = np.take_along_axis(cum, start, axis=-1) - np.take_along_axis(sw, start, axis=-1)
    group = np.take_along_axis(cum, end, axis=-1) - below
    ranks = np.empty(sv.shape)
    np.put_along_axis(ranks, order, below + (group + 1.0) / 2.0, axis=-1)
    return ranks


def wls_residuals(values: np.ndarray, design: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Residuals of values (B, m, n) on a fixed design (n, k) by weighted least squares per row of w (B, n).

    Normal equations with a tiny ridge instead of a batched pinv: ~20x faster for thousands of
    resamples, and a dummy column whose configurations a resample left out cannot make it singular.
    """
    zw = design[None, :, :] * w[:, :, None]  # (B, n, k)
    gram = np.einsum("bnk,nl->bkl", zw, design)
    ridge = 1e-9 * (np.trace(gram, axis1=-2, axis2=-1)[:, None, None] + 1.0)
    gram = gram + ridge * np.eye(design.shape[1])
    rhs = np.einsum("bnk,bmn->bmk", zw, values)
    coef = np.linalg.solve(gram[:, None], rhs[..., None])[..., 0]  # (B, m, k)
    return values - np.einsum("nk,bmk->bmn", design, coef)


def residual_maker(design: np.ndarray):
    """v (..., n) -> residuals of v on the design by exact OLS (pinv: collinear columns are fine)."""
    pinv = np.linalg.pinv(design)  # (k, n)

    def residuals(v: np.ndarray) -> np.ndarray:
        return v - (v @ pinv.T) @ design.T

    return residuals


def _spread(v: np.ndarray) -> np.ndarray:
    return np.max(np.abs(v - np.mean(v, axis=-1, keepdims=True)), axis=-1) + 1e-300
