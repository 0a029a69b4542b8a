"""docs/findings.md's small-data levers section (issue #22), from the committed `results/small_data_cpu` alone.

The study's plan (search_spaces/small_data_cpu.yaml) declares a contrast family as its primary test: each lever
minus the baseline, at each training-set size (analysis/contrasts.py). This section prints that family with its
intervals, q-values, TOST and power, the declared secondary tests, what each lever's own signals did (ADA's p,
r_t, D's accuracy gap), and the published gains beside ours, labelled as measured on other data at another scale.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import columns as C
from analysis.confirm_markdown import render_confirmatory
from analysis.confirmatory import Confirmatory, factor_column, run_confirmatory
from analysis.extractors import render_study
from analysis.load import load_studies
from analysis.primary import factor_levels, named_factors, plan_status, recorded_trials
from analysis.tables import markdown_table
from trainers import metric_keys as mk
from trainers.layout import STUDY_FILE, TRIALS_FILE

LEVERS = "small_data_cpu"
DATA_LIMIT = C.cfg("data_limit")
# Issue #22's published figures: (our lever level, what was published, data and scale, FID before, FID after).
PUBLISHED = (
    ("diffaug", "DiffAugment, BigGAN, 10% of CIFAR-10 (Zhao et al. 2020)", 39.78, 22.40),
    ("lecam", "LeCam, BigGAN, 10% of ImageNet (Tseng et al. 2021)", 42.99, 27.51),
    # Ours adds G EMA to augmentation + LeCam; DiffAugment + consistency regularisation (18.70) has no lever here.
    ("diffaug_lecam_ema", "augmentation + LeCam, BigGAN, 10% of ImageNet (Tseng et al. 2021)", 42.99, 24.38),
    ("ada", "ADA, StyleGAN2, CIFAR-10 (Karras et al. 2020)", 3.78, 2.31),
)
SIGNALS = (("r_t (end)", mk.R_T_MEAN), ("D accuracy gap, train - held-out (end)", mk.D_ACC_GAP),
           ("D(x) - D(G(z)) (end)", C.D_GAP), ("ADA p (end)", mk.ADA_P), ("final FID", mk.FID),
           ("TSTR balanced accuracy", "tstr_balanced_accuracy"), ("memorisation share < p5", mk.MEMORISATION_SHARE_P5))


def levers_section(results: Path, *, n_resamples: int = 2000, seed: int = 0) -> tuple[list[str], Confirmatory | None]:
    """The section's markdown lines (a 'not started' line when the study has no committed results) and the
    contrast analysis they print (None without results)."""
    d = results / LEVERS
    head = ["## The small-data levers (pre-registered): do EMA, DiffAugment, ADA, R1 and LeCam lower FID on "
            "chest X-rays?", ""]
    if not (d / TRIALS_FILE).is_file():
        return head + [f"Not started: no committed results in `results/{LEVERS}`. The recipe: "
                       f"`gan-study run --space {LEVERS} --data ../shared/data/pneumoniamnist.npz --out "
                       f"runs/{LEVERS}`.", ""], None
    data = load_studies([d])
    status = plan_status(data.dirs, data.history)
    plan = status.plan
    if plan is None or not plan.contrast:
        return head + [f"Its results hold no recorded contrast plan ({status.why}): nothing here is confirmatory.",
                       ""], None
    doc = json.loads((d / STUDY_FILE).read_text())
    ended = data.analysed((mk.STATUS_FINISHED, mk.STATUS_DIVERGED))
    levels = factor_levels(data.dirs)
    conf = run_confirmatory(ended, data.history, plan, named=named_factors(data.dirs),
                            expected_trials=recorded_trials(data.dirs), n_resamples=n_resamples,
                            n_permutations=10_000, seed=seed, levels=levels)
    counts = ", ".join(f"{v} {k}" for k, v in data.trials[mk.STATUS].value_counts().sort_index().items())
    hours = (data.history[C.TIMESTAMP].max() - data.history[C.TIMESTAMP].min()) / 3600
    expected = conf.expected_trials if conf is not None else 0
    out = head + [
        f"Status: {status.status} ({status.why}). The plan, as recorded in `results/{LEVERS}/study.json` (SHA-256 "
        f"{str((doc.get('plan') or {}).get('sha256', '?'))[:12]}): {plan.describe()}; smallest effect of interest "
        f"{plan.smallest_effect:g} in log FID (FID x {math.exp(-plan.smallest_effect):.2f}). {plan.note}", "",
        "PneumoniaMNIST at 32 px, label-conditioned DCGAN, 1,500 iterations at batch 64; `data_limit` 0 is the whole "
        "training split (4,708 images), 500 a random 500 drawn from the seed. FID: domain extractor, N = 1,024, on "
        "the EMA generator where EMA is on.", "",
        f"Progress at this commit: {len(data.trials)} of {expected or '?'} trials have results ({counts}); "
        f"{hours:.1f} h of wall time from the first report to the last."
        + (f" Resume with `cp -r results/{LEVERS} runs/ && gan-study resume runs/{LEVERS}`." if expected and
           len(data.trials) < expected else ""), ""]
    if conf is None:
        return out + ["No contrast analysis: the plan's factor has no column in the results.", ""], None
    out += [render_confirmatory(conf, plan, heading="###"), ""]
    level = factor_column(ended, plan.contrast["factor"], named_factors(data.dirs), levels)
    out += _signals(ended, level)
    out += _ema_weight(ended)
    out += _published(conf)
    return out, conf


def extractor_agreement(results: Path, *, n_resamples: int = 2000, seed: int = 0) -> list[str]:
    """Do three domain extractors (seeds 0, 1, 2) rank the levers study's configurations alike? From the committed
    re-scored columns (`gan-study rescore ... --extractor domain --extractor-seed 1,2`); exploratory."""
    head = ["## Do the yardsticks agree? (exploratory, small-data levers study)", ""]
    d = results / LEVERS
    section = render_study([d], n_resamples=n_resamples, n_permutations=n_resamples, seed=seed,
                           heading="") if (d / TRIALS_FILE).is_file() else ""
    if not section:
        return head + [f"Not yet: `results/{LEVERS}` holds no re-scored columns. The recipe: `gan-study rescore "
                       f"runs/{LEVERS} --extractor domain --extractor-seed 1,2` before the study's generators are "
                       "gone, then export it.", ""]
    return head + ["The trials' FIDs use the domain extractor trained with seed 0; `gan-study rescore` re-scored every "
                   "finished trial's kept generator with the same architecture trained at seeds 1 and 2 (same "
                   "reference images, same N). Only the domain extractor has weights on the machines that ran this "
                   "(Inception, xrv and RAD-DINO weights cannot be downloaded there), so this is agreement between "
                   "training seeds of one extractor, not between extractors trained on different data; with "
                   "Inception, xrv or RAD-DINO weights a user runs the same command with `--extractor NAME`.",
                   "", section.strip(), ""]


def levers_in_short(conf: Confirmatory | None, delta: float = 0.35) -> str:
    """One paragraph for findings' "In short": what the levers did, per training-set size, in plain words."""
    if conf is None or conf.contrasts.empty:
        return "The small-data levers study has no results yet."
    prim = conf.contrasts.loc[conf.contrasts["family"] == "primary"]
    if conf.expected_trials and not conf.complete:
        return (f"The small-data levers study is under way ({conf.trials} of {conf.expected_trials} trials): its "
                "verdicts come when it is complete.")
    parts = []
    for within, rows in prim.groupby("within", sort=True):
        size = "all 4,708 training images" if within == "0" else f"{within} training images"
        lower = rows.loc[rows["verdict"] == "lower than the reference"]
        worse = rows.loc[rows["verdict"].str.startswith("against")]
        equiv = rows.loc[rows["verdict"].str.startswith("equivalent")]
        best = rows.loc[rows["diff"].idxmin()]
        named = ", ".join(f"{lvl} x{math.exp(d):.2f}" for lvl, d in zip(lower["level"], lower["diff"]))
        parts.append(
            f"with {size}, {len(lower)} of {len(rows)} levers lowered FID beyond doubt (Holm q <= 0.05"
            + (f": {named}" if named else "") + f"), {len(worse)} raised it (95% CI above 0), {len(equiv)} were equivalent to the baseline within "
            f"+-{delta:g} log FID and the rest inconclusive (lowest ratio: {best['level']}, FID x "
            f"{math.exp(best['diff']):.2f})")
    return (f"Small-data levers (pre-registered, {conf.trials} trials, conditional DCGAN on PneumoniaMNIST at 32 px): "
            + "; ".join(parts) + ". With 3 seeds a configuration, only large effects can be called.")


def _signals(t: pd.DataFrame, level: pd.Series | None) -> list[str]:
    """Per lever and size: the mean over seeds of each lever's own signals (descriptive, no test)."""
    if level is None:
        return []
    cols = [(name, c) for name, c in SIGNALS if c in t.columns and t[c].notna().any()]
    if not cols:
        return []
    g = t.assign(lever=level, images=t[DATA_LIMIT].map(lambda v: "all" if int(v) == 0 else str(int(v)))
                 ).groupby(["images", "lever"], sort=True)
    table = g[[c for _, c in cols]].mean().reset_index().rename(columns={c: name for name, c in cols})
    table.insert(2, "seeds", g.size().to_numpy())
    return ["What each lever did to D and to the other measures (means over seeds; descriptive, no test: the "
            "tests are above):", "", markdown_table(table), ""]


def _ema_weight(t: pd.DataFrame) -> list[str]:
    """How much of the EMA generator FID measured is still the snapshot taken at g_ema_start (exploratory: a
    property of the design's settings, computed from the trials' recorded config, not fitted to the results)."""
    cols = [C.cfg(k) for k in ("apply_g_ema", "g_ema_decay", "g_ema_start", "iterations")]
    if not all(c in t.columns for c in cols):
        return []
    ema = t.loc[t[cols[0]].fillna(False).astype(bool), cols[1:]].drop_duplicates()
    if len(ema) != 1:
        return []
    decay, start, iters = (float(v) for v in ema.iloc[0])
    steps = int(iters) - int(start)
    share = float(decay) ** steps
    return [f"Why EMA can raise FID here (exploratory, read from the recorded settings, not tested): the average "
            f"starts as a copy of G at iteration {int(start):,} and then moves by {1 - float(decay):g} per step, so "
            f"after the remaining {steps:,} iterations {share:.0%} of the EMA generator that FID measured is still "
            f"G as it was at iteration {int(start):,}: the averaging window, about {1 / (1 - float(decay)):,.0f} steps, is "
            f"longer than the steps left to fill it. open-mmlab/mmagic's BigGAN configs average with decay 0.9999 "
            f"from iteration 1,000 (CIFAR-10) or 20,000 (ImageNet). This study's EMA result is about "
            f"these settings, chosen before the data; it does not say EMA fails on chest X-rays.", ""]


def _published(conf) -> list[str]:
    fam = conf.contrasts
    if fam.empty:
        return []
    prim = fam.loc[(fam["family"] == "primary")]
    rows = []
    for lever, what, before, after in PUBLISHED:
        mine = prim.loc[prim["level"] == lever].set_index("within")
        for within, label in (("500", "500 images"), ("0", "all 4,708")):
            if within in mine.index:
                r = mine.loc[within]
                rows.append({"published": what, "published log-FID change": math.log(after / before),
                             "ours": f"{lever}, {label}", "our log-FID change": r["diff"],
                             "our 95% CI": f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
                             "our FID ratio": float(np.exp(r["diff"]))})
    if not rows:
        return []
    return ["Published gains beside ours, as log-FID changes (log of the FID ratio, so scales compare): measured "
            "on other data (CIFAR-10, ImageNet), other architectures (BigGAN, StyleGAN2), the Inception extractor "
            "and ~100x our training length; ours is a 32 px DCGAN on chest X-rays with the domain extractor. "
            "Direction and rough size are what can be compared, not the values.", "",
            markdown_table(pd.DataFrame(rows)), ""]
