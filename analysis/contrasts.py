"""A plan's contrast family: each level of a factor minus a reference level, matched within other factors.

The question of a lever study ("does DiffAugment lower FID against the baseline, at each training-set size?") is
a set of contrasts between configurations, not a correlation. The configurations are the levels; their seeds are
the only repeats, and a seed is a block: the same seed draws the same data subset and the same initial weights for
every level, so the model is

    y[level, within, seed] = mu[level, within] + block[within, seed] + e,     e ~ N(0, sigma^2)

fitted by least squares separately in each within-cell (each cell keeps its own noise: pooling a noisy cell with a
quiet one understates the noisy cell's error and inflates the family's error rate). A contrast mu[level, w] -
mu[reference, w] is then a paired difference over the seeds whose standard error uses sigma pooled over the cell's
configurations (df = the cell's trials - rank), which is what makes 3 seeds per configuration usable. Beside it, the paired t over that contrast's seeds alone
(df = seeds - 1) is the check that does not pool: a pooled verdict the unpooled check contradicts deserves a look.
The family's p-values (one-sided in the predicted direction when the plan states one) are Holm- or BH-adjusted;
TOST against the plan's smallest effect says whether a null is a null; power is the pooled test's at that effect
and the family's first Holm step (alpha / m), so it is a lower bound.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis import columns as C
from analysis.multiplicity import bh_qvalues, holm_adjust

LEVEL = "_level"
SEED = C.cfg("seed")


def level_labels(trials: pd.DataFrame, levels: Mapping[str, Mapping[str, Any]]) -> pd.Series:
    """Each trial's level of a named factor, from the config fields each level sets (study.json
    `space_resolved.factors`). The most specific level whose fields all match wins (`baseline: {}` matches every
    trial; `diffaug_ema` beats `diffaug` when both of its fields match); NaN when none or a tie."""
    out = []
    for _, row in trials.iterrows():
        best, size, tie = None, -1, False
        for name, fields in levels.items():
            if all(C.cfg(f) in row.index and _same(row[C.cfg(f)], v) for f, v in fields.items()):
                if len(fields) > size:
                    best, size, tie = name, len(fields), False
                elif len(fields) == size:
                    tie = True
        out.append(np.nan if best is None or tie else best)
    return pd.Series(out, index=trials.index, dtype=object)


def contrast_family(trials: pd.DataFrame, *, outcome: str, level: pd.Series, reference: Any,
                    within: Sequence[str] = (), direction: str = "two-sided", alpha: float = 0.05,
                    smallest_effect: float = 0.0, correction: str = "holm") -> pd.DataFrame:
    """One row per (level != reference, within-cell): diff, 95% CI, p, q, TOST p, power, unpooled check, verdict.

    `level`: each trial's level of the contrasted factor (aligned with `trials`); `within`: columns the contrast is
    matched on; seeds (`config/seed`) are blocks inside each within-cell."""
    t = trials.assign(**{LEVEL: level.astype(object)})
    t = t.loc[t[LEVEL].notna() & pd.to_numeric(t.get(outcome), errors="coerce").notna()].copy()
    if t.empty or SEED not in t.columns:
        return pd.DataFrame()
    t["_y"] = pd.to_numeric(t[outcome], errors="coerce").astype(float)
    t["_w"] = t[list(within)].astype(str).agg(" / ".join, axis=1) if within else "all"
    sign = {"negative": -1, "positive": 1}.get(direction, 0)
    rows, sigmas = [], {}
    for w, sub in t.groupby("_w", sort=True):
        if reference not in set(sub[LEVEL]):
            continue
        # One model per within-cell: its noise is its own (a 500-image run may be far noisier than a full one,
        # and pooling across them would understate the noisier cell's error).
        cfgs = sorted(set(sub[LEVEL]), key=str)
        seeds = sorted(set(sub[SEED]))
        X = np.column_stack([(sub[LEVEL] == c).to_numpy(float) for c in cfgs]
                            + [(sub[SEED] == s).to_numpy(float) for s in seeds[1:]])
        y = sub["_y"].to_numpy(float)
        beta, _, rank, _ = np.linalg.lstsq(X, y, rcond=None)
        df = len(y) - rank
        sigma2 = float(((y - X @ beta) ** 2).sum() / df) if df > 0 else math.nan
        cov = sigma2 * np.linalg.pinv(X.T @ X)
        sigmas[w] = math.sqrt(sigma2) if math.isfinite(sigma2) else math.nan
        for lv in cfgs:
            if lv == reference:
                continue
            c = np.zeros(X.shape[1])
            c[cfgs.index(lv)], c[cfgs.index(reference)] = 1.0, -1.0
            est, se = float(c @ beta), float(math.sqrt(max(c @ cov @ c, 0.0)))
            rows.append({"within": w, "level": lv, "reference": reference, "outcome": outcome, "df": int(df),
                         **_pooled(est, se, df, sign, alpha, smallest_effect), **_unpooled(sub, lv, reference)})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    p = out["p"].to_numpy(float)
    out["q"] = holm_adjust(p) if correction == "holm" else bh_qvalues(p)
    m = int(np.isfinite(p).sum())
    out["power"] = [_power(smallest_effect, se, df, alpha / max(m, 1), sign) for se, df in zip(out["se"], out["df"])]
    out["verdict"] = [_verdict(r, sign, alpha, smallest_effect) for _, r in out.iterrows()]
    out.attrs.update(sigma=sigmas, m=m, correction=correction, trials=len(t),
                     configurations=int(t.groupby(["_w", LEVEL]).ngroups))
    return out


def interaction(trials: pd.DataFrame, *, outcome: str, level: pd.Series, reference: Any, within: str,
                a: Any, b: Any) -> pd.DataFrame:
    """Difference in differences per level: (level - reference where within == a) - (the same where within == b),
    from the same block models; for log FID a negative value means the level helps more at `a`."""
    fam = contrast_family(trials, outcome=outcome, level=level, reference=reference, within=[within])
    if fam.empty:
        return fam
    a, b = fam.loc[fam["within"] == str(a)].set_index("level"), fam.loc[fam["within"] == str(b)].set_index("level")
    rows = []
    for lv in a.index.intersection(b.index):
        est = float(a.at[lv, "diff"] - b.at[lv, "diff"])
        sa, sb = float(a.at[lv, "se"]), float(b.at[lv, "se"])
        se = math.hypot(sa, sb)  # the two cells share no trials: independent estimates
        # Welch-Satterthwaite df for the two cells' separately estimated variances.
        df = se ** 4 / (sa ** 4 / a.at[lv, "df"] + sb ** 4 / b.at[lv, "df"]) if se > 0 else math.nan
        tq = stats.t.ppf(0.975, df)
        rows.append({"level": lv, "diff_in_diff": est, "ci_low": est - tq * se, "ci_high": est + tq * se,
                     "p": float(2 * stats.t.sf(abs(est / se), df)) if se > 0 else math.nan})
    return pd.DataFrame(rows)


def _pooled(est: float, se: float, df: float, sign: int, alpha: float, delta: float) -> dict:
    if not (se > 0 and df > 0):
        return {"diff": est, "se": se, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan, "tost_p": math.nan}
    tq = stats.t.ppf(0.975, df)
    tstat = est / se
    p = float(stats.t.sf(sign * tstat, df)) if sign else float(2 * stats.t.sf(abs(tstat), df))
    tost = float(max(stats.t.sf((est + delta) / se, df), stats.t.cdf((est - delta) / se, df))) if delta else math.nan
    return {"diff": est, "se": se, "ci_low": est - tq * se, "ci_high": est + tq * se, "p": p, "tost_p": tost}


def _unpooled(sub: pd.DataFrame, lv: Any, reference: Any) -> dict:
    """Paired t over the seeds both configurations have (no pooling): the check beside the model."""
    a = sub.loc[sub[LEVEL] == reference].groupby(SEED)["_y"].mean()
    b = sub.loc[sub[LEVEL] == lv].groupby(SEED)["_y"].mean()
    d = (b - a).dropna().to_numpy(float)
    if len(d) < 2 or d.std(ddof=1) == 0:
        return {"seeds": len(d), "paired_diff": float(d.mean()) if len(d) else math.nan, "paired_p": math.nan}
    res = stats.ttest_1samp(d, 0.0)
    return {"seeds": len(d), "paired_diff": float(d.mean()), "paired_p": float(res.pvalue)}


def _power(delta: float, se: float, df: float, level: float, sign: int) -> float:
    """Power of the pooled t test to detect a true difference of size `delta` in the predicted direction."""
    if not (delta and se > 0 and df > 0):
        return math.nan
    nc = delta / se
    if sign:
        return float(stats.nct.sf(stats.t.ppf(1 - level, df), df, nc))
    crit = stats.t.ppf(1 - level / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def _verdict(r: pd.Series, sign: int, alpha: float, delta: float) -> str:
    if not math.isfinite(r["p"]):
        return "not testable"
    if r["q"] <= alpha and (sign == 0 or np.sign(r["diff"]) == sign):
        return {-1: "lower than the reference", 1: "higher than the reference"}.get(
            int(np.sign(r["diff"])), "differs from the reference")
    if sign and (r["ci_low"] > 0 if sign < 0 else r["ci_high"] < 0):
        return "against the prediction (95% CI excludes 0 the other way)"
    if delta and math.isfinite(r["tost_p"]) and r["tost_p"] <= alpha:
        return f"equivalent within +-{delta:g}"
    return "inconclusive"


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, bool) or isinstance(a, (bool, np.bool_)):
        return bool(a) == bool(b) if a is not None and not (isinstance(a, float) and math.isnan(a)) else False
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return str(a) == str(b)
