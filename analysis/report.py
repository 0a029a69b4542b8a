"""report.md: the pre-declared primary test first, then every exploratory table and statistic of an
`Analysis` (n, r, CI, p, q), and what was skipped and why."""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import columns as C
from analysis.downstream import SEED001_GAIN_POINTS
from analysis.family import PRIMARY_TEXT
from analysis.memory_cost import FEATURES, MEM, METHOD, NETWORK, NORM, RESOLUTION, SEED002_SAVING_PCT, series_keys
from analysis.pipeline import Analysis
from analysis.reference import PAPER_NOTES
from analysis.tables import format_table1, markdown_table
from trainers import metric_keys as mk

BUDGET_KS = (1, 2, 5, 10, 20, 50, 100)
CORR_COLUMNS = ["level", "unit", "group", "target", "predictor", "method", "n", "n_configs", "r", "ci_low", "ci_high",
                "p_perm", "q", "p_param"]
EXPLORATORY = "(exploratory)"
_PRIMARY_TAG = " (the primary test)"


def render_report(a: Analysis) -> str:
    """The whole Markdown report: title, primary test, study and methods, then exploratory sections."""
    parts = [f"# GAN study analysis: {', '.join(a.data.names)}", _primary(a), _header(a), _exploratory(a),
             _claim(a), _matrices(a), _within(a), _table1(a), _factors(a), _budget(a), _downstream(a), _memory(a),
             _reference(a), _notes(a)]
    return "\n\n".join(p for p in parts if p) + "\n"


def _primary(a: Analysis) -> str:
    out = ["## Primary test (pre-declared)",
           f"{PRIMARY_TEXT}. Seed 002 claims r < 0. The unit is the configuration: n configurations, each "
           "the mean over its seeds; 95% bootstrap CI over configurations, two-sided permutation p (p_perm), "
           f"t-test p (p_param), and q, the Benjamini-Hochberg q-value over all {len(a.tests)} tests of this report."]
    c = a.correlations
    rows = c.loc[c["primary"]] if "primary" in c.columns else c.iloc[0:0]
    if rows.empty:
        why = ("no analysed trial has both FID and the D-loss mean" if not (a.has(mk.FID) and a.has(mk.D_LOSS_MEAN))
               else "no test could be run")
        out.append(f"Not available: {why}.")
        return "\n\n".join(out)
    table = pd.DataFrame({"group": rows["group"], "n configurations": rows["n_configs"],
                          "n trials": _trials_in(a, rows), "r": rows["r"],
                          "95% CI": [_ci(lo, hi) for lo, hi in zip(rows.ci_low, rows.ci_high)],
                          "p_perm": rows["p_perm"], "p_param": rows["p_param"], "q": rows["q"], "note": rows["note"]})
    out.append(markdown_table(table))
    if a.measurements:
        out.append("FID was measured in several ways; each measurement setting has its own primary test "
                   "(values measured differently are never pooled).")
    return "\n\n".join(out)


def _trials_in(a: Analysis, rows: pd.DataFrame) -> list:
    """Trials behind each primary row: the trial-level row of the same group has n = trials."""
    c = a.correlations
    trial = c.loc[(c.level == "trial") & (c.controls == "")].drop_duplicates("group").set_index("group")["n"]
    return [int(trial.get(g, n)) for g, n in zip(rows["group"], rows["n"])]


def _header(a: Analysis) -> str:
    counts = pd.DataFrame(list(a.data.status_counts().items()), columns=["status", "trials"])
    present = [C.label(m) for m in (mk.FID, mk.KID_MEAN, *C.PREDICTORS, C.TSTR_ACCURACY, mk.AUGMENT_GAIN) if a.has(m)]
    absent = [C.label(m) for m in (mk.FID, mk.KID_MEAN, C.TSTR_ACCURACY, mk.AUGMENT_GAIN) if not a.has(m)]
    return "\n".join([
        "## Study and methods",
        "",
        "Study dirs: " + ", ".join(f"`{d}`" for d in a.data.dirs),
        "",
        markdown_table(counts),
        "",
        (f"Analysed trials (status {', '.join(a.statuses)}): **{len(a.analysed)}**; the others are counted, not "
        "analysed. Seeds are repeats of one configuration, so the configuration is the unit of every interval "
        "and p-value, at trial level too: confidence intervals are 95% bootstrap intervals that resample "
        f"configurations with all their seeds ({a.n_resamples} resamples, BCa unless marked percentile), "
        "p_perm is a two-sided permutation p-value whose permutations move whole configurations "
        f"({a.n_permutations} permutations, exact when all arrangements fit), p_param the t-test p-value with "
        "degrees of freedom from the number of configurations and the rank of the controls; "
        f"seed {a.seed}. See docs/STATISTICS.md."),
        "",
        f"Metrics with data: {', '.join(present) or 'none'}. Absent: {', '.join(absent) or 'none'}.",
    ])


def _exploratory(a: Analysis) -> str:
    return ("## Exploratory analyses\n\nEverything below is exploratory: chosen after seeing which data exist, "
            f"and {len(a.tests)} tests in all. Read a p-value together with its q (Benjamini-Hochberg over every "
            "test of this report, csv/tests.csv): q < 0.05 keeps the expected share of false discoveries "
            "among those selected below 5%.")


def _claim(a: Analysis) -> str:
    c = a.correlations
    out = [f"## 1. Does the discriminator loss track sample quality? (seed 002's claim) {EXPLORATORY}"]
    if c.empty:
        out.append("Skipped: no analysed trial has both a quality metric (FID/KID) and a training signal.")
        return "\n\n".join(out)
    target = mk.FID if (c.target == mk.FID).any() else c.target.iloc[0]
    key = c.loc[(c.target == target) & (c.predictor == mk.D_LOSS_MEAN) & (c.controls == "")]
    out.append(f"{C.label(target)} vs D-loss mean (seed 002 claims r < 0):\n\n"
               + "\n".join(f"- {r.level} level, {r.group}, {r.method}{_PRIMARY_TAG if r.get('primary') else ''}: "
                           f"{_stat(r)}" for _, r in key.iterrows()))
    out.append("Loss types are never pooled raw: each `config/loss` value is its own group, and the pooled group "
               "z-scores every variable within its loss type (its configurations are resampled and permuted "
               "within their loss type). Configuration level averages over seeds (grouped by every config column "
               "except seed and name); trial level keeps every seed but still resamples whole configurations.")
    plain = c.loc[c.controls == "", [x for x in CORR_COLUMNS if x in c.columns] + ["note"]].copy()
    plain["target"] = plain["target"].map(C.label)
    plain["predictor"] = plain["predictor"].map(C.label)
    out.append("### All tests\n\n" + markdown_table(plain))
    part = c.loc[c.controls != ""]
    if not part.empty:
        ctrl = part.groupby(["level", "group"], sort=False)["controls"].first()
        lines = [f"- {lvl}, {grp}: {ctl}" for (lvl, grp), ctl in ctrl.items()]
        table = part[[x for x in [*CORR_COLUMNS, "n_covariates", "control_rank", "note"] if x in part.columns]].copy()
        table["target"] = table["target"].map(C.label)
        table["predictor"] = table["predictor"].map(C.label)
        out.append("### Partial correlations (x and y residualised on one-hot study factors; Freedman-Lane "
                   "permutation p, degrees of freedom from the rank of the controls)\n\nControls:\n"
                   + "\n".join(lines) + "\n\n" + markdown_table(table))
    return "\n\n".join(out)


def _matrices(a: Analysis) -> str:
    if not a.matrices:
        return ""
    body = [f"### {g}\n\n{markdown_table(m, index=True, digits=2)}" for g, m in a.matrices.items()]
    return (f"## 2. Pearson correlation matrix (seed 002 Fig. 5), trial level {EXPLORATORY}\n\nDescriptive: no "
            "p-values.\n\n" + "\n\n".join(body))


def _within(a: Analysis) -> str:
    if a.within_summary.empty:
        return ""
    s = a.within_summary.copy()
    s["x"] = s["x"].map(C.label)
    s["y"] = s["y"].map(C.label)
    return (f"## 3. Within-trial correlation (across one trial's reports where FID was measured) {EXPLORATORY}\n\n"
            "Mean Spearman r over trials with a bootstrap CI that resamples configurations (all seeds of one "
            "together). Both signals drift with training "
            "time, so a within-trial r mostly reflects a shared trend, not a causal link.\n\n" + markdown_table(s))


def _table1(a: Analysis) -> str:
    if a.table1.empty:
        return ""
    return (f"## 4. Seed 002 Table I layout from this study {EXPLORATORY}\n\nOne row per optimizer x activation x "
            "TTUR (x loss) cell, averaged over the trials in it (D-loss variance/std are per-run statistics, "
            "averaged).\n\n"
            + markdown_table(a.table1))


def _factors(a: Analysis) -> str:
    if a.factors.empty:
        return ""
    f = a.factors.copy()
    f["factor"] = f["factor"].map(C.label)
    f["metric"] = f["metric"].map(C.label)
    return (f"## 5. Factor effects {EXPLORATORY}\n\nMarginal means per level (pooled over the other factors and over "
            "loss types: FID and accuracy are comparable across losses), 95% bootstrap CI of the mean resampling "
            "configurations, Kruskal-Wallis test over configuration means (seeds averaged) with a permutation "
            "p-value and its q.\n\n" + markdown_table(f))


def _budget(a: Analysis) -> str:
    b = a.budget
    if b.empty:
        return ""
    ks = sorted({k for k in BUDGET_KS if k <= b.k.max()} | {int(b.k.max())})
    rows = b.loc[b.k.isin(ks)].copy()
    rows["metric"] = rows["metric"].map(C.label)
    return (f"## 6. Budget curves (best score among k trials; mean and 95% band over bootstrap trial orders) "
            f"{EXPLORATORY}\n\nDescriptive: what k fresh trials (configuration and seed drawn anew) would find.\n\n"
            + markdown_table(rows))


def _downstream(a: Analysis) -> str:
    out, bullets = [], []
    if not a.tstr_fid.empty:
        bullets += [f"- TSTR accuracy vs FID, {r.method}: {_stat(r)}" for _, r in a.tstr_fid.iterrows()]
    if a.trtr:
        t = a.trtr
        bullets.append("- TRTR baseline (classifier trained on real; CI over configurations): accuracy "
                       f"{t['mean']:.4f} [95% CI {t['ci_low']:.4f}, {t['ci_high']:.4f}], n = {t['n']}")
    if bullets:
        out.append("\n".join(bullets))
    if not a.downstream_summary.empty:
        out.append("### Downstream metrics over analysed trials (mean, 95% bootstrap CI)\n\n"
                   + markdown_table(a.downstream_summary))
    for title, rep in a.class_reports.items():
        out.append(f"### Classification report, {title} (seed 000 layout)\n\n" + markdown_table(rep, index=True))
    for title, cm in a.confusion.items():
        out.append(f"### Confusion matrix, {title} (rows true, columns predicted)\n\n"
                   + markdown_table(cm, index=True, digits=1))
    if not a.augment.empty:
        out.append(f"### Augmentation gain over real-only (percentage points; seed 001: +{SEED001_GAIN_POINTS:.2f})"
                   "\n\nCI across seeds of each configuration; first row over all trials.\n\n"
                   + markdown_table(a.augment))
    if not out:
        return ""
    return f"## 7. Downstream usefulness {EXPLORATORY}\n\n" + "\n\n".join(out)


def _memory(a: Analysis) -> str:
    if a.memory_curves.empty:
        return ""
    m = a.memory_curves
    cols = [c for c in (METHOD, NETWORK, RESOLUTION, NORM) if c in m.columns and (c != METHOD or m[c].nunique() > 1)]
    wide = m.pivot_table(index=FEATURES, columns=cols, values=MEM)
    wide.columns = [" ".join(f"{v}px" if c == RESOLUTION else str(v) for c, v in zip(cols, key))
                    for key in (wide.columns if len(cols) > 1 else [(k,) for k in wide.columns])]
    out = [f"## 8. Memory per image (seed 002 Figs. 7-8) {EXPLORATORY}",
           "MB per image by feature-map size (columns: network, resolution, norm):\n\n"
           + markdown_table(wide, index=True)]
    s = a.bn_saving
    if not s.empty:
        lo, hi = s.saving_pct.min(), s.saving_pct.max()
        summary = s.groupby(series_keys(s)).agg(
            features=(FEATURES, lambda f: f"{f.min()}-{f.max()}"), min_saving_pct=("saving_pct", "min"),
            max_saving_pct=("saving_pct", "max")).reset_index()
        out.append(f"Removing BatchNorm saves {lo:.1f}-{hi:.1f}% of memory per image here; seed 002 reports "
                   f"{SEED002_SAVING_PCT[0]}-{SEED002_SAVING_PCT[1]:.0f}% (per size: csv/bn_saving.csv).\n\n"
                   + markdown_table(summary))
    return "\n\n".join(out)


def _reference(a: Analysis) -> str:
    if not a.reference:
        return ""
    t, c = a.reference["table"], a.reference["correlations"]
    table = format_table1(t).assign(**{"failed run": t["failed_run"].map(lambda v: "yes" if v else "")})
    mean = c.loc[c.predictor == mk.D_LOSS_MEAN].set_index("subset")
    lines = [f"- {s}: Pearson r = {r.r:+.4f}, p = {r.p_param:.3f} (t-test), exact permutation p = "
             f"{r.p_perm_exact:.3f}, Fisher 95% CI {_ci(r.fisher_ci_low, r.fisher_ci_high)}, n = {r.n}"
             for s, r in mean.iterrows()]
    shown = c.copy()
    shown["predictor"] = shown["predictor"].map(C.label)
    shown["target"] = shown["target"].map(C.label)
    return "\n\n".join([
        f"## 9. Seed 002 reference rows (Belmekki et al. 2022, Table I) {EXPLORATORY}",
        ("A re-analysis of the paper's four published runs, not of this study: these tests are not in this "
         "report's family of tests (no q)."),
        markdown_table(table),
        "What the four rows support for FID vs D-loss mean:\n\n" + "\n".join(lines),
        ("With n = 4 the correlation is not significant, and it rests on the one failed run (FID 238): without "
        "it r is about +0.03. The paper's inverse correlation is a hypothesis to test over many trials "
        "(section 1), not an established result."),
        markdown_table(shown),
        "Fig. 5 recomputed:\n\n" + markdown_table(a.reference["matrix"], index=True, digits=3),
        "Notes on the paper:\n\n" + "\n".join(f"- {n}" for n in PAPER_NOTES),
    ])


def _notes(a: Analysis) -> str:
    lines = [f"- {n}" for n in a.notes] or ["- nothing was skipped"]
    return "## Notes (skipped analyses, warnings)\n\n" + "\n".join(lines) + \
        f"\n\nAnalysis took {a.seconds:.1f} s."


def _stat(r: pd.Series) -> str:
    if not np.isfinite(r.get("r", np.nan)):
        return f"r undefined ({r.get('note', '')}), n = {r.n}"
    q = f", q = {r.q:.3g}" if np.isfinite(r.get("q", np.nan)) else ""
    configs = f" ({int(r.n_configs)} configurations)" if "n_configs" in r and r.n_configs != r.n else ""
    return (f"r = {r.r:+.3f}, 95% CI {_ci(r.ci_low, r.ci_high)}, p_perm = {r.p_perm:.3g}{q}, "
            f"p_param = {r.p_param:.3g}, n = {int(r.n)}{configs}")


def _ci(lo: float, hi: float) -> str:
    return "n/a" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:+.3f}, {hi:+.3f}]"
