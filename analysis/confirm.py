"""The confirmatory within-cell test a plan with named cells asks for, built to keep its size when cells
differ in noise and to say what a null result means.

Units are configurations (seed means); cells are the plan's named factors, fixed before the data. The
within-cell r is the Pearson r of the cell-demeaned predictor and outcome (cell fixed effects).

- p: a permutation of the predictor *within* each cell (configurations trade places only with others in
  their cell), exact when all arrangements fit the budget, else Monte Carlo with p = (b + 1) / (B + 1).
  Unlike Freedman-Lane residual permutation it never moves a noisy cell's residuals into a quiet cell.
- Interval: Fisher z with n - K - 2 degrees of freedom (K cells) on the within-cell r.
- Per cell: r in every cell; the within-cell r with each cell left out; the count of cells whose r has
  the plan's sign.
- A null must mean something: TOST against the plan's smallest effect of interest |r| = delta (two
  one-sided Fisher-z tests), and the design's achieved power for delta, computed from the study's own
  seed noise: the observable r is delta x sqrt(reliability of x x reliability of y), with each
  reliability that of a seed mean *within cells* (one-way ANOVA of configurations, cell means removed).
- Verdict: "confirmed" (the plan's sign, p <= alpha and the interval excludes 0 on that side);
  "not confirmed, equivalent to no effect of interest" (TOST p <= alpha); else "inconclusive".
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

CONFIRMED = "confirmed"
EQUIVALENT = "not confirmed, equivalent to no effect of interest"
INCONCLUSIVE = "inconclusive"
MAX_EXACT = 20_000  # arrangements enumerated exactly up to this many; Monte Carlo above


@dataclass
class WithinCellTest:
    """The confirmatory test's numbers (one row of the report) plus the per-cell detail."""

    r: float
    n: int  # configurations
    k: int  # cells
    df: int  # n - k - 2 (Fisher z)
    ci_low: float
    ci_high: float
    p_perm: float
    perm_kind: str  # "exact" | "monte carlo (B)"
    sign_consistent: int  # cells whose r has the plan's sign
    cells_with_r: int
    smallest_effect: float
    tost_p: float
    power: float
    reliability_x: float
    reliability_y: float
    icc_y: float
    verdict: str
    why: str
    per_cell: list[dict] = field(default_factory=list)  # {cell, n, r, loco_r}

    def as_row(self) -> dict:
        row = asdict(self)
        row.pop("per_cell")
        return row


def within_r(x: np.ndarray, y: np.ndarray, codes: np.ndarray) -> float:
    """Pearson r of x and y after removing each cell's mean from both."""
    xd, yd = _demean(x, codes), _demean(y, codes)
    den = math.sqrt(float(np.sum(xd * xd) * np.sum(yd * yd)))
    return float(np.sum(xd * yd) / den) if den > 0 else math.nan


def within_cell_permutation_p(x: np.ndarray, y: np.ndarray, codes: np.ndarray, *, sign: int,
                              n_permutations: int = 10_000, seed: int = 0) -> tuple[float, str]:
    """p of the within-cell r when x is permuted only inside its cell (one-sided for sign -1/+1, else two-sided)."""
    observed = within_r(x, y, codes)
    groups = [np.flatnonzero(codes == c) for c in np.unique(codes)]
    arrangements = math.prod(math.factorial(len(g)) for g in groups)
    xd, yd = _demean(x, codes), _demean(y, codes)
    norm = math.sqrt(float(np.sum(xd * xd) * np.sum(yd * yd)))
    if not math.isfinite(observed) or norm == 0:
        return math.nan, "not defined"
    if arrangements <= MAX_EXACT:
        perms = _all_arrangements(groups, len(x))
        kind = "exact"
    else:
        rng = np.random.default_rng(seed)
        perms = np.tile(np.arange(len(x)), (n_permutations, 1))
        for g in groups:
            perms[:, g] = g[rng.permuted(np.tile(np.arange(len(g)), (n_permutations, 1)), axis=1)]
        kind = f"monte carlo ({n_permutations})"
    # Permuting x inside a cell leaves its cell mean, so the demeaned x is permuted too.
    rs = (xd[perms] @ yd) / norm
    tol = 1e-12
    if sign < 0:
        extreme = np.sum(rs <= observed + tol)
    elif sign > 0:
        extreme = np.sum(rs >= observed - tol)
    else:
        extreme = np.sum(np.abs(rs) >= abs(observed) - tol)
    if kind == "exact":
        return float(extreme / len(rs)), kind
    return float((extreme + 1) / (len(rs) + 1)), kind


def fisher_interval(r: float, df: int, ci: float = 0.95) -> tuple[float, float]:
    """Fisher-z interval with standard error 1 / sqrt(df) (df = n - K - 2 for a within-cell r)."""
    if not math.isfinite(r) or df < 1 or abs(r) >= 1:
        return math.nan, math.nan
    z, half = math.atanh(r), stats.norm.ppf(0.5 + ci / 2) / math.sqrt(df)
    return math.tanh(z - half), math.tanh(z + half)


def tost_p(r: float, df: int, delta: float) -> float:
    """Two one-sided tests of |rho| >= delta (Fisher z): small p = the association is smaller than delta."""
    if not math.isfinite(r) or df < 1 or not 0 < delta < 1 or abs(r) >= 1:
        return math.nan
    z, d, se = math.atanh(r), math.atanh(delta), 1 / math.sqrt(df)
    return float(max(stats.norm.sf((z + d) / se), stats.norm.cdf((z - d) / se)))


def power(delta: float, df: int, *, alpha: float, sign: int, attenuation: float = 1.0) -> float:
    """Power of the within-cell test to detect a true |r| = delta when the observed r is attenuated by
    measurement noise (attenuation = sqrt(reliability_x x reliability_y)); Fisher-z normal approximation."""
    if df < 1 or not 0 < delta < 1 or not math.isfinite(attenuation):
        return math.nan
    mu = math.atanh(delta * max(min(attenuation, 1.0), 0.0)) * math.sqrt(df)
    if sign == 0:
        c = stats.norm.ppf(1 - alpha / 2)
        return float(stats.norm.sf(c - mu) + stats.norm.cdf(-c - mu))
    return float(stats.norm.sf(stats.norm.ppf(1 - alpha) - mu))


def within_cell_reliability(values: np.ndarray, configs: np.ndarray, cells: np.ndarray) -> tuple[float, float]:
    """(ICC(1) of one seed, reliability of a configuration's seed mean), both within cells.

    One-way ANOVA of configurations on the values with the cell means removed: the between-configuration
    mean square counts configurations beyond the cells (n_configs - n_cells df). NaN when undefined.
    """
    df = pd.DataFrame({"v": values, "c": configs, "cell": cells}).dropna()
    if df.empty:
        return math.nan, math.nan
    g = df.groupby("c")
    k = g.size()
    if (k < 2).all():
        return math.nan, math.nan
    means = g["v"].mean()
    cell_of = g["cell"].first()
    cell_mean = means.groupby(cell_of).transform("mean")
    df_b = len(means) - cell_of.nunique()
    df_w = int((k - 1).sum())
    if df_b < 1 or df_w < 1:
        return math.nan, math.nan
    k0 = float(k.mean())
    msb = float((k * (means - cell_mean) ** 2).sum() / df_b)
    msw = float(((df["v"] - df["c"].map(means)) ** 2).sum() / df_w)
    if msb <= 0:
        return math.nan, math.nan
    icc = (msb - msw) / (msb + (k0 - 1) * msw)
    return float(icc), float(max((msb - msw) / msb, 0.0))


def confirmatory_test(configs: pd.DataFrame, trials: pd.DataFrame, *, x: str, y: str, cell: str, config: str,
                      sign: int, alpha: float, smallest_effect: float, n_permutations: int = 10_000,
                      seed: int = 0) -> WithinCellTest:
    """The plan's within-cell test on configuration means `configs` (columns x, y, cell, config); `trials`
    (the same columns, one row per seed) gives the within-cell reliabilities for the power."""
    c = configs.dropna(subset=[x, y]).reset_index(drop=True)
    codes = pd.factorize(c[cell].astype(str))[0]
    xv, yv = c[x].to_numpy(float), c[y].to_numpy(float)
    n, k = len(c), len(np.unique(codes))
    df = n - k - 2
    r = within_r(xv, yv, codes)
    p, kind = within_cell_permutation_p(xv, yv, codes, sign=sign, n_permutations=n_permutations, seed=seed)
    lo, hi = fisher_interval(r, df)
    per_cell, consistent, with_r = [], 0, 0
    for label in pd.unique(c[cell].astype(str)):
        inside = (c[cell].astype(str) == label).to_numpy()
        r_cell = _plain_r(xv[inside], yv[inside])
        keep = ~inside
        loco = within_r(xv[keep], yv[keep], pd.factorize(c.loc[keep, cell].astype(str))[0])
        per_cell.append({"cell": label, "n": int(inside.sum()), "r": r_cell, "loco_r": loco})
        if math.isfinite(r_cell):
            with_r += 1
            consistent += (np.sign(r_cell) == sign) if sign else 0
    t = trials.dropna(subset=[x, y])
    icc_y, rel_y = within_cell_reliability(t[y].to_numpy(float), t[config].to_numpy(), t[cell].astype(str).to_numpy())
    _, rel_x = within_cell_reliability(t[x].to_numpy(float), t[config].to_numpy(), t[cell].astype(str).to_numpy())
    attenuation = math.sqrt(rel_x * rel_y) if math.isfinite(rel_x) and math.isfinite(rel_y) else math.nan
    pw = power(smallest_effect, df, alpha=alpha, sign=sign, attenuation=attenuation) if smallest_effect else math.nan
    eq = tost_p(r, df, smallest_effect) if smallest_effect else math.nan
    verdict, why = _verdict(r, lo, hi, p, eq, sign=sign, alpha=alpha, delta=smallest_effect)
    return WithinCellTest(r, n, k, df, lo, hi, p, kind, int(consistent), with_r, smallest_effect, eq, pw, rel_x,
                          rel_y, icc_y, verdict, why, per_cell)


def _verdict(r: float, lo: float, hi: float, p: float, eq: float, *, sign: int, alpha: float, delta: float
             ) -> tuple[str, str]:
    if not math.isfinite(r) or not math.isfinite(p):
        return INCONCLUSIVE, "the within-cell r is not defined"
    side = (hi < 0) if sign < 0 else (lo > 0) if sign > 0 else (hi < 0 or lo > 0)
    if p <= alpha and side and (sign == 0 or np.sign(r) == sign):
        return CONFIRMED, f"within-cell permutation p = {p:.3g} <= {alpha:g} and the interval excludes 0 on the plan's side"
    if p <= alpha:
        return INCONCLUSIVE, (f"within-cell permutation p = {p:.3g} <= {alpha:g}, but the Fisher interval "
                              f"[{lo:.2f}, {hi:.2f}] does not exclude 0 on the plan's side")
    if math.isfinite(eq) and eq <= alpha:
        return EQUIVALENT, f"TOST p = {eq:.3g} <= {alpha:g}: |r| < {delta:g} (the smallest effect of interest)"
    if not delta:
        return INCONCLUSIVE, "not significant, and the plan states no smallest effect of interest to test equivalence"
    opposite = " (the interval lies on the other side of 0)" if sign and ((lo > 0) if sign < 0 else (hi < 0)) else ""
    return INCONCLUSIVE, (f"neither significant (p = {p:.3g}) nor equivalent to |r| < {delta:g} "
                          f"(TOST p = {eq:.3g}){opposite}")


def _demean(v: np.ndarray, codes: np.ndarray) -> np.ndarray:
    means = np.bincount(codes, weights=v) / np.bincount(codes)
    return v - means[codes]


def _plain_r(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def _all_arrangements(groups: Sequence[np.ndarray], n: int) -> np.ndarray:
    import itertools

    rows = [np.arange(n)]
    for g in groups:
        new = []
        for base in rows:
            for perm in itertools.permutations(g):
                b = base.copy()
                b[g] = perm
                new.append(b)
        rows = new
    return np.array(rows)
