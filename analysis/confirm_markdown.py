"""Markdown of a confirmatory analysis (analysis/confirmatory.py), shared by report.md and docs/findings.md."""
from __future__ import annotations

import math

import pandas as pd

from analysis.confirmatory import Confirmatory
from analysis.plan import AnalysisPlan
from analysis.tables import markdown_table


def render_confirmatory(conf: Confirmatory, plan: AnalysisPlan, *, heading: str = "###") -> str:
    """The primary within-cell test with its per-cell detail, TOST and power, then the secondary tests."""
    if plan.contrast:
        return render_contrasts(conf, plan, heading=heading)
    out = [f"{heading} Confirmatory test within the plan's cells ({' x '.join(conf.cells)})"]
    if conf.expected_trials and not conf.complete:
        out.append(f"**Interim: {conf.trials} of the design's {conf.expected_trials} trials are in.** The plan's "
                   "verdict is drawn only when the design is complete; the numbers below are a progress check.")
    if conf.primary is None:
        out.append(f"Not available: {conf.note or 'too few configurations beyond the cells'}.")
        return "\n\n".join(out)
    p = conf.primary
    if plan.excludes:
        out.append(f"The plan excludes {', '.join(f'`{e}`' for e in plan.excludes)}: `gan-study run` refused any "
                   "(configuration, seed) pair that would repeat one of their trials, so their data are not in this "
                   "test (study.json `design.excludes` records what was compared).")
    out.append(
        f"{p.n} configurations in {p.k} cells ({conf.trials} trials); the unit is the configuration (its seeds "
        f"averaged), collapsed runs included. Within-cell r = **{p.r:.3f}**, 95% CI [{p.ci_low:.3f}, {p.ci_high:.3f}] "
        f"(Fisher z, {p.df} df = n - K - 2); within-cell permutation p = {_p(p.p_perm)} ({p.perm_kind}; configurations "
        f"permuted only inside their cell); cells with the plan's sign: {p.sign_consistent} of {p.cells_with_r}.")
    if p.smallest_effect:
        out.append(
            f"Smallest effect of interest |r| = {p.smallest_effect:g}: equivalence (TOST) p = {_p(p.tost_p)}; the design's "
            f"power to detect it, given this study's seed noise, is {_pct(p.power)} (reliability of a configuration's "
            f"seed mean within cells: {_num(p.reliability_y)} for {_label(plan.outcome)}, {_num(p.reliability_x)} for "
            f"{_label(plan.predictor)}; within-cell ICC of one seed's {_label(plan.outcome)} {_num(p.icc_y)}).")
    verdict = p.verdict if conf.complete or not conf.expected_trials else f"{p.verdict} (interim; not a verdict)"
    out.append(f"**Verdict: {verdict}** ({p.why}).")
    cells = pd.DataFrame([{"cell": c["cell"], "configurations": c["n"], "r in the cell": c["r"],
                           "within-cell r without it": c["loco_r"]} for c in p.per_cell])
    out.append(markdown_table(cells))
    out.extend(_secondary_blocks(conf, plan))
    return "\n\n".join(out)


def render_contrasts(conf: Confirmatory, plan: AnalysisPlan, *, heading: str = "###") -> str:
    """A contrast plan: the primary family (each level minus the reference), interactions, then the secondaries."""
    c = plan.contrast
    out = [f"{heading} Planned contrasts: each {c['factor']} level minus {c['reference']!r}"
           + (f", within {' x '.join(c['within'])}" if c["within"] else "")]
    if conf.expected_trials and not conf.complete:
        out.append(f"**Interim: {conf.trials} of the design's {conf.expected_trials} trials are in.** The plan's "
                   "verdicts are drawn only when the design is complete; the numbers below are a progress check.")
    fam = conf.contrasts
    if fam.empty or not (fam["family"] == "primary").any():
        out.append(f"Not available: {conf.note or 'no configuration at the reference level yet'}.")
        out.extend(_secondary_blocks(conf, plan))
        return "\n\n".join(out)
    prim = fam.loc[fam["family"] == "primary"]
    out.append(
        f"{plan.describe()}. {conf.trials} trials, {conf.configurations} configurations; the configuration is the "
        "unit and its seeds are blocks (the same seed gives every level the same data subset and initial weights). "
        "diff is the mean paired difference over seeds; its 95% t interval and p use the residual SD pooled over "
        f"the configurations of the same {' x '.join(c['within']) or 'study'} (df per row); p is one-sided in the "
        f"predicted direction where the plan states one; q is {c['correction'].capitalize()}-adjusted over the "
        f"{len(prim)} contrasts. TOST against +-{plan.smallest_effect:g}; power at that effect and the first Holm "
        "step (a lower bound). The paired t over the contrast's seeds alone (no pooling) is the check beside it.")
    if conf.complete or not conf.expected_trials:
        counts = prim["verdict"].value_counts()
        out.append("**Verdicts: " + "; ".join(f"{v}: {n}" for v, n in counts.items()) + ".**")
    out.append(markdown_table(_contrast_table(prim)))
    if not conf.interactions.empty:
        it = conf.interactions
        out.append(f"Declared prediction (outside the q family): does each level help more at "
                   f"{c['within'][0]} = {it['at'].iloc[0]} than at {it['minus_at'].iloc[0]}? Difference in "
                   f"differences of {_label(plan.outcome)} (negative = helps more at {it['at'].iloc[0]}); 95% "
                   "Welch-Satterthwaite t interval:")
        out.append(markdown_table(pd.DataFrame({
            "level": it["level"], "difference in differences": it["diff_in_diff"],
            "95% CI": [_ci(lo, hi) for lo, hi in zip(it.ci_low, it.ci_high)], "p (two-sided)": it["p"]})))
    for outcome, sec in fam.loc[fam["family"] == "secondary"].groupby("outcome", sort=False):
        out.append(f"Secondary: the same contrasts on {_label(outcome)} (two-sided; q: Benjamini-Hochberg over "
                   f"these {len(sec)}):")
        out.append(markdown_table(_contrast_table(sec)))
    out.extend(_secondary_blocks(conf, plan))
    return "\n\n".join(out)


def _contrast_table(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "within": f["within"], "level": f["level"], "diff": f["diff"],
        "95% CI": [_ci(lo, hi) for lo, hi in zip(f.ci_low, f.ci_high)], "df": f["df"], "p": f["p"], "q": f["q"],
        "TOST p": f["tost_p"], "power": f["power"], "seeds": f["seeds"], "paired t p (unpooled)": f["paired_p"],
        "verdict": f["verdict"]})


def _secondary_blocks(conf: Confirmatory, plan: AnalysisPlan) -> list[str]:
    """The plan's secondary tests (q-values over them), early-signal rank fidelity and collapse by cell."""
    out: list[str] = []
    if not conf.secondary.empty:
        sec = conf.secondary.assign(**{"95% CI": [_ci(lo, hi) for lo, hi in zip(conf.secondary.ci_low,
                                                                               conf.secondary.ci_high)]})
        out.append(f"Secondary tests declared in the plan (q: Benjamini-Hochberg over these {len(sec)} tests):")
        out.append(markdown_table(sec[["test", "n", "r", "95% CI", "p", "q", "verdict"]]))
    if not conf.rank_fidelity.empty:
        rf = conf.rank_fidelity
        table = pd.DataFrame({
            "early signal": rf.signal, "Spearman with final log FID": rf.spearman,
            "95% CI": [_ci(lo, hi) for lo, hi in zip(rf.ci_low, rf.ci_high)],
            "keep-half regret": rf.regret, "P(best kept)": rf.p_best_kept, "random half: regret": rf.random_regret,
            "random half: P(best kept)": rf.random_p_best, "best factor rule (hindsight)": rf.best_rule,
            "its regret": rf.best_rule_regret})
        out.append("Rank fidelity of early signals (out of sample: ranked with the other seeds, scored with the "
                   "held-out seed's final log FID, rotated over seeds; regret in log FID; the factor rule is chosen "
                   "with hindsight and stays outside the q-value family):")
        out.append(markdown_table(table))
    if not conf.collapse.empty:
        col = conf.collapse.assign(**{"95% CI (configurations)": [_ci(lo, hi) for lo, hi in
                                                                   zip(conf.collapse.ci_low, conf.collapse.ci_high)]})
        out.append(f"Collapse by cell ({plan.collapse.get('rule')} rule; a configuration counts when any seed "
                   "collapsed; exact Clopper-Pearson interval over configurations):")
        out.append(markdown_table(col[["cell", "configurations", "with_collapse", "rate", "95% CI (configurations)",
                                       "runs", "collapsed_runs"]]))
    return out


def _label(column: str) -> str:
    from analysis import columns as C

    return C.label(column)


def _p(v: float) -> str:
    return "n/a" if not math.isfinite(v) else (f"{v:.4f}" if v >= 1e-4 else f"{v:.1e}")


def _pct(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.2f}"


def _num(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.2f}"


def _ci(lo: float, hi: float) -> str:
    return "n/a" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{lo:.3f}, {hi:.3f}]"
