"""report.md: the primary test first (the study's pre-registered plan, or why there is none), then every
exploratory table and statistic of an `Analysis` (n, r, CI, p, q), and what was skipped and why."""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import columns as C
from analysis.downstream import SEED001_GAIN_POINTS
from analysis.collapse import describe_rule
from analysis.confirm_markdown import render_confirmatory
from analysis.primary import POST_HOC, PRE_REGISTERED
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
             _claim(a), _collapse(a), _yardstick(a), _extractors(a), _memorisation(a), _matrices(a), _within(a),
             _table1(a), _factors(a), _budget(a),
             _downstream(a), _memory(a), _reference(a), _notes(a)]
    return "\n\n".join(p for p in parts if p) + "\n"


def _primary(a: Analysis) -> str:
    status = a.plan
    title = {PRE_REGISTERED: "## Primary test (pre-registered)", POST_HOC: "## The plan's test (post hoc, exploratory)"}
    out = [title.get(status.status if status else "", "## Primary test: none (every test is exploratory)")]
    out.append(f"Why: {status.why}." if status else "Why: no plan.")
    if status is None or status.plan is None:
        return "\n\n".join(out)
    plan = status.plan
    if a.confirmatory is not None and (a.confirmatory.primary is not None or plan.contrast):  # cells or contrasts
        out.append(f"The plan: {plan.describe()}. Collapse rule: {describe_rule(plan.collapse)}."
                   + (f" {plan.note}" if plan.note else ""))
        out.append(render_confirmatory(a.confirmatory, plan))
        return "\n\n".join(out)
    out.append(f"The plan: {plan.describe()}. Collapse rule: {describe_rule(plan.collapse)}."
               + (f" Reproduced means: direction {plan.direction} and the CI including {plan.reproduced['value']:g}"
                  f" ({plan.reproduced.get('source', 'the paper')})." if plan.reproduced.get("value") is not None
                  else "")
               + " The unit is the configuration at configuration level (seeds averaged); 95% bootstrap CI, "
               f"permutation p (p_perm), t-test p (p_param) and q, the Benjamini-Hochberg q-value over all "
               f"{len(a.tests)} tests of this report.")
    rows = a.planned
    if rows.empty:
        out.append("Not available: the analysed trials lack the plan's outcome or predictor.")
        return "\n\n".join(out)
    table = pd.DataFrame({"group": rows["group"], "n": rows["n_configs"], "controls": rows["controls"], "r": rows["r"],
                          "95% CI": [_ci(lo, hi) for lo, hi in zip(rows.ci_low, rows.ci_high)],
                          "p_perm": rows["p_perm"], "p_param": rows["p_param"], "q": rows.get("q", np.nan),
                          "verdict": rows.get("verdict", ""), "why": rows.get("why", "")})
    out.append(markdown_table(table))
    if a.measurements:
        out.append("FID was measured in several ways; each measurement setting has its own row "
                   "(values measured differently are never pooled).")
    if a.confirmatory is not None:  # named cells, but the within-cell test could not run: say why
        out.append(render_confirmatory(a.confirmatory, plan))
    return "\n\n".join(out)


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
    dup = ("\n\nDropped from the family as identical to another test (the same statistic, n and p):\n"
           + "\n".join(f"- {d}" for d in a.duplicates)) if a.duplicates else ""
    return ("## Exploratory analyses\n\nEverything below is exploratory: chosen after seeing which data exist, "
            f"and {len(a.tests)} tests in all. Read a p-value together with its q (Benjamini-Hochberg over every "
            "test of this report, csv/tests.csv): q < 0.05 keeps the expected share of false discoveries "
            "among those selected below 5%." + dup)


def _claim(a: Analysis) -> str:
    c = a.correlations
    out = [f"## 1. Does the discriminator loss track sample quality? (seed 002's claim) {EXPLORATORY}"]
    if c.empty:
        out.append("Skipped: no analysed trial has both a quality metric (FID/KID) and a training signal.")
        return "\n\n".join(out)
    out.append("FID and KID are analysed on the log scale by default (a few collapsed seeds dominate raw FID); "
               "raw FID and KID follow, labelled raw. Each test is also run within design cells "
               "(docs/STATISTICS.md, 'Within design cells'): the cells are the crossing of the study's categorical "
               "factors, or, where that is saturated, of the factors that explain the predictor; at trial level "
               "the configurations. A correlation that vanishes within cells lives between the factor cells.")
    lines = []
    for target in [t for t in (C.LOG_FID, mk.FID, C.LOG_KID, mk.KID_MEAN) if (c.target == t).any()]:
        key = c.loc[(c.target == target) & (c.predictor == mk.D_LOSS_MEAN) & (c.method == "pearson")]
        for _, r in key.loc[key.control_kind == ""].iterrows():
            scale = "" if target in (C.LOG_FID, C.LOG_KID) else " (raw scale)"
            lines.append(f"- {C.label(target)}{scale} vs D-loss mean, {r.level} level, {r.group}: {_stat(r)}"
                         + _cell_text(key, r))
    out.append("\n".join(lines))
    out.append("Loss types are never pooled raw: each `config/loss` value is its own group, and the pooled group "
               "z-scores every variable within its loss type (its configurations are resampled and permuted "
               "within their loss type). Configuration level averages over seeds (grouped by every config column "
               "except seed and name); trial level keeps every seed but still resamples whole configurations.")
    plain = c.loc[c.control_kind == "", [x for x in CORR_COLUMNS if x in c.columns] + ["note"]].copy()
    out.append("### All tests\n\n" + markdown_table(_labelled(plain)))
    cells = c.loc[c.control_kind == "cells"]
    if not cells.empty:
        cols = [x for x in [*CORR_COLUMNS, "cells", "between_share", "loco_min", "loco_min_cell", "loco_max",
                            "loco_max_cell", "note"] if x in cells.columns]
        out.append("### Within design cells (cell fixed effects; Freedman-Lane permutation p, degrees of freedom "
                   "from the rank of the cell design; at trial level seeds are permuted within configurations)\n\n"
                   "between_share: the share of the x-y cross-product that lies between cell means (1 = all of "
                   "it); loco: plain r with one cell left out, the smallest and largest, and the cell left out.\n\n"
                   + markdown_table(_labelled(cells[cols])))
    part = c.loc[c.control_kind == "factors"]
    if not part.empty:
        ctrl = part.groupby(["level", "group"], sort=False)["controls"].first()
        lines = [f"- {lvl}, {grp}: {ctl}" for (lvl, grp), ctl in ctrl.items()]
        table = part[[x for x in [*CORR_COLUMNS, "n_covariates", "control_rank", "note"] if x in part.columns]]
        out.append("### Partial correlations on additive factors (x and y residualised on one-hot study factors, "
                   "main effects only; Freedman-Lane permutation p, degrees of freedom from the rank of the "
                   "controls)\n\nControls:\n" + "\n".join(lines) + "\n\n" + markdown_table(_labelled(table)))
    return "\n\n".join(out)


def _cell_text(rows: pd.DataFrame, plain: pd.Series) -> str:
    """'; within N cells (...): r = ..., p = ...; X% of the association lies between cells; leave-one-cell-out ...'"""
    m = rows.loc[(rows.control_kind == "cells") & (rows.level == plain.level) & (rows.group == plain.group)]
    if m.empty:
        return ""
    w = m.iloc[0]
    if not np.isfinite(w.get("r", np.nan)):
        return f"; within cells: not computed ({w.get('note', '')})"
    share = w.get("between_share", np.nan)
    text = f"; within {w['cells']}: partial r = {w.r:+.3f}, 95% CI {_ci(w.ci_low, w.ci_high)}, p_perm = {w.p_perm:.3g}"
    if np.isfinite(w.get("q", np.nan)):
        text += f", q = {w.q:.3g}"
    if np.isfinite(share):
        text += f"; {share:.0%} of the association lies between cells"
    if np.isfinite(w.get("loco_min", np.nan)):
        text += (f"; leave-one-cell-out r from {w.loco_min:+.3f} (without {w.loco_min_cell}) to {w.loco_max:+.3f} "
                 f"(without {w.loco_max_cell})")
    return text


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in ("target", "predictor"):
        if col in out.columns:
            out[col] = out[col].map(C.label)
    return out


def _collapse(a: Analysis) -> str:
    if a.collapse_factors.empty and a.not_collapsed.empty:
        return ""
    out = [f"## 1b. Collapse rate and log FID without collapsed runs (the two-part view) {EXPLORATORY}",
           f"Collapse rule: {describe_rule(a.collapse_rule)}"
           + (f" (threshold FID {a.collapse_threshold:.2f})" if np.isfinite(a.collapse_threshold) else "")
           + ". The collapse rate is an outcome of its own (per configuration: exact Clopper-Pearson 95% interval; "
           "pooled over configurations: a bootstrap that resamples whole configurations); it is also a target in "
           "section 1 (collapse rate vs each signal at configuration level)."]
    if not a.collapse_factors.empty:
        out.append(markdown_table(a.collapse_factors))
    if not a.collapse_configs.empty and a.collapse_configs["collapsed"].sum() > 0:
        out.append("Configurations with a collapsed run:\n\n"
                   + markdown_table(a.collapse_configs.loc[a.collapse_configs["collapsed"] > 0]))
    n = a.not_collapsed
    if not n.empty:
        cols = [x for x in [*CORR_COLUMNS, "cells", "between_share", "note"] if x in n.columns]
        out.append("Log FID vs D-loss mean among runs that did not collapse (configuration means of those runs):\n\n"
                   + markdown_table(_labelled(n[cols])))
    return "\n\n".join(out)


def _yardstick(a: Analysis) -> str:
    if not a.yardstick:
        return ""
    from analysis.yardstick import render_yardstick_markdown

    return render_yardstick_markdown(a.yardstick, a.analysed, robustness=a.robustness,
                                     heading=f"## 1c. Yardstick: the extractor's real-vs-real floor {EXPLORATORY}").rstrip()


def _extractors(a: Analysis) -> str:
    """Several extractors' agreement, held-out FID, density/coverage: only where `gan-study rescore` or the
    evaluation wrote their columns."""
    from analysis.extractors import render_markdown

    return render_markdown(a.extractor_agreement, a.heldout_fid, a.quality, a.heldout_configs,
                           heading=f"## 1d. Feature extractors: agreement, held-out FID, density and coverage "
                                   f"{EXPLORATORY}")


def _memorisation(a: Analysis) -> str:
    if a.memorisation.empty:
        return ""
    from analysis.privacy import summary_line

    return "\n\n".join([
        f"## 1e. Memorisation against held-out real images {EXPLORATORY}",
        "Share of synthetic images closer to one of the N training-split reference images than the 1st (5th) "
        "percentile of held-out test images' distances to them, beside the held-out images' own share (thresholds "
        "from one half, share of the other): about 1% (5%) for a generator that does not copy. Flagged (1): the "
        "1st-percentile share exceeds 1% beyond chance (one-sided exact binomial p < 0.001). Feature space: the "
        "trial's extractor at its evaluation; pixels: `gan-study rescore`. " + summary_line(a.analysed) + ".",
        markdown_table(a.memorisation)])


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
