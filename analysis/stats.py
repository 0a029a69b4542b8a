"""Correlation with uncertainty: Pearson/Spearman r, bootstrap CI (BCa or percentile), permutation p.

The configuration is the unit (docs/STATISTICS.md). Given `clusters` (a configuration label per row),
the bootstrap resamples whole configurations, permutations move whole configurations, and the t-test
counts configurations, not rows; without `clusters` every row is its own configuration and all three
are the textbook versions. Optional covariates turn r into a partial correlation of the residuals of x
and y on the covariates (Spearman: of their ranks; ranking first would make a linear confounder
nonlinear and leak it into the residuals). Each bootstrap resample re-fits the covariate regression
(the CI includes the adjustment's uncertainty), and the permutation p is Freedman-Lane's. Everything is
vectorised over resamples.

Example:
    >>> import numpy as np
    >>> res = corr_test(np.arange(10.0), np.arange(10.0) ** 2, n_resamples=200, n_permutations=200)
    >>> round(res.r, 3), res.n
    (0.963, 10)
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special, stats

from analysis.resample import Design, block_permutations, bootstrap_weights, jackknife_weights
from analysis.weighted import residual_maker, weighted_corr, weighted_ranks, wls_residuals

METHODS = ("pearson", "spearman")
CI_KINDS = ("bca", "percentile")
TIE_TOLERANCE = 1e-10  # permuted |r| this close to the observed one counts as extreme (float ties)
NO_EXCHANGE = "no two configurations with the same number of seeds can be exchanged: no p_perm"


@dataclass
class CorrResult:
    """One correlation test. `n_configs` counts independent units (clusters; = n without clusters).

    `p_perm` is exact when every arrangement fits the permutation budget. `control_rank` is the rank of
    the covariate design (degrees of freedom), `n_covariates` its column count.
    """

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
    n_configs: int = 0
    control_rank: int = 0

    def as_row(self) -> dict:
        return asdict(self)


def design_rank(covariates: np.ndarray | None) -> int:
    """Rank of a covariate design (no intercept) once an intercept is added, minus that intercept."""
    if covariates is None or covariates.shape[1] == 0 or len(covariates) == 0:
        return 0
    return int(np.linalg.matrix_rank(np.column_stack([np.ones(len(covariates)), covariates]))) - 1


def corr_test(
    x,
    y,
    *,
    method: str = "pearson",
    covariates: np.ndarray | None = None,
    clusters=None,
    strata=None,
    n_resamples: int = 2000,
    n_permutations: int = 2000,
    ci: float = 0.95,
    ci_kind: str = "bca",
    seed: int = 0,
) -> CorrResult:
    """Correlation of x and y (NaN pairs dropped) with bootstrap CI and two-sided permutation p-value.

    Args:
        method: "pearson" or "spearman" (average ranks for ties).
        covariates: (n, k) design *without* intercept; when given, r is the partial correlation (Spearman:
            rank correlation of the residuals).
        clusters: configuration label per row; rows sharing one are resampled and permuted together.
        strata: label per row (constant within a cluster); clusters are only resampled and exchanged
            within their stratum (e.g. loss type in a pooled group).
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
        z = z[ok]
    design = Design.of(int(ok.sum()), _subset(clusters, ok), _subset(strata, ok))
    x, y = x[ok], y[ok]
    n, units = len(x), design.n_clusters
    cols, rank = (0, 0) if z is None else (z.shape[1], design_rank(z))
    z = None if z is None else np.column_stack([np.ones(n), z])
    nan = float("nan")
    empty = CorrResult(method, n, nan, nan, nan, nan, nan, ci_kind, cols, "", units, rank)
    if units - rank < 3:
        empty.note = f"too few points (n={n}, configurations={units}, k={rank})"
        return empty
    r = _observed(x, y, z, method)
    if not np.isfinite(r):
        empty.note = "a variable is constant"
        return empty
    rng = np.random.default_rng(seed)
    lo, hi, used = bootstrap_ci(_statistic(x, y, z, method), design, r, n_resamples=n_resamples, ci=ci,
                                kind=ci_kind, rng=rng)
    p_perm, note = permutation_p(x, y, z, method, design, n_permutations, rng)
    return CorrResult(method, n, r, lo, hi, p_perm, parametric_p(r, units, rank), used, cols, note, units, rank)


def parametric_p(r: float, n: int, k: int = 0) -> float:
    """Two-sided t-test p-value of r with n - 2 - k degrees of freedom (scipy's pearsonr for k=0).

    n counts independent units (configurations) and k the rank of the control design.
    """
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
    design: Design,
    observed: float,
    *,
    n_resamples: int = 2000,
    ci: float = 0.95,
    kind: str = "bca",
    rng: np.random.Generator,
) -> tuple[float, float, str]:
    """CI of `statistic(weights)` over cluster-bootstrap resamples; returns (low, high, kind actually used)."""
    boot = statistic(bootstrap_weights(design, n_resamples, rng))
    boot = boot[np.isfinite(boot)]  # resamples with a constant variable have no r
    if len(boot) < max(10, n_resamples // 10):
        return float("nan"), float("nan"), kind
    alpha = np.array([(1 - ci) / 2, (1 + ci) / 2])
    if kind == "bca":
        levels = _bca_levels(statistic, design, observed, boot, alpha)
        if levels is not None:
            lo, hi = np.quantile(boot, levels)
            return float(lo), float(hi), "bca"
        kind = "percentile"
    lo, hi = np.quantile(boot, alpha)
    return float(lo), float(hi), kind


def t_interval(values, ci: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval of a few independent replicates (a bootstrap of 3 values is meaningless)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    if len(v) == 1:
        return float(v[0]), math.nan, math.nan
    half = stats.t.ppf(0.5 + ci / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def bootstrap_mean(values, *, clusters=None, n_resamples: int = 2000, ci: float = 0.95,
                   seed: int = 0) -> tuple[float, float, float]:
    """Mean and its percentile-bootstrap CI (NaN dropped; whole clusters resampled when given).

    The CI is NaN with fewer than 2 values or fewer than 2 clusters.
    """
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    v = v[ok]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    design = Design.of(len(v), _subset(clusters, ok))
    if len(v) < 2 or design.n_clusters < 2:
        return float(v.mean()), float("nan"), float("nan")
    w = bootstrap_weights(design, n_resamples, np.random.default_rng(seed))
    means = (w @ v) / w.sum(axis=1)
    lo, hi = np.quantile(means, [(1 - ci) / 2, (1 + ci) / 2])
    return float(v.mean()), float(lo), float(hi)


def permutation_p(x: np.ndarray, y: np.ndarray, z: np.ndarray | None, method: str, design: Design,
                  n_permutations: int, rng: np.random.Generator):
    """Two-sided p of |r| over block permutations of y (whole configurations), and a note.

    x, y: (..., n); leading axes are independent data sets sharing one design (a float for 1-D input).
    Spearman correlates ranks, recomputed after every permutation. With a design z (intercept included),
    Freedman-Lane: y's residuals on z are permuted and re-residualised on z before correlating with x's
    residuals. Kennedy's method (no re-residualisation) is anti-conservative with several covariates:
    permuted residuals are not orthogonal to z, which shrinks their |r| and so the null distribution.
    """
    fit = (lambda v: v) if z is None else residual_maker(z)
    order = (lambda v: stats.rankdata(v, axis=-1)) if method == "spearman" else (lambda v: v)
    perms, exact = block_permutations(design, n_permutations, rng)
    if len(perms) < 2:
        nan = np.full(np.shape(x)[:-1], np.nan)
        return (float(nan) if nan.ndim == 0 else nan), NO_EXCHANGE
    ex, ey = fit(x), fit(y)
    xs = order(ex)
    observed = weighted_corr(xs, order(fit(ey)))
    r_perm = weighted_corr(xs[..., None, :], order(fit(ey[..., perms])))  # (..., P)
    hits = np.sum(np.abs(r_perm) >= np.abs(observed)[..., None] - TIE_TOLERANCE, axis=-1)
    p = hits / len(perms) if exact else (hits + 1) / (len(perms) + 1)
    return (float(p) if np.ndim(p) == 0 else p), ""


# ----------------------------------------------------------------------
def _subset(labels, ok: np.ndarray):
    return None if labels is None else np.asarray(labels, dtype=object)[ok]


def _observed(x: np.ndarray, y: np.ndarray, z: np.ndarray | None, method: str) -> float:
    """r on the data as they are; partial: residuals on z by exact OLS first (then ranked for Spearman)."""
    if z is not None:
        fit = residual_maker(z)
        x, y = fit(x), fit(y)
    if method == "spearman":
        x, y = stats.rankdata(x), stats.rankdata(y)
    return float(weighted_corr(x, y))


def _statistic(x: np.ndarray, y: np.ndarray, z: np.ndarray | None, method: str) -> Callable[[np.ndarray], np.ndarray]:
    """r for each row of a (B, n) weight matrix: covariate fits and ranks are recomputed per resample."""

    def stat(w: np.ndarray) -> np.ndarray:
        xs, ys = np.broadcast_to(x, w.shape), np.broadcast_to(y, w.shape)
        if z is not None:
            both = wls_residuals(np.stack([xs, ys], axis=1), z, w)  # (B, 2, n)
            xs, ys = both[:, 0], both[:, 1]
        if method == "spearman":
            xs, ys = weighted_ranks(xs, w), weighted_ranks(ys, w)
        return weighted_corr(xs, ys, w)

    return stat


def _bca_levels(stat, design: Design, observed: float, boot: np.ndarray, alpha: np.ndarray) -> np.ndarray | None:
    """BCa-adjusted quantile levels (Efron 1987), jackknife over clusters; None when undefined."""
    frac = (np.sum(boot < observed) + 0.5 * np.sum(boot == observed)) / len(boot)
    if not 0.0 < frac < 1.0:
        return None
    z0 = special.ndtri(frac)
    jack = stat(jackknife_weights(design))
    if not np.all(np.isfinite(jack)):
        return None
    d = jack.mean() - jack
    denom = 6.0 * (np.sum(d * d) ** 1.5)
    accel = np.sum(d**3) / denom if denom > 0 else 0.0
    za = special.ndtri(alpha)
    levels = special.ndtr(z0 + (z0 + za) / (1.0 - accel * (z0 + za)))
    return levels if np.all(np.isfinite(levels)) else None
