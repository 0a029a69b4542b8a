"""Correlation with uncertainty: Pearson/Spearman r, bootstrap CI (BCa or percentile), permutation p.

Everything is vectorised over resamples (a (B, n) index matrix), so 2,000 resamples of a few
hundred trials take milliseconds. Optional covariates turn r into a partial correlation: x and y
are residualised on the covariate design matrix, and each bootstrap resample re-fits that
regression so the CI includes the uncertainty of the adjustment.

Example:
    >>> import numpy as np
    >>> res = corr_test(np.arange(10.0), np.arange(10.0) ** 2, n_resamples=200, n_permutations=200)
    >>> round(res.r, 3), res.n
    (0.963, 10)
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special, stats

METHODS = ("pearson", "spearman")
CI_KINDS = ("bca", "percentile")


@dataclass
class CorrResult:
    """One correlation test. `p_perm` is exact when n! <= the permutation budget."""

    method: str
    n: int
    r: float
    ci_low: float
    ci_high: float
    p_perm: float
    p_param: float
    ci_kind: str
    n_covariates: int = 0
    note: str = ""

    def as_row(self) -> dict:
        return asdict(self)


def corr_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of two (B, n) arrays (NaN where a row is constant)."""
    xm = x - x.mean(axis=-1, keepdims=True)
    ym = y - y.mean(axis=-1, keepdims=True)
    num = (xm * ym).sum(axis=-1)
    den = np.sqrt((xm * xm).sum(axis=-1) * (ym * ym).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r = np.where(den > 1e-300, r, np.nan)
    return np.clip(r, -1.0, 1.0)


def residualise(values: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Least-squares residuals of values (..., n) on design (..., n, k), batched over leading axes.

    Normal equations with a tiny ridge instead of a batched pinv: ~20x faster for thousands of
    resamples, and a dummy column that a resample left all-zero cannot make the system singular.
    """
    zt = np.swapaxes(design, -1, -2)
    gram = zt @ design
    ridge = 1e-9 * (np.trace(gram, axis1=-2, axis2=-1)[..., None, None] + 1.0)
    gram = gram + ridge * np.eye(design.shape[-1])
    coef = np.linalg.solve(gram, zt @ values[..., None])
    return values - (design @ coef)[..., 0]


def corr_test(
    x,
    y,
    *,
    method: str = "pearson",
    covariates: np.ndarray | None = None,
    n_resamples: int = 2000,
    n_permutations: int = 2000,
    ci: float = 0.95,
    ci_kind: str = "bca",
    seed: int = 0,
) -> CorrResult:
    """Correlation of x and y (NaN pairs dropped) with bootstrap CI and two-sided permutation p-value.

    Args:
        method: "pearson" or "spearman" (average ranks for ties).
        covariates: (n, k) design *without* intercept; when given, r is the partial correlation.
        ci_kind: "bca" (falls back to percentile when its constants are undefined) or "percentile".
        seed: seeds both the bootstrap and the permutations, so results are reproducible.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}; allowed: {', '.join(METHODS)}")
    if ci_kind not in CI_KINDS:
        raise ValueError(f"ci_kind={ci_kind!r}; allowed: {', '.join(CI_KINDS)}")
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    z = None if covariates is None else np.asarray(covariates, dtype=float).reshape(len(x), -1)
    ok = np.isfinite(x) & np.isfinite(y)
    if z is not None:
        ok &= np.isfinite(z).all(axis=1)
        z = np.column_stack([np.ones(len(x)), z])[ok]
    x, y = x[ok], y[ok]
    n, k = len(x), 0 if z is None else z.shape[1] - 1
    nan = float("nan")
    if n - k < 3:
        return CorrResult(method, n, nan, nan, nan, nan, nan, ci_kind, k, note=f"too few points (n={n}, k={k})")
    statistic = _statistic(x, y, z, method)
    r = float(statistic(np.arange(n)[None, :])[0])
    if not np.isfinite(r):
        return CorrResult(method, n, nan, nan, nan, nan, nan, ci_kind, k, note="a variable is constant")
    rng = np.random.default_rng(seed)
    lo, hi, used = bootstrap_ci(statistic, n, r, n_resamples=n_resamples, ci=ci, kind=ci_kind, rng=rng)
    p_perm = _permutation_p(x, y, z, method, r, n_permutations, rng)
    return CorrResult(method, n, r, lo, hi, p_perm, parametric_p(r, n, k), used, k)


def parametric_p(r: float, n: int, k: int = 0) -> float:
    """Two-sided t-test p-value of r with n - 2 - k degrees of freedom (scipy's pearsonr for k=0)."""
    dof = n - 2 - k
    if dof < 1 or not np.isfinite(r):
        return float("nan")
    if abs(r) >= 1.0:
        return 0.0
    t = r * math.sqrt(dof / (1.0 - r * r))
    return float(2.0 * stats.t.sf(abs(t), dof))


def fisher_ci(r: float, n: int, k: int = 0, ci: float = 0.95) -> tuple[float, float]:
    """Fisher z-transform CI; usable for tiny n where the bootstrap is meaningless."""
    if n - 3 - k < 1 or not np.isfinite(r) or abs(r) >= 1.0:
        return float("nan"), float("nan")
    half = stats.norm.ppf(0.5 + ci / 2) / math.sqrt(n - 3 - k)
    zr = math.atanh(r)
    return math.tanh(zr - half), math.tanh(zr + half)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    observed: float,
    *,
    n_resamples: int = 2000,
    ci: float = 0.95,
    kind: str = "bca",
    rng: np.random.Generator,
) -> tuple[float, float, str]:
    """CI of `statistic(idx)` over row resamples; returns (low, high, kind actually used)."""
    idx = rng.integers(0, n, size=(n_resamples, n))
    boot = statistic(idx)
    boot = boot[np.isfinite(boot)]  # resamples with a constant variable have no r
    if len(boot) < max(10, n_resamples // 10):
        return float("nan"), float("nan"), kind
    alpha = np.array([(1 - ci) / 2, (1 + ci) / 2])
    if kind == "bca":
        levels = _bca_levels(statistic, n, observed, boot, alpha)
        if levels is not None:
            lo, hi = np.quantile(boot, levels)
            return float(lo), float(hi), "bca"
        kind = "percentile"
    lo, hi = np.quantile(boot, alpha)
    return float(lo), float(hi), kind


def bootstrap_mean(values, *, n_resamples: int = 2000, ci: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean and its percentile-bootstrap CI (NaN dropped); CI is NaN with fewer than 2 values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    if len(v) < 2:
        return float(v.mean()), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_resamples, len(v)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - ci) / 2, (1 + ci) / 2])
    return float(v.mean()), float(lo), float(hi)


# ----------------------------------------------------------------------
def _statistic(x: np.ndarray, y: np.ndarray, z: np.ndarray | None, method: str) -> Callable[[np.ndarray], np.ndarray]:
    """r for each row of an index matrix (B, m): ranks and covariate fits are recomputed per resample."""

    def stat(idx: np.ndarray) -> np.ndarray:
        xs, ys = x[idx], y[idx]
        if method == "spearman":
            xs, ys = stats.rankdata(xs, axis=-1), stats.rankdata(ys, axis=-1)
        if z is not None:
            both = residualise(np.stack([xs, ys], axis=-2), z[idx][..., None, :, :])  # (B, 2, n)
            xs, ys = both[..., 0, :], both[..., 1, :]
        return corr_rows(xs, ys)

    return stat


def _bca_levels(stat, n: int, observed: float, boot: np.ndarray, alpha: np.ndarray) -> np.ndarray | None:
    """BCa-adjusted quantile levels (Efron 1987); None when bias or acceleration is undefined."""
    frac = (np.sum(boot < observed) + 0.5 * np.sum(boot == observed)) / len(boot)
    if not 0.0 < frac < 1.0:
        return None
    z0 = special.ndtri(frac)
    jack_idx = np.tile(np.arange(n), (n, 1))[~np.eye(n, dtype=bool)].reshape(n, n - 1)  # leave-one-out rows
    jack = stat(jack_idx)
    if not np.all(np.isfinite(jack)):
        return None
    d = jack.mean() - jack
    denom = 6.0 * (np.sum(d * d) ** 1.5)
    accel = np.sum(d**3) / denom if denom > 0 else 0.0
    za = special.ndtri(alpha)
    levels = special.ndtr(z0 + (z0 + za) / (1.0 - accel * (z0 + za)))
    return levels if np.all(np.isfinite(levels)) else None


def _permutation_p(x, y, z, method: str, observed: float, n_permutations: int, rng: np.random.Generator) -> float:
    """Two-sided p of |r| under shuffled pairing; exact enumeration when n! fits the budget.

    With covariates, y's residuals are shuffled against x's residuals (ter Braak's residual permutation).
    """
    n = len(x)
    xs, ys = (stats.rankdata(x), stats.rankdata(y)) if method == "spearman" else (x, y)
    if z is not None:
        xs, ys = residualise(xs, z), residualise(ys, z)
    exact = math.factorial(n) <= n_permutations
    if exact:
        perms = np.array(list(itertools.permutations(range(n))))
    else:
        perms = np.argsort(rng.random((n_permutations, n)), axis=1)
    r_perm = corr_rows(np.broadcast_to(xs, perms.shape), ys[perms])
    hits = np.sum(np.abs(r_perm) >= abs(observed) - 1e-12)  # tolerance: float ties count as extreme
    return float(hits / len(perms)) if exact else float((hits + 1) / (len(perms) + 1))
