"""The two-part view of FID: how often a configuration collapses, and how good it is when it does not.

Raw FID of a study is dominated by a few collapsed seeds (FID in the hundreds beside single digits), so
one number mixes two questions. Here a declared rule marks collapsed runs, the collapse rate per
configuration is its own outcome (exact Clopper-Pearson interval per configuration; a cluster bootstrap
over configurations for rates pooled over several), and log FID is then analysed among runs that did
not collapse (analysis.pipeline). Rules (analysis.plan.COLLAPSE_RULES):

- `fid_ratio` (default, k = 10): FID above k x the median configuration's FID, where a configuration's
  FID is the median over its seeds (robust to its own collapsed seeds);
- `diverged`: the trainer's divergence detector stopped the run (status `diverged`);
- `none`: nothing counts as collapsed.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis import columns as C
from analysis.groups import configuration_codes, config_labels, varied
from analysis.stats import bootstrap_mean
from trainers import metric_keys as mk

DEFAULT_RULE = {"rule": "fid_ratio", "k": 10.0}
COLLAPSED = "_collapsed"


def describe_rule(rule: Mapping) -> str:
    if rule.get("rule") == "fid_ratio":
        return f"FID above {rule.get('k', 10):g} x the median configuration's FID (each configuration's seed median)"
    if rule.get("rule") == "diverged":
        return "stopped by the divergence detector (status diverged)"
    return "no rule: nothing counts as collapsed"


def collapse_flags(trials: pd.DataFrame, rule: Mapping = DEFAULT_RULE) -> tuple[pd.Series, float]:
    """(True per collapsed run, the FID threshold or NaN); NaN flag where the rule cannot judge a run."""
    flags = pd.Series(False, index=trials.index, dtype=object)
    kind = rule.get("rule", "fid_ratio")
    if kind == "diverged":
        return trials[mk.STATUS].astype(str).eq(mk.STATUS_DIVERGED).astype(object), float("nan")
    if kind == "none" or mk.FID not in trials.columns:
        return flags if kind == "none" else pd.Series(np.nan, index=trials.index, dtype=object), float("nan")
    fid = pd.to_numeric(trials[mk.FID], errors="coerce")
    codes = pd.Series(configuration_codes(trials), index=trials.index)
    per_config = fid.groupby(codes).median().dropna()
    if per_config.empty:
        return pd.Series(np.nan, index=trials.index, dtype=object), float("nan")
    threshold = float(rule.get("k", 10.0)) * float(per_config.median())
    flags = (fid > threshold).astype(object)
    flags[fid.isna()] = np.nan
    return flags, threshold


def collapse_table(trials: pd.DataFrame, flags: pd.Series, factors: Sequence[str]) -> pd.DataFrame:
    """One row per configuration: runs, collapsed, rate with its exact 95% interval."""
    judged = trials.loc[flags.notna()].assign(**{COLLAPSED: flags[flags.notna()].astype(bool)})
    if judged.empty:
        return pd.DataFrame()
    judged = judged.assign(_config=configuration_codes(judged))
    names = config_labels(judged, varied(judged, factors))
    rows = []
    for code, g in judged.groupby("_config", sort=True):
        k, n = int(g[COLLAPSED].sum()), len(g)
        lo, hi = clopper_pearson(k, n)
        rows.append({"configuration": names.loc[g.index[0]], "runs": n, "collapsed": k, "rate": k / n,
                     "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def collapse_by_factor(trials: pd.DataFrame, flags: pd.Series, factors: Sequence[str], *, n_resamples: int = 2000,
                       seed: int = 0) -> pd.DataFrame:
    """Collapse rate per factor level (and overall): configurations with a collapsed seed, exact interval over
    configurations (the configuration is the unit; its seeds are not independent evidence)."""
    judged = trials.loc[flags.notna()].assign(**{COLLAPSED: flags[flags.notna()].astype(float)})
    if judged.empty:
        return pd.DataFrame()
    judged = judged.assign(_config=configuration_codes(judged))
    rows = [_rate_row("all", "all", judged, n_resamples, seed)]
    for f in varied(judged, factors):
        for level, g in judged.groupby(f, sort=True):
            rows.append(_rate_row(C.label(f), str(level), g, n_resamples, seed + len(rows)))
    return pd.DataFrame(rows)


def clopper_pearson(k: int, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes in n trials."""
    if n == 0:
        return float("nan"), float("nan")
    a = (1 - ci) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def _rate_row(factor: str, level: str, g: pd.DataFrame, n_resamples: int, seed: int) -> dict:
    """The configuration-level rate (configurations with a collapsed seed, exact Clopper-Pearson interval over
    configurations: 0 of 8 is [0, 0.37], never [0, 0]) beside the share of runs that collapsed."""
    v = g[COLLAPSED].to_numpy(float)
    per_config = g.groupby("_config")[COLLAPSED].max()
    k, n = int(per_config.sum()), len(per_config)
    lo, hi = clopper_pearson(k, n)
    return {"factor": factor, "level": level, "runs": len(v), "collapsed": int(v.sum()),
            "run_share": float(v.mean()), "configurations": n, "configurations_collapsed": k, "rate": k / n,
            "ci_low": lo, "ci_high": hi, "interval": "exact over configurations (Clopper-Pearson)"}
