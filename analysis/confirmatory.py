"""A plan with named cells, carried out: the primary within-cell test, the plan's secondary tests with
q-values over them, early-signal rank fidelity and the collapse rate per cell.

Cells come from the plan (`cells: [optimizer, activation, ttur]`): the `cell/<factor>` columns a designed
study records, else the config column the factor names (a named factor: the first field it sets that
varies). Collapsed runs stay in the primary test; the collapse rule is the plan's.

Rank fidelity (issue #21, section 3): does a configuration's early ranking predict its final one?
For each early signal, the Spearman r between configuration means of the signal and of the final log
FID (95% percentile bootstrap over configurations); then out of sample, rotating over seeds: rank the
configurations by the signal averaged over the other seeds (its direction taken from those seeds too),
keep the better half, and score with the held-out seed's final log FID: regret (best kept minus best)
and whether the best configuration was kept, against keeping a random half (exact) and against the best
single-factor rule chosen with hindsight (descriptive, outside the q-value family).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from analysis import columns as C
from analysis.collapse import clopper_pearson, collapse_flags
from analysis.confirm import CONFIRMED, WithinCellTest, confirmatory_test
from analysis.contrasts import contrast_family, interaction, level_labels
from analysis.groups import configuration_codes
from analysis.multiplicity import bh_qvalues, holm_adjust
from analysis.plan import AnalysisPlan
from trainers import metric_keys as mk

CONFIG = "_config"
CELL = "_cell"
# (label, column, share of training): the signals a scheduler could rank by before the end.
EARLY_SIGNALS = (("log FID at 25%", C.LOG_FID, 0.25), ("log FID at 50%", C.LOG_FID, 0.50),
                 ("D-loss mean over the first 10%", mk.D_LOSS_MEAN, 0.10),
                 ("D-loss mean over the first 25%", mk.D_LOSS_MEAN, 0.25),
                 ("D(x) - D(G(z)) at 25%", C.D_GAP, 0.25))


@dataclass
class Confirmatory:
    """Everything the report and findings print for a plan with named cells."""

    cells: list[str]  # the plan's factor names
    columns: list[str]  # the columns they were read from
    trials: int
    configurations: int
    expected_trials: int  # from study.json's recorded design (0 = unknown)
    primary: WithinCellTest | None
    secondary: pd.DataFrame = field(default_factory=pd.DataFrame)  # test, r, ci, p, q, verdict
    rank_fidelity: pd.DataFrame = field(default_factory=pd.DataFrame)
    # A plan with `contrast:` (analysis/contrasts.py): the primary family, secondary families on other outcomes
    # (column family = "primary" | "secondary"), and the level x within-factor interaction per level.
    contrasts: pd.DataFrame = field(default_factory=pd.DataFrame)
    interactions: pd.DataFrame = field(default_factory=pd.DataFrame)
    collapse: pd.DataFrame = field(default_factory=pd.DataFrame)
    note: str = ""

    @property
    def complete(self) -> bool:
        return self.expected_trials > 0 and self.trials >= self.expected_trials


def secondary_verdict(test_verdict: str, q: float, alpha: float) -> str:
    """A secondary test's verdict within the plan's q family: a test's own "confirmed" (p <= alpha, interval on the
    predicted side) stands only when its Benjamini-Hochberg q is <= alpha too."""
    significant = math.isfinite(q) and q <= alpha
    if not test_verdict:
        return "significant" if significant else "not significant"
    if test_verdict == CONFIRMED and not significant:
        return f"inconclusive (p <= {alpha:g} alone; q > {alpha:g} over the plan's secondary tests)"
    return test_verdict


def cell_columns(df: pd.DataFrame, names: Sequence[str], named: Mapping[str, Sequence[str]]) -> list[str | None]:
    """The column of each plan cell factor: `cell/<name>`, else the config field, else a named factor's field."""
    out: list[str | None] = []
    for name in names:
        if C.CELL_PREFIX + name in df.columns:
            out.append(C.CELL_PREFIX + name)
        elif name in C.CONFIG_FIELDS and C.cfg(name) in df.columns:
            out.append(C.cfg(name))
        else:
            fields = named.get(name, ())
            out.append(next((C.cfg(f) for f in fields if C.cfg(f) in df.columns and df[C.cfg(f)].nunique() > 1),
                            None))
    return out


def run_confirmatory(trials: pd.DataFrame, history: pd.DataFrame, plan: AnalysisPlan, *,
                     named: Mapping[str, Sequence[str]], expected_trials: int = 0, n_resamples: int = 2000,
                     n_permutations: int = 10_000, seed: int = 0,
                     levels: Mapping[str, Mapping[str, Mapping]] | None = None) -> Confirmatory | None:
    """The plan's confirmatory analysis on the analysed trials (None when the plan names no cells and declares
    no contrast). `levels`: each named factor's levels and the fields they set (primary.factor_levels)."""
    if not plan.contrast and (not plan.cells or plan.controls != "cells"):
        return None
    if not plan.cells or plan.controls != "cells":
        plan = dataclasses.replace(plan, cells=(), controls="none")
    cols = cell_columns(trials, plan.cells, named)
    missing = [n for n, c in zip(plan.cells, cols) if c is None]
    t = trials.copy()
    t[CONFIG] = configuration_codes(t)
    if missing:
        return Confirmatory(list(plan.cells), [], len(t), t[CONFIG].nunique(), expected_trials, None,
                            note=f"the results have no column for the plan's cells {', '.join(missing)}")
    t[CELL] = t[cols].astype(str).agg(" / ".join, axis=1) if cols else "all"
    flags, _ = collapse_flags(t, plan.collapse)
    t[C.COLLAPSED] = pd.to_numeric(flags, errors="coerce")
    kw = {"sign": plan.sign, "alpha": plan.alpha, "smallest_effect": plan.smallest_effect,
          "n_permutations": n_permutations, "seed": seed}
    # A contrast plan's primary is the contrast family; its correlations are secondary, so their TOST/power use
    # no smallest effect (the plan's is in the outcome's units, not |r|).
    primary = None if plan.contrast else _test(t, plan.predictor, plan.outcome, **kw)
    if plan.contrast:
        kw["smallest_effect"] = 0.0
    out = Confirmatory(list(plan.cells), [c for c in cols if c], len(t), int(t[CONFIG].nunique()), expected_trials,
                       primary)
    rows = []
    if plan.contrast:
        out.contrasts, out.interactions, note = _contrasts(t, plan, named, levels or {})
        out.note = note or out.note
    for entry in plan.secondary:
        if entry["kind"] == "contrast":
            fam = out.contrasts.loc[out.contrasts["outcome"] == entry["outcome"]] if not out.contrasts.empty else None
            # One p for the family's global null (no level differs): the smallest Holm-adjusted p.
            family_p = float(np.nanmin(holm_adjust(fam["p"]))) if fam is not None and fam["p"].notna().any() \
                else math.nan
            rows.append({"test": f"{C.label(entry['outcome'])}: any {plan.contrast['factor']} level differs from "
                                 f"{plan.contrast['reference']!r} ({0 if fam is None else len(fam)} contrasts; p = "
                                 "their smallest Holm-adjusted p)",
                         "r": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": family_p,
                         "n": 0 if fam is None else len(fam), "verdict": ""})
        elif entry["kind"] == "correlation":
            res = _test(t, entry["predictor"], entry["outcome"], **kw)
            if res is not None:
                rows.append({"test": f"{C.label(entry['outcome'])} vs {C.label(entry['predictor'])}, within cells",
                             "r": res.r, "ci_low": res.ci_low, "ci_high": res.ci_high, "p": res.p_perm,
                             "n": res.n, "verdict": res.verdict})
        elif entry["kind"] == "rank_fidelity":
            out.rank_fidelity = rank_fidelity(t, history, n_resamples=n_resamples, seed=seed)
            for _, r in out.rank_fidelity.iterrows():
                rows.append({"test": f"rank fidelity: {r['signal']} vs final log FID (Spearman)", "r": r["spearman"],
                             "ci_low": r["ci_low"], "ci_high": r["ci_high"], "p": r["p"], "n": r["n"],
                             "verdict": ""})
        elif entry["kind"] == "collapse_by_cell":
            out.collapse, p = collapse_by_cell(t, n_permutations=n_permutations, seed=seed)
            rows.append({"test": "collapse rate differs between cells (configurations, permutation chi-square)",
                         "r": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": p,
                         "n": int(t[CONFIG].nunique()), "verdict": ""})
    if rows:
        sec = pd.DataFrame(rows)
        sec["q"] = bh_qvalues(sec["p"].to_numpy(float))
        sec["verdict"] = [secondary_verdict(v, q, plan.alpha) for v, q in zip(sec["verdict"], sec["q"])]
        out.secondary = sec
    return out


def factor_column(df: pd.DataFrame, name: str, named: Mapping[str, Sequence[str]],
                  levels: Mapping[str, Mapping[str, Mapping]]) -> pd.Series | None:
    """Each trial's level of a plan factor: `cell/<name>`, the config field, or a named factor's level label
    rebuilt from the fields its levels set (study.json `space_resolved.factors`)."""
    if C.CELL_PREFIX + name in df.columns:
        return df[C.CELL_PREFIX + name].astype(object)
    if name in C.CONFIG_FIELDS and C.cfg(name) in df.columns:
        return df[C.cfg(name)].astype(object)
    if name in levels:
        return level_labels(df, levels[name])
    col = cell_columns(df, [name], named)[0]
    return None if col is None else df[col].astype(object)


def _contrasts(t: pd.DataFrame, plan: AnalysisPlan, named: Mapping[str, Sequence[str]],
               levels: Mapping[str, Mapping[str, Mapping]]) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    c = plan.contrast
    level = factor_column(t, c["factor"], named, levels)
    within_cols = cell_columns(t, list(c["within"]), named)
    if level is None or any(w is None for w in within_cols):
        return pd.DataFrame(), pd.DataFrame(), f"the results have no column for the contrast's factor {c['factor']}"
    within = [w for w in within_cols if w]
    kw = {"level": level, "reference": c["reference"], "within": within, "direction": c["direction"],
          "alpha": plan.alpha, "correction": c["correction"]}
    fams = [contrast_family(t, outcome=plan.outcome, smallest_effect=plan.smallest_effect, **kw).assign(
        family="primary")]
    for entry in plan.secondary:
        if entry["kind"] == "contrast" and entry["outcome"] in t.columns:
            # Secondary outcomes: two-sided (the plan predicts a direction for its primary outcome only), BH.
            fam = contrast_family(t, outcome=entry["outcome"], **{**kw, "direction": "two-sided",
                                                                 "correction": "bh"})
            fams.append(fam.assign(family="secondary"))
    fams = [f for f in fams if not f.empty and "diff" in f.columns]
    out = pd.concat(fams, ignore_index=True) if fams else pd.DataFrame()
    inter = pd.DataFrame()
    if len(within) == 1 and t[within[0]].nunique() == 2:
        first, second = sorted(t[within[0]].dropna().unique(), key=str)
        inter = interaction(t, outcome=plan.outcome, level=level, reference=c["reference"], within=within[0],
                            a=second, b=first)
        if not inter.empty:  # the table names both levels: which minus which
            inter = inter.assign(at=str(second), minus_at=str(first))
    return out, inter, ""


def _test(t: pd.DataFrame, x: str, y: str, **kw) -> WithinCellTest | None:
    if x not in t.columns or y not in t.columns:
        return None
    sub = t.dropna(subset=[x, y])
    if sub[CONFIG].nunique() < 4:
        return None
    configs = sub.groupby(CONFIG).agg(**{x: (x, "mean"), y: (y, "mean"), CELL: (CELL, "first")}).reset_index()
    if configs[CELL].nunique() < 1 or len(configs) - configs[CELL].nunique() - 2 < 1:
        return None
    return confirmatory_test(configs, sub, x=x, y=y, cell=CELL, config=CONFIG, **kw)


# ---------------------------------------------------------------------- rank fidelity
def signal_at(trials: pd.DataFrame, history: pd.DataFrame, column: str, fraction: float) -> pd.Series:
    """Per trial (trials' index), `column` at the last report at or before `fraction` of its iterations
    that measured it (FID: an evaluation report)."""
    if history.empty or C.TRIAL_KEY not in history.columns:
        return pd.Series(np.nan, index=trials.index)
    h = history.copy()
    if column == C.LOG_FID:
        h[column] = np.log(pd.to_numeric(h.get(mk.FID), errors="coerce").where(lambda v: v > 0))
    elif column == C.D_GAP:
        h[column] = pd.to_numeric(h.get(mk.D_X), errors="coerce") - pd.to_numeric(h.get(mk.D_G_Z), errors="coerce")
    if column not in h.columns:
        return pd.Series(np.nan, index=trials.index)
    iters = pd.to_numeric(trials[C.cfg("iterations")], errors="coerce") if C.cfg("iterations") in trials else None
    limit = (iters * fraction) if iters is not None else pd.Series(np.inf, index=trials.index)
    h = h.dropna(subset=[column])
    h[mk.ITERATION] = pd.to_numeric(h[mk.ITERATION], errors="coerce")
    by_trial = {k: g.sort_values(mk.ITERATION) for k, g in h.groupby(C.TRIAL_KEY)}
    out = []
    for idx, key in trials[C.TRIAL_KEY].items():
        g = by_trial.get(key)
        if g is None:
            out.append(np.nan)
            continue
        early = g.loc[g[mk.ITERATION] <= limit.loc[idx] + 1e-9, column]
        out.append(float(early.iloc[-1]) if len(early) else np.nan)
    return pd.Series(out, index=trials.index)


def rank_fidelity(t: pd.DataFrame, history: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0
                  ) -> pd.DataFrame:
    """One row per early signal: Spearman with final log FID (CI over configurations) and out-of-sample
    keep-the-better-half regret and P(best kept) against a random half and the best factor rule."""
    rows = []
    final = C.LOG_FID
    seeds = sorted(t[C.SEED].dropna().unique()) if C.SEED in t.columns else []
    rng = np.random.default_rng(seed)
    for label, column, fraction in EARLY_SIGNALS:
        s = t.assign(_signal=signal_at(t, history, column, fraction)).dropna(subset=["_signal", final])
        if s[CONFIG].nunique() < 4:
            continue
        conf = s.groupby(CONFIG).agg(signal=("_signal", "mean"), final=(final, "mean"))
        rho = stats.spearmanr(conf.signal, conf.final).statistic
        lo, hi = _spearman_bootstrap(conf.signal.to_numpy(float), conf.final.to_numpy(float), n_resamples, rng)
        p = stats.spearmanr(conf.signal, conf.final).pvalue
        oos = _out_of_sample(s, seeds)
        rows.append({"signal": label, "n": len(conf), "spearman": float(rho), "ci_low": float(lo),
                     "ci_high": float(hi), "p": float(p), **oos})
    return pd.DataFrame(rows)


def _spearman_bootstrap(x: np.ndarray, y: np.ndarray, n_resamples: int, rng: np.random.Generator
                        ) -> tuple[float, float]:
    """95% percentile interval of Spearman's r over configurations resampled with replacement (vectorised)."""
    idx = rng.integers(0, len(x), size=(n_resamples, len(x)))
    rx, ry = stats.rankdata(x[idx], axis=1), stats.rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    ok = den > 0
    if not ok.any():
        return math.nan, math.nan
    r = (rx * ry).sum(axis=1)[ok] / den[ok]
    lo, hi = np.percentile(r, [2.5, 97.5])
    return float(lo), float(hi)


def _out_of_sample(s: pd.DataFrame, seeds: Sequence) -> dict:
    """Rank by the other seeds, keep the better half, score with the held-out seed (rotated over seeds)."""
    regrets, kept_best, random_regrets, rule_regrets = [], [], [], {}
    for held in seeds:
        train, test = s[s[C.SEED] != held], s[s[C.SEED] == held]
        sig = train.groupby(CONFIG)["_signal"].mean()
        fin_train = train.groupby(CONFIG)[C.LOG_FID].mean()
        out = test.groupby(CONFIG)[C.LOG_FID].mean()
        common = sig.index.intersection(out.index)
        if len(common) < 4:
            continue
        sig, out, fin_train = sig[common], out[common], fin_train[common]
        # The signal's direction comes from the ranking seeds: keep the half it predicts to be better.
        direction = np.sign(stats.spearmanr(sig, fin_train).statistic) or 1.0
        k = len(common) // 2
        kept = (sig * direction).sort_values().index[:k]
        best = out.idxmin()
        regrets.append(float(out[kept].min() - out.min()))
        kept_best.append(best in kept)
        random_regrets.append(_random_half_regret(out.to_numpy(), k))
        levels = s.drop_duplicates(CONFIG).set_index(CONFIG)[CELL].reindex(common)
        for part in sorted({p for v in levels.astype(str) for p in v.split(" / ")}):
            chosen = levels.index[levels.astype(str).str.split(" / ").map(lambda v, p=part: p in v)]
            if len(chosen):
                rule_regrets.setdefault(part, []).append(float(out[chosen].min() - out.min()))
    if not regrets:
        return {"regret": np.nan, "p_best_kept": np.nan, "random_regret": np.nan, "random_p_best": np.nan,
                "best_rule": "", "best_rule_regret": np.nan}
    k_share = (len(s[CONFIG].unique()) // 2) / max(len(s[CONFIG].unique()), 1)
    best_rule = min(rule_regrets, key=lambda r: np.mean(rule_regrets[r])) if rule_regrets else ""
    return {"regret": float(np.mean(regrets)), "p_best_kept": float(np.mean(kept_best)),
            "random_regret": float(np.mean(random_regrets)), "random_p_best": float(k_share),
            "best_rule": best_rule, "best_rule_regret": float(np.mean(rule_regrets[best_rule])) if best_rule else np.nan}


def _random_half_regret(values: np.ndarray, k: int) -> float:
    """Expected (min over a random k-subset) - min, exactly: P(the subset's min is the i-th smallest)."""
    v = np.sort(values)
    n = len(v)
    total = math.comb(n, k)
    expected = sum(v[i] * math.comb(n - i - 1, k - 1) / total for i in range(n - k + 1))
    return float(expected - v[0])


# ---------------------------------------------------------------------- collapse by cell
def collapse_by_cell(t: pd.DataFrame, *, n_permutations: int = 10_000, seed: int = 0) -> tuple[pd.DataFrame, float]:
    """Per cell: configurations with a collapsed seed / configurations (exact Clopper-Pearson), collapsed runs /
    runs; and the permutation p of a chi-square statistic for 'the rate differs between cells' (cells permuted
    over configurations)."""
    judged = t.dropna(subset=[C.COLLAPSED])
    if judged.empty:
        return pd.DataFrame(), math.nan
    conf = judged.groupby(CONFIG).agg(cell=(CELL, "first"), any_collapsed=(C.COLLAPSED, "max"),
                                      runs=(C.COLLAPSED, "size"), collapsed=(C.COLLAPSED, "sum"))
    rows = []
    for cell, g in conf.groupby("cell"):
        k, n = int(g.any_collapsed.sum()), len(g)
        lo, hi = clopper_pearson(k, n)
        rows.append({"cell": cell, "configurations": n, "with_collapse": k, "rate": k / n, "ci_low": lo, "ci_high": hi,
                     "runs": int(g.runs.sum()), "collapsed_runs": int(g.collapsed.sum())})
    table = pd.DataFrame(rows)
    y = conf.any_collapsed.to_numpy(float)
    codes = pd.factorize(conf.cell)[0]
    if y.min() == y.max():
        return table, 1.0

    n_c = np.bincount(codes).astype(float)
    e = n_c * y.mean()

    def chi2(k_c: np.ndarray) -> np.ndarray:  # k_c: (..., cells) collapsed configurations per cell
        return np.sum((k_c - e) ** 2 / e + ((n_c - k_c) - (n_c - e)) ** 2 / (n_c - e), axis=-1)

    obs = chi2(np.bincount(codes, weights=y))
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.tile(codes, (n_permutations, 1)), axis=1)
    k_perm = np.zeros((n_permutations, len(n_c)))
    np.add.at(k_perm, (np.repeat(np.arange(n_permutations), len(y)), perms.ravel()), np.tile(y, n_permutations))
    count = int(np.sum(chi2(k_perm) >= obs - 1e-12))
    return table, float((count + 1) / (n_permutations + 1))
