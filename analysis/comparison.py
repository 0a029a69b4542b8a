"""Each seed paper's claims beside this project's measurements, with a verdict per claim.

Verdicts (analysis.verdicts): **direction reproduced** (our 95% CI lies on the paper's side of the null
and the test's q, or p, is <= 0.05; with the paper's value, **magnitude consistent** or **differs**),
**contradicted** (the other side), **inconclusive** (the CI includes the null, or q > 0.05: a null
result, reported as such) and **not comparable** (measured differently: e.g. FID with another extractor,
so values cannot be set side by side; rankings and directions can). Every interval keeps a configuration's seeds together: means over
trials resample whole configurations, factor effects compare matched configurations (analysis.paired).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from analysis import columns as C
from analysis import reference as ref
from analysis.groups import configuration_codes, is_pooled
from analysis.downstream import SEED001_GAIN_POINTS, baseline_values
from analysis.paired import paired_difference, seed_difference
from analysis.stats import bootstrap_mean, t_interval
from analysis.verdicts import is_reproduced, verdict  # noqa: F401 - re-exported for findings
from trainers import metric_keys as mk

ALWAYS_PNEUMONIA = 390 / 624  # accuracy of answering "pneumonia" on the official test split
HEADER = "| claim | paper | ours (95% CI) | verdict | why |\n|---|---|---|---|---|"


def fmt(value: float, lo: float = math.nan, hi: float = math.nan, digits: int = 3) -> str:
    if not math.isfinite(value):
        return "n/a"
    body = f"{value:.{digits}f}"
    return body + (f" [{lo:.{digits}f}, {hi:.{digits}f}]" if math.isfinite(lo) and math.isfinite(hi) else "")


def row(claim: str, paper: str, ours: str, verdict_why: tuple[str, str]) -> str:
    v, why = verdict_why
    return f"| {claim} | {paper} | {ours} | **{v}** | {why} |"


def trial_mean(trials: pd.DataFrame, column: str, n_resamples: int, seed: int = 0) -> tuple[float, float, float]:
    """Mean over trials with a CI that resamples whole configurations (a t-interval over seeds for one)."""
    sub = trials.loc[trials[column].notna()] if column in trials.columns else trials.iloc[:0]
    if sub.empty:
        return math.nan, math.nan, math.nan
    codes = configuration_codes(sub)
    v = sub[column].to_numpy(float)
    if len(set(codes)) == 1 and len(v) > 1:
        return t_interval(v)  # one configuration: its seeds are the replicates of the claim being judged
    return bootstrap_mean(v, clusters=codes, n_resamples=n_resamples, seed=seed)


def _measured_with(trials: pd.DataFrame) -> str:
    if mk.EVAL_EXTRACTOR not in trials.columns or trials[mk.EVAL_EXTRACTOR].isna().all():
        return "no FID recorded"
    ex = ", ".join(sorted(trials[mk.EVAL_EXTRACTOR].dropna().astype(str).unique()))
    n = ", ".join(str(int(v)) for v in sorted(trials[mk.EVAL_N].dropna().unique())) if mk.EVAL_N in trials else "?"
    return f"{ex}, N = {n}"


# ---------------------------------------------------------------------------------------------- papers
def belmekki2022(t: pd.DataFrame, a, scale: str, n: int) -> list[str]:
    rows = []
    planned = getattr(a, "planned", pd.DataFrame())
    status = getattr(a, "plan", None)
    label = "primary test, pre-registered" if status is not None and status.primary else "the plan's test, post hoc"
    for _, p in planned.iterrows():
        rows.append(row(f"D-loss mean is inversely correlated with {C.label(p['target'])} ({p['group']}; {label}; "
                        f"{p['controls']})", "r = -0.90 over 4 runs (p ~ 0.10; r ~ +0.03 without its failed run)",
                        f"r = {fmt(p['r'], p.get('ci_low', math.nan), p.get('ci_high', math.nan), 2)} over "
                        f"{int(p['n_configs'])} configurations, p = {p.get('p_perm', math.nan):.3g}, "
                        f"q = {p.get('q', math.nan):.3g}", (p.get("verdict", "not comparable"), p.get("why", ""))))
    c = a.correlations
    if not c.empty and "control_kind" in c.columns:  # the exploratory view: log FID, plain and within cells
        key = c.loc[(c.level == "config") & (c.target == C.LOG_FID) & (c.predictor == mk.D_LOSS_MEAN)
                    & (c.method == "pearson") & c.control_kind.isin(["", "cells"]) & ~c.group.map(is_pooled)]
        for _, p in key.iterrows():
            where = "within " + p["cells"] if p["control_kind"] == "cells" else "across configurations"
            rows.append(row(f"D-loss mean is inversely correlated with log FID ({p['group']}; {where}; exploratory)",
                            "r = -0.90 over 4 runs (raw FID, no cells)",
                            f"r = {fmt(p['r'], p['ci_low'], p['ci_high'], 2)}, p = {p['p_perm']:.3g}, q = "
                            f"{p.get('q', math.nan):.3g}",
                            verdict(p["ci_low"], p["ci_high"], -1, p=p["p_perm"], q=p.get("q", math.nan),
                                    paper=-0.90)))
    if planned.empty and (c.empty or "control_kind" not in c.columns):
        rows.append(row("D-loss mean is inversely correlated with FID", "r = -0.90 over 4 runs", "n/a",
                        ("not comparable", "no configuration-level FID vs D-loss test could be computed")))
    factors = {"optimizer": C.cfg("optimizer"), "activation": C.cfg("g_activation"), "ttur": C.cfg("ttur"),
               "batch": C.cfg("batch_size")}
    pair_on = [c for c in factors.values() if c in t.columns and t[c].nunique() > 1]
    claims = (  # (claim, paper text, factor column, level a, level b, metric, expected sign of b - a)
        ("AdaS gives lower FID than Adam", "104.6 vs 238.3 (ELU, no TTUR)", factors["optimizer"], "adam", "adas",
         mk.FID, -1),
        ("ELU gives lower FID than ReLU/LeakyReLU", "104.6 vs 111.9 (AdaS, no TTUR)", factors["activation"], "relu",
         "elu", mk.FID, -1),
        ("TTUR lowers FID", "100.6 vs 104.6 (AdaS, ELU)", factors["ttur"], False, True, mk.FID, -1),
    )
    for claim, paper_text, col, lev_a, lev_b, metric, sign in claims:
        rows.append(_factor_row(t, claim, paper_text, col, lev_a, lev_b, metric, sign, pair_on, n))
    if factors["batch"] in t.columns and t[factors["batch"]].nunique() > 1:
        lo_b, hi_b = sorted(t[factors["batch"]].unique())[:2]
        rows.append(_factor_row(t, f"a larger batch lengthens T0 ({hi_b} vs {lo_b} here)",
                                "batch 256 lengthened T0 with Adam; 128 worked", factors["batch"], lo_b, hi_b,
                                mk.T0, +1, pair_on, n))
    rows.append(row("Table I FID values (Inception FID)", "100.6-238.3",
                    f"measured with {_measured_with(t)}",
                    ("not comparable", "a different feature extractor and sample count: compare rankings "
                     "and directions (rows above), never values")))
    return rows


def acgan_tstr(t: pd.DataFrame, a, scale: str, n: int) -> list[str]:
    rows = []
    for loss, sub in t.groupby(C.cfg("loss")) if C.cfg("loss") in t.columns else [("", t)]:
        m, lo, hi = trial_mean(sub, C.TSTR_ACCURACY, n)
        rows.append(row(f"a classifier trained only on ACGAN images ({loss}) reaches accuracy 0.85 on real test "
                        "images", "0.85 (VGG-16, 30,000 synthetic images, 64 px)", fmt(m, lo, hi),
                        verdict(lo, hi, +1, null=0.85) if scale == "gpu" else _weaker(lo, hi, 0.85)))
        rows.append(row(f"synthetic images ({loss}) carry class information", "implied by 0.85",
                        fmt(m, lo, hi), verdict(lo, hi, +1, null=ALWAYS_PNEUMONIA)))
    m, lo, hi = t_interval(baseline_values(t, C.TRTR_ACCURACY))
    rows.append(row("the same classifier trained on real images (TRTR, reference)", "not reported",
                    fmt(m, lo, hi), ("not comparable", "the baseline TSTR is judged against, not a claim")))
    return rows


def minority_augmentation(t: pd.DataFrame, a, scale: str, n: int) -> list[str]:
    rows = []
    col = C.cfg("augment_samples")
    groups = t.groupby(col) if col in t.columns else [("", t)]
    for k, sub in groups:
        m, lo, hi = trial_mean(sub, mk.AUGMENT_GAIN, n)
        paper = (f"+{SEED001_GAIN_POINTS / 100:.4f} (71.31% -> 74.68%, 2,000 images)" if k in (2000, "")
                 else "not reported")
        rows.append(row(f"adding {k} synthetic NORMAL images raises test accuracy", paper, fmt(m, lo, hi, 4),
                        verdict(lo, hi, +1)))
    m, lo, hi = t_interval(baseline_values(t, C.TRTR_ACCURACY))
    rows.append(row("accuracy without synthetic images (TRTR)", "0.7131", fmt(m, lo, hi),
                    ("not comparable", "a different classifier and resolution")))
    return rows


def dcgan_training(t: pd.DataFrame, a, scale: str, n: int) -> list[str]:
    rows = []
    finals = {mk.LOSS_D: 1.2223, mk.LOSS_G: 2.1597, mk.D_X: 0.6463, mk.D_G_Z: 0.0906}
    for key, paper in finals.items():
        m, lo, hi = trial_mean(t, key, n)
        rows.append(row(f"final {C.label(key)}", f"{paper}", fmt(m, lo, hi),
                        ("not comparable", "a single snapshot of one run with other data and length; the "
                         "directions below are the testable part")))
    if {mk.D_X, mk.D_G_Z} <= set(t.columns):
        gap = t.assign(_gap=t[mk.D_X] - t[mk.D_G_Z])
        m, lo, hi = trial_mean(gap, "_gap", n)
        rows.append(row("at the end D still scores real images above fakes: D(x) - D(G(z)) > 0",
                        f"{0.6463 - 0.0906:.4f}", fmt(m, lo, hi), verdict(lo, hi, +1)))
    if {mk.LOSS_D, mk.LOSS_G} <= set(t.columns):
        gap = t.assign(_gap=t[mk.LOSS_G] - t[mk.LOSS_D])
        m, lo, hi = trial_mean(gap, "_gap", n)
        rows.append(row("the G loss ends above the D loss", f"{2.1597 - 1.2223:.4f}", fmt(m, lo, hi),
                        verdict(lo, hi, +1)))
    return rows


def upsample_dcgan(t: pd.DataFrame, a, scale: str, n: int) -> list[str]:
    col = C.cfg("g_upsample")
    rows = [row("FID of the upsample+conv generator", "1.289 (768-d Inception features)",
                f"measured with {_measured_with(t)}",
                ("not comparable", "FID's scale depends on the feature layer and N: values never compare"))]
    if col in t.columns and t[col].nunique() > 1:
        rows.append(_factor_row(t, "upsample+conv gives lower FID than transposed convolutions", "implied",
                                col, "transpose", "upsample_conv", mk.FID, -1, [col], n))
    return rows


def _factor_row(t: pd.DataFrame, claim: str, paper: str, col: str, a_level, b_level, metric: str, sign: int,
                pair_on: list[str], n: int) -> str:
    if col not in t.columns or metric not in t.columns:
        return row(claim, paper, "n/a", ("not comparable", f"the study did not vary {col} or record {metric}"))
    res = paired_difference(t, col, a_level, b_level, metric, pair_on=pair_on, n_resamples=n)
    if not res["n_pairs"]:
        return row(claim, paper, "n/a", ("not comparable", f"no matched configurations at {col} = {a_level}/{b_level}"))
    if res["n_pairs"] == 1:  # one configuration per level (nothing else varies): its seeds are the replicates
        res = seed_difference(t, col, a_level, b_level, metric)
        if not res["n_pairs"]:
            return row(claim, paper, "n/a", ("not comparable", f"one configuration per level and fewer than 2 "
                                                               f"seeds ({res['n_b']} vs {res['n_a']})"))
        ours = (f"{C.label(metric)} {res['mean_b']:.3g} vs {res['mean_a']:.3g}; difference "
                f"{fmt(res['diff'], res['ci_low'], res['ci_high'])} over seeds ({res['n_b']} vs {res['n_a']}, "
                f"one configuration per level: Welch t), p = {res['p']:.3g}")
        return row(claim, paper, ours, verdict(res["ci_low"], res["ci_high"], sign, p=res["p"]))
    ours = (f"{C.label(metric)} {res['mean_b']:.3g} vs {res['mean_a']:.3g} (all matched configurations); difference "
            f"{fmt(res['diff'], res['ci_low'], res['ci_high'])} over {res['n_pairs']} matched configuration "
            f"pairs, p = {res['p']:.3g}")
    return row(claim, paper, ours, verdict(res["ci_low"], res["ci_high"], sign, p=res["p"]))


def _weaker(lo: float, hi: float, target: float) -> tuple[str, str]:
    v, why = verdict(lo, hi, +1, null=target)
    if is_reproduced(v) or v == "not comparable":
        return v, why
    return "not comparable", (f"cpu scale is a weaker setting (small CNN, fewer synthetic images, 32 px); "
                              f"our CI {'is below' if v == 'contradicted' else 'includes'} {target}")


COMPARATORS: dict[str, Callable] = {"belmekki2022": belmekki2022, "acgan_tstr": acgan_tstr,
                                    "minority_augmentation": minority_augmentation,
                                    "dcgan_training": dcgan_training, "upsample_dcgan": upsample_dcgan}
SEEDS = {"acgan_tstr": "000", "minority_augmentation": "001", "belmekki2022": "002", "dcgan_training": "003",
         "upsample_dcgan": "004"}


def compare(paper: str, a, *, scale: str, n_resamples: int = 2000) -> str:
    """comparison.md for one paper from an `analysis.pipeline.Analysis` of its study."""
    t = a.analysed
    counts = ", ".join(f"{k} {v}" for k, v in a.data.status_counts().items()) or "none"
    lines = [f"# Seed {SEEDS[paper]} ({paper}) reproduced at {scale} scale", "",
             f"Study: {', '.join(a.data.names)}; trials: {counts}; analysed: {len(t)} finished trials in "
             f"{t.groupby(_config_cols(t), dropna=False).ngroups if len(t) else 0} configurations.",
             f"FID measured with: {_measured_with(t)}." if len(t) else "", _cost(a.data), ""]
    if scale == "smoke":
        lines += ["**Smoke scale: procedural phantom images at toy size. A pipeline check, not evidence.**", ""]
    lines += ["Verdicts: direction reproduced / contradicted (95% CI excludes the null on the paper's / the other "
              "side and the test's q, else p, is <= 0.05; with the paper's value also magnitude consistent / "
              "differs: the CI includes it or not), inconclusive (CI includes the null, or q > 0.05), not "
              "comparable (measured differently). Intervals resample whole configurations (seeds kept "
              "together).", "", HEADER]
    lines += COMPARATORS[paper](t, a, scale, n_resamples) if len(t) else [
        row("every claim", "", "n/a", ("not comparable", "no finished trial"))]
    if paper == "belmekki2022":
        lines += ["", "Seed 002's own Table I, re-analysed (n = 4 runs):", "",
                  "| subset | r (D-loss mean vs FID) | exact permutation p |", "|---|---|---|"]
        rc = ref.reference_correlations(n_permutations=200)
        for _, r in rc.loc[rc["predictor"] == mk.D_LOSS_MEAN].iterrows():
            lines.append(f"| {r['subset']} | {r['r']:.4f} | {r['p_perm_exact']:.3f} |")
    if a.notes:
        lines += ["", "Notes:", *[f"- {note}" for note in a.notes]]
    return "\n".join(lines) + "\n"


def _cost(data) -> str:
    """Wall time (first to last report the driver received; pauses between sessions included) and the
    trials' own time, so a reader knows what reproducing this costs."""
    h, t = data.history, data.trials
    parts = []
    if C.TIMESTAMP in h.columns and h[C.TIMESTAMP].notna().any():
        parts.append(f"wall time {(h[C.TIMESTAMP].max() - h[C.TIMESTAMP].min()) / 3600:.2f} h from the first report "
                     "to the last")
    if mk.WALL_S in t.columns and t[mk.WALL_S].notna().any():
        parts.append(f"trial time {t[mk.WALL_S].sum() / 3600:.2f} h summed over trials")
    return f"Cost: {'; '.join(parts)}." if parts else ""


def _config_cols(t: pd.DataFrame) -> list[str]:
    return [c for c in C.config_columns(t.columns) if c not in C.NOT_CONFIGURATION] or [C.TRIAL_ID]



