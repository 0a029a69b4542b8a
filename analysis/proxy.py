"""The early proxy with its uncertainty: does ranking configurations early in training keep the best one?

A study that stops early keeps the `keep` share of configurations whose D-loss mean over the first
`fraction` of training is highest (seed 002's direction) and drops the rest. On the full data that gives
one kept set, one regret (best outcome among the kept minus best overall) and one yes/no "was the best
configuration kept". With three seeds per configuration and a best configuration that may beat the
runner-up by less than one seed's spread, that single answer can be luck, so here:

- a **bootstrap that resamples seeds within each configuration** (every configuration keeps its seed
  count; a trial's proxy and outcome travel together) recomputes the configuration means of the proxy and
  of the outcome, re-picks the kept set and the best configuration, and gives the mean regret with a
  95% percentile interval and P(best configuration kept). The configurations themselves are fixed: the
  question is about this study's configurations, not a population of them;
- the **random baseline** keeps k of n configurations at random: P(best kept) = k/n exactly, and its
  expected regret is exact (the closed form of the mean over all C(n, k) subsets), per bootstrap draw;
- **single-factor rules** ("keep the configurations at one level of one factor") under the same draws.
  The best rule is picked with hindsight, so it is an optimistic baseline; when the proxy keeps exactly
  a rule's set on the full data, `same_as_factor_rule` names it: the proxy then says nothing beyond that
  factor.

Lower outcome is better (FID, log FID). Everything is exploratory (docs/STATISTICS.md, "Early proxy").
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import gammaln

from analysis import columns as C
from analysis.groups import config_labels, configuration_codes, measurement_labels, varied
from analysis.resample import Design, bootstrap_weights
from analysis.stats import CorrResult, corr_test
from trainers import metric_keys as mk

LOG_FID = "log_fid"  # outcome name: log of mk.FID, computed per trial when trials has no such column
PROXY = "early_d_loss"
N_SEEDS_COL = "n_seeds"
CI = 0.95
DIGITS = 3  # FID and log FID regrets alike: the margins at stake are hundredths


@dataclass(frozen=True)
class FactorRule:
    """'Keep the configurations at `factor` = `level`' under the proxy's bootstrap draws.

    `size` may differ from the proxy's k (the regrets are then not like for like). `p_same_as_proxy` is
    the share of draws in which the proxy keeps exactly this rule's set.
    """

    name: str
    factor: str
    level: object
    size: int
    regret: float  # on the full data
    best_kept: bool  # on the full data
    regret_mean: float
    regret_low: float
    regret_high: float
    p_best_kept: float
    p_same_as_proxy: float
    same_as_proxy: bool  # the proxy's kept set on the full data is exactly this rule's


@dataclass(frozen=True)
class ProxyResult:
    """The early proxy at one fraction of training, for one outcome (lower is better)."""

    fraction: float
    iteration: int  # last report at or before the fraction (the proxy's cut-off)
    outcome: str
    higher_is_better_proxy: bool
    n_configs: int
    n_trials: int
    k: int  # configurations kept
    corr: CorrResult  # Spearman, proxy vs outcome, configuration means
    regret: float  # full data: best outcome among the kept minus the best overall
    best_kept: bool
    best_config: str
    runner_up: str
    margin: float  # runner-up's outcome minus the best's (configuration means)
    seed_sd: float  # mean over configurations of the within-configuration SD of the outcome (ddof 1)
    seed_sd_top: float  # pooled within-configuration SD of the best and the runner-up (the spread at stake)
    regret_mean: float  # bootstrap, seeds resampled within configurations
    regret_low: float
    regret_high: float
    p_best_kept: float
    p_best_stable: float  # share of draws whose best configuration is the full data's best
    random_regret: float  # exact mean over all k-subsets, full data
    random_regret_mean: float  # the same, averaged over the bootstrap draws
    random_p_best_kept: float  # k / n exactly
    rules: tuple[FactorRule, ...]
    best_rule: FactorRule | None  # lowest bootstrap mean regret (picked with hindsight)
    same_as_factor_rule: str | None  # first rule whose set equals the proxy's kept set on the full data
    configurations: pd.DataFrame = field(repr=False)  # one row per configuration: proxy, outcome, kept, best
    n_resamples: int = 2000
    seed: int = 0
    note: str = ""

    @property
    def best_resolved(self) -> bool:
        """Whether the best configuration beats the runner-up by more than one seed's SD, both of the two
        configurations' own (pooled) and the mean over configurations (a few collapsed seeds inflate that)."""
        sds = [v for v in (self.seed_sd, self.seed_sd_top) if np.isfinite(v)]
        return bool(np.isfinite(self.margin) and sds and self.margin > max(sds))

    @property
    def equivalent_rules(self) -> tuple[str, ...]:
        """Every rule whose set equals the proxy's kept set (factors that move together give several)."""
        return tuple(r.name for r in self.rules if r.same_as_proxy)


def early_proxy(
    trials: pd.DataFrame,
    history: pd.DataFrame,
    fraction: float,
    *,
    factors: Sequence[str],
    outcome: str = mk.FID,
    higher_is_better_proxy: bool = True,
    keep: float = 0.5,
    n_resamples: int = 2000,
    seed: int = 0,
) -> ProxyResult:
    """Rank configurations by their D-loss mean over the first `fraction` of training; keep the top `keep`.

    Args:
        trials: one row per trial (the caller picks statuses, e.g. finished); one measurement setting.
        history: the studies' report rows (`iteration`, `d_loss_mean`, `trial_id`).
        factors: config columns whose levels define the single-factor rules (those with >= 2 levels).
        outcome: a trials column, lower is better; `LOG_FID` logs `fid` per trial before averaging.
        keep: share of configurations kept, k = max(1, floor(keep * n)).
        n_resamples: bootstrap draws (seeds within configurations); `seed` seeds them and corr_test.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction={fraction}; must be in (0, 1]")
    if not 0.0 < keep < 1.0:
        raise ValueError(f"keep={keep}; must be in (0, 1)")
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples}; need at least 1")
    t, iteration = _with_proxy(trials, history, fraction)
    if outcome == LOG_FID and LOG_FID not in t.columns:
        t[LOG_FID] = np.log(t[mk.FID].astype(float))
    usable = np.isfinite(t[PROXY].astype(float)) & np.isfinite(t[outcome].astype(float))
    dropped = int((~usable).sum())  # no report before the cut-off, or no outcome: said in the note
    t = t.loc[usable].reset_index(drop=True)
    if measurement_labels(t).nunique() > 1:
        raise ValueError("trials hold several FID measurement settings: call once per setting "
                         "(analysis.groups.measurement_groups)")
    codes = pd.factorize(configuration_codes(t), sort=True)[0] if len(t) else np.zeros(0, int)
    n = int(codes.max()) + 1 if len(codes) else 0
    if n < 3:
        raise ValueError(f"{n} configurations with a proxy and an outcome: need at least 3")
    k = max(1, int(math.floor(keep * n)))
    proxy, out = t[PROXY].to_numpy(float), t[outcome].to_numpy(float)
    sign = 1.0 if higher_is_better_proxy else -1.0

    # Full data = the all-ones weight row, so point and bootstrap share one code path (and tie-breaking).
    rng = np.random.default_rng(seed)
    w = np.vstack([np.ones(len(t)), bootstrap_weights(Design.of(len(t), strata=codes), n_resamples, rng)])
    onehot = np.eye(n)[codes]  # (trials, configs)
    counts = w @ onehot  # every row is the seed counts: resampling within configurations keeps them
    p_mean, o_mean = (w * proxy) @ onehot / counts, (w * out) @ onehot / counts
    kept_idx = np.argsort(-sign * p_mean, axis=1, kind="stable")[:, :k]
    kept = np.zeros_like(p_mean, dtype=bool)
    np.put_along_axis(kept, kept_idx, True, axis=1)
    best = np.argmin(o_mean, axis=1)
    best_o = o_mean[np.arange(len(w)), best]
    regret = np.where(kept, o_mean, np.inf).min(axis=1) - best_o
    best_kept = kept[np.arange(len(w)), best]
    rand = _random_subset_min(o_mean, k) - best_o

    conf = _configurations(t, codes, n, factors, outcome, p_mean[0], o_mean[0], kept[0], best[0])
    rules = _rules(conf, factors, o_mean, best, best_o, kept)
    same = next((r.name for r in rules if r.same_as_proxy), None)
    scored = [r for r in rules if np.isfinite(r.regret_mean)]
    best_rule = min(scored, key=lambda r: (r.regret_mean, -r.p_best_kept, r.size)) if scored else None

    order = np.argsort(o_mean[0], kind="stable")
    var = t.groupby(codes)[outcome].var(ddof=1).reindex(range(n))
    sd, top = np.sqrt(var).dropna(), var.iloc[order[:2]].dropna()
    lo, hi = np.quantile(regret[1:], [(1 - CI) / 2, (1 + CI) / 2])
    corr = corr_test(conf[PROXY], conf[outcome], method="spearman", n_resamples=n_resamples,
                     n_permutations=n_resamples, seed=seed)
    singles = int((conf[N_SEEDS_COL] < 2).sum())
    notes = [f"{singles} configuration(s) with one seed: no spread in the bootstrap"] if singles else []
    notes += [f"{dropped} trial(s) without a proxy or an outcome left out"] if dropped else []
    note = "; ".join(notes)
    return ProxyResult(
        fraction=fraction, iteration=iteration, outcome=outcome, higher_is_better_proxy=higher_is_better_proxy,
        n_configs=n, n_trials=len(t), k=k, corr=corr, regret=float(regret[0]), best_kept=bool(best_kept[0]),
        best_config=str(conf["label"].iloc[order[0]]), runner_up=str(conf["label"].iloc[order[1]]),
        margin=float(o_mean[0, order[1]] - o_mean[0, order[0]]), seed_sd=float(sd.mean()) if len(sd) else math.nan,
        seed_sd_top=float(np.sqrt(top.mean())) if len(top) else math.nan,
        regret_mean=float(regret[1:].mean()), regret_low=float(lo), regret_high=float(hi),
        p_best_kept=float(best_kept[1:].mean()), p_best_stable=float((best[1:] == best[0]).mean()),
        random_regret=float(rand[0]), random_regret_mean=float(rand[1:].mean()), random_p_best_kept=k / n,
        rules=rules, best_rule=best_rule, same_as_factor_rule=same, configurations=conf,
        n_resamples=n_resamples, seed=seed, note=note)


def _with_proxy(trials: pd.DataFrame, history: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, int]:
    """Trials with the proxy: `d_loss_mean` (a running mean) of the last report at or before the cut-off.

    As analysis.findings.early_proxy: the cut-off is fraction x the trials' iteration count.
    """
    iters = trials[C.cfg("iterations")].dropna().astype(int).unique()
    if len(iters) != 1:
        raise ValueError(f"trials run {len(iters)} different iteration counts: the cut-off is ambiguous")
    at = history.loc[history[mk.ITERATION] <= fraction * int(iters[0]) + 1e-9]
    early = at.sort_values(mk.ITERATION, kind="stable").groupby(C.TRIAL_ID)[mk.D_LOSS_MEAN].last().rename(PROXY)
    t = trials.drop(columns=[PROXY], errors="ignore").join(early, on=C.TRIAL_ID)
    return t, int(at[mk.ITERATION].max()) if len(at) else 0


def _random_subset_min(values: np.ndarray, k: int) -> np.ndarray:
    """Exact mean, over all k-subsets of each row's n values, of the subset's minimum.

    The i-th smallest (0-based) is a random k-subset's minimum with probability C(n-1-i, k-1) / C(n, k);
    ties do not change the expectation. Equals enumerating every subset, at any n.
    """
    n = values.shape[1]
    i = np.arange(n)
    m = n - 1 - i
    ok = m >= k - 1
    log_p = np.full(n, -np.inf)
    log_p[ok] = _log_comb(m[ok], k - 1) - _log_comb(n, k)
    return np.sort(values, axis=1) @ np.exp(log_p)


def _log_comb(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)


def _configurations(t: pd.DataFrame, codes: np.ndarray, n: int, factors: Sequence[str], outcome: str,
                    proxy: np.ndarray, out: np.ndarray, kept: np.ndarray, best: int) -> pd.DataFrame:
    """One row per configuration (code order): its factor levels, label, seeds, proxy, outcome, kept, best."""
    first = np.unique(codes, return_index=True)[1]
    cols = [f for f in dict.fromkeys(factors) if f in t.columns]
    conf = t.iloc[first][cols].reset_index(drop=True)
    conf["label"] = config_labels(conf, varied(conf, cols)).to_numpy()
    conf[N_SEEDS_COL] = np.bincount(codes, minlength=n)
    conf[PROXY], conf[outcome] = proxy, out
    conf["kept"] = kept
    conf["best"] = np.arange(n) == best
    return conf


def _rules(conf: pd.DataFrame, factors: Sequence[str], o_mean: np.ndarray, best: np.ndarray, best_o: np.ndarray,
           kept: np.ndarray) -> tuple[FactorRule, ...]:
    """Every 'keep factor = level' rule with a non-empty set, scored on the full data and the draws."""
    rows = np.arange(len(o_mean))
    rules = []
    for factor in dict.fromkeys(factors):
        if factor not in conf.columns or conf[factor].nunique(dropna=True) < 2:
            continue
        for level in sorted(conf[factor].dropna().unique(), key=str):
            mask = (conf[factor] == level).to_numpy()
            regret = np.where(mask, o_mean, np.inf).min(axis=1) - best_o
            hit = mask[best]
            same = (kept == mask).all(axis=1)
            lo, hi = np.quantile(regret[1:], [(1 - CI) / 2, (1 + CI) / 2])
            rules.append(FactorRule(
                name=f"{C.label(factor)}={_plain(level)}", factor=factor, level=level, size=int(mask.sum()),
                regret=float(regret[0]), best_kept=bool(hit[0]), regret_mean=float(regret[1:].mean()),
                regret_low=float(lo), regret_high=float(hi), p_best_kept=float(hit[1:].mean()),
                p_same_as_proxy=float(same[1:].mean()), same_as_proxy=bool(same[0])))
    return tuple(rules)


def _plain(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "on" if v else "off"
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


# ----------------------------------------------------------------------------------------------------
def render_proxy_markdown(results: Sequence[ProxyResult], *, q: Sequence[float] | None = None) -> str:
    """A table (one row per result) and, per result, the plain-language reading. Exploratory.

    `q`: Benjamini-Hochberg q-values of the Spearman p's in the caller's family (one per result).
    """
    if not results:
        return ""
    r0 = results[0]
    lines = [
        f"Exploratory. A study that stops early keeps the {r0.k} of {r0.n_configs} configurations with the "
        f"{'highest' if r0.higher_is_better_proxy else 'lowest'} D-loss mean over the first part of training. "
        "Regret: best outcome among those kept minus the best overall (0 = the best configuration was kept). "
        f"Intervals and probabilities come from {r0.n_resamples} bootstrap draws that resample seeds within "
        "each configuration (proxy and outcome together), re-picking the kept set and the best configuration "
        "each time; 'random' keeps as many configurations at random (P(best kept) = k/n, regret exact over "
        "every subset); the factor rule keeps one level of one factor, the best such rule picked with "
        "hindsight.", "",
        "| proxy | outcome | configurations (kept) | Spearman r [95% CI] | p" + (" | q" if q is not None else "")
        + " | regret, full data | regret, bootstrap mean [95%] | P(best kept) | random: regret, P(best kept) "
        "| best factor rule (size): regret, P(best kept) | best - runner-up vs their seed SD |",
        "|---|---|---|---|---" + ("|---" if q is not None else "") + "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(results):
        d = DIGITS
        rule = r.best_rule
        rule_cell = (f"{rule.name} ({rule.size}): {rule.regret_mean:.{d}f}, {rule.p_best_kept:.2f}"
                     if rule else "none")
        qcell = f" | {q[i]:.4f}" if q is not None else ""
        lines.append(
            f"| first {r.fraction:.0%} (to iteration {r.iteration}) | {_outcome_label(r.outcome)} | "
            f"{r.n_configs} ({r.k}) | {_fmt(r.corr.r, r.corr.ci_low, r.corr.ci_high, 3)} | {r.corr.p_perm:.4f}"
            f"{qcell} | {r.regret:.{d}f} | {_fmt(r.regret_mean, r.regret_low, r.regret_high, d)} | "
            f"{r.p_best_kept:.2f} | {r.random_regret_mean:.{d}f}, {r.random_p_best_kept:.2f} | {rule_cell} | "
            f"{r.margin:.{d}f} vs {r.seed_sd_top:.{d}f} |")
    lines.append("")
    lines += [f"- {sentence}" for r in results for sentence in [_reading(r)]]
    return "\n".join(lines) + "\n"


def _reading(r: ProxyResult) -> str:
    """The plain-language reading of one result."""
    d, unit = DIGITS, _outcome_label(r.outcome)
    s = (f"At {r.fraction:.0%} of training ({unit}): keeping the proxy's {r.k} of {r.n_configs} configurations "
         f"{'keeps' if r.best_kept else 'loses'} the best one on the full data (regret {r.regret:.{d}f}); with "
         f"seeds resampled, the mean regret is {_fmt(r.regret_mean, r.regret_low, r.regret_high, d)} and the "
         f"best configuration is kept with probability {r.p_best_kept:.2f}, against {r.random_p_best_kept:.2f} "
         f"(mean regret {r.random_regret_mean:.{d}f}) for {r.k} configurations kept at random.")
    if r.same_as_factor_rule:
        names = " (equivalently " + ", ".join(r.equivalent_rules[1:]) + ")" if len(r.equivalent_rules) > 1 else ""
        rule = _rule(r, r.same_as_factor_rule)
        s += (f" The proxy keeps exactly the configurations with {r.same_as_factor_rule}{names}: on the full data "
              f"its choice is a factor rule's, no more than knowing that factor (it keeps that set in "
              f"{rule.p_same_as_proxy:.0%} of draws; the rule alone keeps the best with probability "
              f"{rule.p_best_kept:.2f}).")
    b = r.best_rule
    if b is not None and b.name not in r.equivalent_rules:
        s += (f" The best single-factor rule with hindsight, {b.name} ({b.size} configurations), has mean regret "
              f"{b.regret_mean:.{d}f} and keeps the best with probability {b.p_best_kept:.2f}.")
    sds = (f"one seed SD (those two configurations' {r.seed_sd_top:.{d}f}; the mean over configurations "
           f"{r.seed_sd:.{d}f})")
    if r.best_resolved:
        s += (f" The best configuration ({r.best_config}) beats the runner-up by {r.margin:.{d}f}, more than {sds}; "
              f"it stays best in {r.p_best_stable:.0%} of draws.")
    else:
        s += (f" The best configuration ({r.best_config}) beats the runner-up ({r.runner_up}) by only "
              f"{r.margin:.{d}f}, within {sds}: which configuration is best is not resolved by these seeds "
              f"(it stays best in {r.p_best_stable:.0%} of draws), so neither is whether the proxy keeps it.")
    return s + (f" Note: {r.note}." if r.note else "")


def _rule(r: ProxyResult, name: str) -> FactorRule:
    return next(x for x in r.rules if x.name == name)


def _outcome_label(outcome: str) -> str:
    return "log FID" if outcome == LOG_FID else C.label(outcome)


def _fmt(value: float, lo: float, hi: float, digits: int) -> str:
    if not math.isfinite(value):
        return "n/a"
    body = f"{value:.{digits}f}"
    return body + (f" [{lo:.{digits}f}, {hi:.{digits}f}]" if math.isfinite(lo) and math.isfinite(hi) else "")
