"""docs/findings.md, generated from the committed reference results (results/<study>/) and nothing else.

`python3 -m analysis.findings` rewrites it; tests/test_findings.py regenerates it and fails when the
committed document differs, so no number in it can drift from the data. Every interval and p-value
keeps a configuration's seeds together (docs/STATISTICS.md); the tests of this document form one
family for Benjamini-Hochberg q-values. The committed belmekki2022_cpu study is the pilot: no analysis
plan was recorded before it ran, so every test of it is exploratory (analysis.primary says why, from
its study.json); the plan it suggested is pre-registered in search_spaces/belmekki2022_cpu.yaml.
"""
from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import columns as C
from analysis import reference as ref
from analysis.cells import between_share, design_cells, leave_one_cell_out, within_cells
from analysis.collapse import DEFAULT_RULE, collapse_by_factor, collapse_flags, describe_rule
from analysis.confirm import confirmatory_test, power as design_power
from analysis.confirm_markdown import render_confirmatory
from analysis.confirmatory import Confirmatory, run_confirmatory
from analysis.comparison import COMPARATORS, HEADER, fmt, trial_mean, verdict
from analysis.downstream import SEED001_GAIN_POINTS, baseline_values
from analysis.family import drop_duplicate_tests
from analysis.findings_levers import extractor_agreement, levers_in_short, levers_section
from analysis.groups import at_level
from analysis.load import load_studies
from analysis.primary import named_factors, plan_status, recorded_trials
from analysis.proxy import early_proxy as proxy_study, render_proxy_markdown
from analysis.verdicts import is_reproduced
from analysis.multiplicity import bh_qvalues
from analysis.paired import paired_difference
from analysis.stats import corr_test, t_interval
from trainers import metric_keys as mk
from trainers.layout import STUDY_FILE, TRIALS_FILE

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
FINDINGS = REPO / "docs" / "findings.md"
B22 = "belmekki2022_cpu"
CONFIRM = "dloss_fid_confirm_cpu"  # the pre-registered confirmatory study (search_spaces/dloss_fid_confirm_cpu.yaml)
N_RESAMPLES, SEED = 2000, 0
OPT, ACT, TTUR, BATCH = C.cfg("optimizer"), C.cfg("g_activation"), C.cfg("ttur"), C.cfg("batch_size")
FACTORS = {"optimizer": (OPT, "adam", "adas"), "activation": (ACT, "relu", "elu"), "TTUR": (TTUR, False, True),
           "batch size": (BATCH, 64, 128)}
FACTOR_COLUMNS = (OPT, ACT, TTUR, BATCH)
PROXY_FRACTIONS = (0.10, 0.25)


def load(study: str = B22, results: Path = RESULTS) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(trials, history, study.json) of one committed study."""
    data = load_studies([results / study])
    spec = json.loads((results / study / STUDY_FILE).read_text())
    spec["plan_status"] = plan_status(data.dirs, data.history)
    return data.trials, data.history, spec


def config_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Seed 002's Table I layout: one row per configuration, seeds averaged; FID mean, median and range.

    No interval per configuration: with 3 seeds and collapsed runs among them it would say nothing.
    """
    rows = []
    for key, g in trials.groupby([OPT, ACT, TTUR, BATCH], sort=True):
        fid = g[mk.FID].dropna().to_numpy(float)
        rows.append({"optimizer": key[0], "activation": key[1], "TTUR": "on" if key[2] else "off", "batch": key[3],
                     "seeds": len(g), "ended": ", ".join(f"{k} {v}" for k, v in g[mk.STATUS].value_counts().items()),
                     "d_loss_mean": g[mk.D_LOSS_MEAN].mean(), "d_loss_var": g[mk.D_LOSS_VAR].mean(),
                     "d_loss_std": g[mk.D_LOSS_STD].mean(), "fid": fid.mean() if len(fid) else math.nan,
                     "fid_median": float(np.median(fid)) if len(fid) else math.nan, "fid_min": fid.min() if len(fid) else math.nan,
                     "fid_max": fid.max() if len(fid) else math.nan, "t0": g[mk.T0].mean()})
    return pd.DataFrame(rows)


def config_corr(trials: pd.DataFrame, x: str, y: str, *, method: str = "pearson", cells: bool = False):
    """Correlation of configuration means (seeds averaged): the configuration is the unit.

    `cells`: within design cells (analysis.cells: the factors that explain x, crossed), with the share of
    the association between cells and leave-one-cell-out r as attributes of the result.
    """
    conf = at_level(trials, "config", [x, y]).dropna(subset=[x, y]).reset_index(drop=True)
    design = design_cells(conf, list(FACTOR_COLUMNS), x) if cells else None
    kw = {"method": method, "n_resamples": N_RESAMPLES, "n_permutations": N_RESAMPLES, "seed": SEED}
    res = corr_test(conf[x], conf[y], **kw) if design is None else within_cells(conf[x], conf[y], design, **kw)
    res.cells = design
    if design is not None:
        res.between = between_share(conf[x], conf[y], design.labels, method)
        res.loco = leave_one_cell_out(conf[x], conf[y], design.labels, method)
    return res


def trial_within_configurations(trials: pd.DataFrame, x: str, y: str):
    """r across seeds within configurations (configuration fixed effects; seeds permuted within them)."""
    t = trials.dropna(subset=[x, y]).reset_index(drop=True)
    design = design_cells(t, list(FACTOR_COLUMNS), x, level="trial")
    return within_cells(t[x], t[y], design, n_resamples=N_RESAMPLES, n_permutations=N_RESAMPLES, seed=SEED)


def variance_share(trials: pd.DataFrame, column: str) -> float:  # noqa: D401
    """Share of a metric's variance between configurations (one-way ANOVA ICC estimate over seeds)."""
    key = [OPT, ACT, TTUR, BATCH]
    g = trials.dropna(subset=[column]).groupby(key)[column]
    n = g.size().mean()
    within = g.var(ddof=1).mean()
    between = g.mean().var(ddof=1) - within / n
    return float(max(between, 0.0) / (max(between, 0.0) + within))


def render(results: Path = RESULTS) -> str:
    """The whole findings document as markdown."""
    trials, history, spec = load(B22, results)
    spec["wall_hours"] = (history[C.TIMESTAMP].max() - history[C.TIMESTAMP].min()) / 3600
    ended = trials.loc[trials[mk.STATUS].isin([mk.STATUS_FINISHED, mk.STATUS_DIVERGED])]
    finished = trials.loc[trials[mk.STATUS] == mk.STATUS_FINISHED]
    table = config_table(ended)
    flags, threshold = collapse_flags(finished, DEFAULT_RULE)
    kept = finished.loc[~flags.astype(bool)]
    won = finished[mk.T0_CENSORED].fillna(False).astype(bool)
    tests = [
        ("FID vs D-loss mean (Pearson; the pilot's headline)", config_corr(finished, mk.D_LOSS_MEAN, mk.FID)),
        ("FID vs D-loss mean, within design cells", config_corr(finished, mk.D_LOSS_MEAN, mk.FID, cells=True)),
        ("log FID vs D-loss mean", config_corr(finished, mk.D_LOSS_MEAN, C.LOG_FID)),
        ("log FID vs D-loss mean, within design cells",
         config_corr(finished, mk.D_LOSS_MEAN, C.LOG_FID, cells=True)),
        (f"log FID vs D-loss mean, within design cells, without the {int(flags.astype(bool).sum())} collapsed runs",
         config_corr(kept, mk.D_LOSS_MEAN, C.LOG_FID, cells=True)),
        ("log FID vs D-loss mean, seeds within configurations (trial level, 16 configuration fixed effects)",
         trial_within_configurations(finished, mk.D_LOSS_MEAN, C.LOG_FID)),
        ("FID vs D-loss mean, with diverged runs included", config_corr(ended, mk.D_LOSS_MEAN, mk.FID)),
        (f"FID vs D-loss mean, without the {int(won.sum())} runs whose D won throughout (T0 censored)",
         config_corr(finished.loc[~won], mk.D_LOSS_MEAN, mk.FID)),
        ("log KID vs D-loss mean", config_corr(finished, mk.D_LOSS_MEAN, C.LOG_KID)),
        ("FID vs D-loss mean, Spearman (ranks)", config_corr(finished, mk.D_LOSS_MEAN, mk.FID, method="spearman")),
    ]
    tests, dropped = _unique(tests)
    proxies = [proxy_study(finished, history, f, factors=list(FACTOR_COLUMNS), outcome=outcome,
                           n_resamples=N_RESAMPLES, seed=SEED)
               for outcome in (C.LOG_FID, mk.FID) for f in PROXY_FRACTIONS]
    effects = {name: {metric: paired_difference(finished, col, a, b, metric, pair_on=list(FACTOR_COLUMNS),
                                                n_resamples=N_RESAMPLES, seed=SEED)
                      for metric in (C.LOG_FID, mk.FID)}
               for name, (col, a, b) in FACTORS.items()}
    t0 = paired_difference(ended, BATCH, 64, 128, mk.T0, pair_on=list(FACTOR_COLUMNS), n_resamples=N_RESAMPLES,
                           seed=SEED)
    ps = [r.p_perm for _, r in tests] + [p.corr.p_perm for p in proxies] \
        + [e[m]["p"] for e in effects.values() for m in (C.LOG_FID, mk.FID)] + [t0["p"]]
    q = iter(bh_qvalues(ps))
    tests = [(name, res, next(q)) for name, res in tests]
    proxy_q = [next(q) for _ in proxies]
    for e in effects.values():
        for m in (C.LOG_FID, mk.FID):
            e[m]["q"] = next(q)
    t0["q"] = next(q)
    confirm_lines, confirm = _confirmatory(results)
    lever_lines, levers = levers_section(results, n_resamples=N_RESAMPLES, seed=SEED)
    review = _review(finished)
    out: list[str] = ["# Findings: does the discriminator loss predict FID on real chest X-rays?", "",
                      "Generated by `python3 -m analysis.findings` from the committed results in `results/`; "
                      "`tests/test_findings.py` fails if any number here differs from what the data give.", ""]
    out += _summary(confirm, review)
    out += [levers_in_short(levers), ""]
    out += confirm_lines
    out += lever_lines
    out += extractor_agreement(results, n_resamples=N_RESAMPLES, seed=SEED)
    out += _header(trials, spec, len(ps))
    out += _table1(table)
    out += _headline(tests, dropped, threshold)
    out += _review_lines(review)
    out += _collapse(finished, flags, threshold)
    out += _proxy(proxies, proxy_q)
    out += _factors(effects, t0, table)
    out += _downstream(results)
    out += _seeds_003_004(results)
    out += _yardstick(results)
    out += _surprises(trials, finished, table, tests, effects)
    return "\n".join(out) + "\n"


def _confirmatory(results: Path) -> tuple[list[str], Confirmatory | None]:
    """The pre-registered confirmatory study's section, from its committed results (interim until complete)."""
    d = results / CONFIRM
    head = ["## The confirmatory study (pre-registered): does the D loss predict FID within design cells?", ""]
    if not (d / TRIALS_FILE).is_file():
        return head + [f"Not started: no committed results in `results/{CONFIRM}`. Its space "
                       f"(`search_spaces/{CONFIRM}.yaml`) carries the plan; `gan-study run` records it first.", ""], None
    data = load_studies([d])
    status = plan_status(data.dirs, data.history)
    plan = status.plan
    if plan is None:
        return head + [f"Its results hold no recorded plan ({status.why}): nothing here is confirmatory.", ""], None
    doc = json.loads((d / STUDY_FILE).read_text())
    design = doc.get("design") or {}
    ended = data.analysed((mk.STATUS_FINISHED, mk.STATUS_DIVERGED))
    conf = run_confirmatory(ended, data.history, plan, named=named_factors(data.dirs),
                            expected_trials=recorded_trials(data.dirs), n_resamples=N_RESAMPLES,
                            n_permutations=10_000, seed=SEED)
    space = doc.get("space_resolved", {}).get("design") or {}
    excl = "; ".join(f"`{e['study']}` ({e['trials']} trials): {e['repeated_pairs']} repeated (configuration, seed) "
                     f"pairs, {e['configurations_reused']} of its configurations reused"
                     for e in design.get("excludes", [])) or "none"
    counts = ", ".join(f"{v} {k}" for k, v in data.trials[mk.STATUS].value_counts().sort_index().items())
    seeds = sorted({s for c in design.get("configurations") or [] for s in c["seeds"]})
    hours = (data.history[C.TIMESTAMP].max() - data.history[C.TIMESTAMP].min()) / 3600
    lines = head + [
        f"Status: {status.status} ({status.why}). The plan, as recorded in `results/{CONFIRM}/study.json` "
        f"(SHA-256 {plan_hash_short(doc)}): {plan.describe()}; smallest effect of interest |r| = "
        f"{plan.smallest_effect:g}; collapse rule: {describe_rule(plan.collapse)}. {plan.note}", "",
        f"Design, recorded with the plan before the first trial: {len(design.get('configurations') or [])} "
        f"configurations drawn once by {space.get('method', '?')} (seed {space.get('seed', '?')}), "
        f"{space.get('per_cell', '?')} inside each of the cells {' x '.join(space.get('cells', []))}, each run "
        f"with seeds {', '.join(map(str, seeds))}: {design.get('trials', '?')} trials. Excluded earlier studies: "
        f"{excl}; so none of the pilot's data are in this test.", "",
        f"Progress at this commit: {len(data.trials)} of {design.get('trials', '?')} trials have results "
        f"({counts}); {hours:.1f} h of wall time from the first report to the last. Resume with "
        f"`cp -r results/{CONFIRM} runs/ && gan-study resume runs/{CONFIRM} --max-concurrent 2`, then "
        f"`python3 -m study.export_results runs/{CONFIRM} results/{CONFIRM}`.", "",
        render_confirmatory(conf, plan, heading="###") if conf is not None else "No confirmatory analysis: "
        "the plan names no cells.", ""]
    return lines, conf


def plan_hash_short(doc: dict) -> str:
    return str((doc.get("plan") or {}).get("sha256", "?"))[:12]


def _review(finished: pd.DataFrame) -> dict:
    """The pilot's within-cell result as the review recomputed it: per cell, without each cell, permuted within
    cells, with TTUR among the cells, and the power its seed noise allowed (analysis.confirm)."""
    t = finished.dropna(subset=[C.LOG_FID, mk.D_LOSS_MEAN]).copy()
    t["_config"] = t.groupby(list(FACTOR_COLUMNS)).ngroup()
    out = {}
    for name, cols in (("optimizer x activation", [OPT, ACT]), ("optimizer x activation x TTUR", [OPT, ACT, TTUR])):
        t["_cell"] = t[cols].astype(str).agg(" / ".join, axis=1)
        conf = t.groupby("_config").agg(x=(mk.D_LOSS_MEAN, "mean"), y=(C.LOG_FID, "mean"),
                                         cell=("_cell", "first")).reset_index()
        trial_frame = t.rename(columns={mk.D_LOSS_MEAN: "x", C.LOG_FID: "y", "_cell": "cell"})
        out[name] = confirmatory_test(conf, trial_frame, x="x", y="y", cell="cell", config="_config", sign=-1,
                                      alpha=0.05, smallest_effect=0.3, n_permutations=10_000, seed=SEED)
        xd = conf.x - conf.groupby("cell").x.transform("mean")
        yd = conf.y - conf.groupby("cell").y.transform("mean")
        out[name].share = (xd * yd).groupby(conf.cell).sum() / float((xd * yd).sum())
    main = out["optimizer x activation"]
    att = math.sqrt(main.reliability_x * main.reliability_y)
    out["power_05"] = design_power(0.5, main.df, alpha=0.05, sign=-1, attenuation=att)
    collapsed_cells = finished.loc[finished[mk.FID] > 10 * finished.groupby(list(FACTOR_COLUMNS))[mk.FID]
                                   .median().median()]
    keep = finished.drop(index=collapsed_cells.index)
    out["trial_without_collapsed"] = trial_within_configurations(keep, mk.D_LOSS_MEAN, C.LOG_FID)
    out["collapsed_where"] = ", ".join(f"{n} {o}/{a}" for (o, a), n in collapsed_cells.groupby([OPT, ACT]).size()
                                       .items())
    return out


def _review_lines(review: dict) -> list[str]:
    main, ttur = review["optimizer x activation"], review["optimizer x activation x TTUR"]
    rows = "\n".join(f"| {c['cell']} | {c['n']} | {c['r']:.3f} | {main.share[c['cell']]:.0%} | {c['loco_r']:.3f} |"
                     for c in main.per_cell)
    top = max(main.per_cell, key=lambda c: main.share[c["cell"]])
    w = review["trial_without_collapsed"]
    return [
        "### The pilot's within-cell result, as a reviewer recomputed it (exploratory)", "",
        "The same log FID vs D-loss mean within the optimizer x activation cells, taken apart (analysis.confirm: "
        "the within-cell r is the Pearson r of cell-demeaned configuration means; 'share' is the cell's part of "
        "the within-cell cross-product; 'without it' is the within-cell r of the other cells):", "",
        "| cell | configurations | r in the cell | share | within-cell r without it |", "|---|---|---|---|---|", rows, "",
        f"- **One cell carries it.** {top['cell']} holds {main.share[top['cell']]:.0%} of the within-cell "
        f"cross-product (r = {top['r']:.3f} over its {top['n']} configurations); without it "
        f"the within-cell r is {top['loco_r']:.3f}. Cells with the predicted negative sign: {main.sign_consistent} of "
        f"{main.cells_with_r}.",
        f"- **Permuting within cells** (configurations trade places only inside their cell, so a noisy cell's "
        f"residuals never move into a quiet one): one-sided p = {main.p_perm:.4f} ({main.perm_kind}); Fisher interval "
        f"with {main.df} df [{main.ci_low:.3f}, {main.ci_high:.3f}]. With TTUR among the cells "
        f"({ttur.k} cells of {ttur.n // ttur.k} configurations): r = {ttur.r:.3f}, interval with {ttur.df} df "
        f"[{ttur.ci_low:.3f}, {ttur.ci_high:.3f}] (the exact permutation p, {ttur.p_perm:.4f}, has only "
        f"2^{ttur.k} arrangements).",
        f"- **Reliability within cells**: a 3-seed mean of log FID has reliability {main.reliability_y:.2f} inside a "
        f"cell (one seed's ICC {main.icc_y:.2f}); the across-configuration figure further down mixes in the cells' "
        f"differences. So the pilot's power for a true within-cell r of -0.5 was {review['power_05']:.2f} (for "
        f"-0.3: {main.power:.2f}): at this reliability even a large within-cell r is weak evidence.",
        f"- **The trial-level row** (seeds within configurations) draws its direction from the collapsed runs "
        f"({review['collapsed_where']}): without them r = {w.r:.3f} [{w.ci_low:.3f}, {w.ci_high:.3f}]. The rows "
        "'without the collapsed runs' select on the outcome (collapse is defined by FID), so they are descriptive, "
        "not tests of the claim.", ""]


def _summary(confirm: Confirmatory | None, review: dict) -> list[str]:
    """What a researcher should conclude, in plain language, from the data as they stand."""
    main = review["optimizer x activation"]
    top = max(main.per_cell, key=lambda c: main.share[c["cell"]])
    pilot = (f"The pilot (48 trials, exploratory) found log FID falling as the D-loss mean rises within its design "
             f"cells (r = {main.r:.2f}), but one cell ({top['cell']}) carries {main.share[top['cell']]:.0%} of that "
             f"association (without it r = {top['loco_r']:.2f}) and its design had power {review['power_05']:.2f} "
             "for a true r of -0.5.")
    if confirm is None or confirm.primary is None:
        now = "The pre-registered confirmatory study has no results yet."
    elif not confirm.complete:
        p = confirm.primary
        now = (f"The pre-registered confirmatory study is under way: {confirm.trials} of {confirm.expected_trials} "
               f"trials are in, and the plan draws its verdict only when all are (at this point the within-cell "
               f"r is {p.r:.2f} over {p.n} configurations: a progress check, not an answer).")
    else:
        p = confirm.primary
        now = (f"The pre-registered confirmatory study ({confirm.trials} trials, {p.n} configurations in {p.k} cells, "
               f"new seeds and configurations) gives a within-cell r of {p.r:.2f} [{p.ci_low:.2f}, {p.ci_high:.2f}], "
               f"permutation p = {p.p_perm:.3g}: **{p.verdict}**.")
    advice = ("Until it is complete, do not use the D loss to rank or stop GAN configurations on chest X-rays: "
              "the evidence for it is one design cell of one exploratory study."
              if confirm is None or confirm.primary is None or not confirm.complete else
              {"confirmed": "Within a design cell the D-loss mean ranks configurations by FID better than chance; "
                            "across cells (other optimizers or activations) it does not carry over.",
               "not confirmed, equivalent to no effect of interest":
                   "Within design cells the D-loss mean does not predict FID to any useful degree: measure FID.",
               }.get(confirm.primary.verdict, "The study cannot tell: measure FID, and treat the D loss as unproven."))
    return ["## In short", "", pilot, "", now, "", advice, ""]


def _unique(tests: list[tuple[str, object]]) -> tuple[list[tuple[str, object]], list[str]]:
    """Drop a sensitivity test identical to an earlier one (e.g. 'diverged included' when none diverged)."""
    family = pd.DataFrame({"section": "findings", "test": [n for n, _ in tests], "group": "bce",
                           "n": [r.n for _, r in tests], "n_configs": [r.n_configs for _, r in tests],
                           "statistic": "r", "value": [r.r for _, r in tests], "p": [r.p_perm for _, r in tests]})
    kept, notes = drop_duplicate_tests(family)
    names = set(kept["test"])
    return [(n, r) for n, r in tests if n in names], [n.replace(" (findings)", "") for n in notes]


def _header(trials: pd.DataFrame, spec: dict, n_tests: int) -> list[str]:
    counts = ", ".join(f"{v} {k}" for k, v in trials[mk.STATUS].value_counts().sort_index().items())
    ex = ", ".join(sorted(trials[mk.EVAL_EXTRACTOR].dropna().unique()))
    n = ", ".join(str(int(v)) for v in sorted(trials[mk.EVAL_N].dropna().unique()))
    hours = trials[mk.WALL_S].sum() / 3600
    res, iters = int(trials[C.cfg("resolution")].iloc[0]), int(trials[C.cfg("iterations")].iloc[0])
    status = spec["plan_status"]
    return [
        "## The pilot: belmekki2022_cpu, every test exploratory", "",
        "Reproduce the pilot with `gan-study reproduce belmekki2022 --scale cpu --data "
        "../shared/data/pneumoniamnist.npz --out runs/repro`: it runs the same space on the same data "
        f"(the committed run was started {spec.get('created', '?')} as `gan-study run --space "
        f"{Path(spec.get('space', B22)).stem} --data pneumoniamnist.npz`, 2 trials at a time, and took "
        f"{spec['wall_hours']:.1f} h of wall time on a 2-core machine shared with other work).", "",
        f"**This study is the pilot.** Its status, read from its own study.json and results: {status.why}. "
        "Its test of seed 002's claim was chosen while it ran and after a same-seed pilot, so nothing here is a "
        "confirmatory result. What it suggested (log FID, within design cells) is what the confirmatory study above "
        "tests, on new configurations and seeds: re-running the pilot's own space would re-create its data (training "
        "is exact), which that study's plan refuses (`excludes`).", "",
        f"Seed 002's Table I factorial (optimizer x activation x TTUR) crossed with batch size {{64, 128}}: "
        f"16 configurations x 3 seeds = {len(trials)} trials ({counts}) on PneumoniaMNIST (real pediatric chest "
        f"X-rays, train split of 4,708 images) at {res} px, {iters} iterations each, BCE loss. FID and KID were "
        f"measured four times per trial (every 225 iterations) with one yardstick for every trial: {ex}, "
        f"N = {n} generated vs {n} real training images. Trial compute: {hours:.1f} CPU-core-hours.", "",
        "A configuration is the unit of evidence; its three seeds are repeats. Correlations use configuration "
        "means (seeds averaged); intervals are bootstrap over configurations (BCa), p-values permute whole "
        "configurations; factor effects compare configurations matched on every other factor. FID is read on "
        "the log scale first (a few collapsed seeds dominate raw FID), raw beside it. q-values are "
        f"Benjamini-Hochberg over the family of all {n_tests} tests in this document. Verdicts judge direction "
        "and magnitude apart (docs/STATISTICS.md, 'Verdicts'): direction reproduced needs the CI to exclude 0 "
        "on seed 002's side and q <= 0.05; magnitude consistent needs the CI to include seed 002's r = -0.90.",
        ""]


def _table1(table: pd.DataFrame) -> list[str]:
    lines = ["## Seed 002's Table I, with our numbers", "",
             "Seed 002 (Inception FID, 64 px, one run each): "
             + "; ".join(f"{r.paper_row}: D-loss mean {r.d_loss_mean}, var {r.d_loss_var}, std {r.d_loss_std}, "
                         f"FID {r.fid}" for r in ref.load_reference().itertuples()) + ".", "",
             "Ours (means over seeds; FID mean, median and range over the seeds; finished and diverged runs):", "",
             "| optimizer | activation | TTUR | batch | runs | D-loss mean | D-loss var | D-loss std | T0 | "
             "FID mean | FID median | FID range |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.optimizer} | {r.activation} | {r.TTUR} | {r.batch} | {r.ended} | {r.d_loss_mean:.3f} | "
                     f"{r.d_loss_var:.3f} | {r.d_loss_std:.3f} | {r.t0:.0f} | {r.fid:.2f} | {r.fid_median:.2f} | "
                     f"{r.fid_min:.2f}-{r.fid_max:.2f} |")
    return lines + [""]


def _judge(res, q: float, *, as_the_paper: bool = False) -> tuple[str, str]:
    """Direction against seed 002's r < 0; magnitude against its -0.90 only for a test measured as the paper
    measured it (raw FID, Pearson, across configurations): a log-scale or within-cell r is another quantity."""
    return verdict(res.ci_low, res.ci_high, -1, p=res.p_perm, q=q, paper=-0.90 if as_the_paper else math.nan)


AS_THE_PAPER = ("FID vs D-loss mean (Pearson; the pilot's headline)", "FID vs D-loss mean, with diverged runs included",
                "FID vs D-loss mean, without the")


def _cells_cells(res) -> tuple[str, str]:
    """(between-cell share, leave-one-cell-out range) cells of a row, '' for a test without cells."""
    if getattr(res, "cells", None) is None:
        return "", ""
    lo = res.loco
    return (f"{res.between:.0%}", f"{lo['loco_min']:.3f} (without {lo['loco_min_cell']}) to {lo['loco_max']:.3f} "
            f"(without {lo['loco_max_cell']})")


def _headline(tests: list, dropped: list[str], threshold: float) -> list[str]:
    cells = next(r for n, r, _ in tests if "within design cells" in n).cells
    lines = ["## Seed 002's claim: FID vs D-loss mean, across and within design cells (exploratory)", "",
             "Pearson r between FID and D-loss mean over configurations (seeds averaged), finished runs. Seed 002 "
             "claims r < 0 (r = -0.90 from 4 runs). *Within design cells* controls for the cell of each "
             f"configuration (cell fixed effects, Freedman-Lane permutation p): the cells are {cells.describe()}. "
             "A correlation that vanishes within cells lives between the cells: the factors move both variables. "
             "'Between cells' is the share of the x-y cross-product that lies between cell means; 'leave one "
             "cell out' is the plain r with one cell dropped. The magnitude is judged against seed 002's -0.90 only "
             "where measured as it was (raw FID, Pearson, across configurations).", "",
             "| test | n | r [95% CI] | p | q | between cells | leave one cell out | verdict vs seed 002 |",
             "|---|---|---|---|---|---|---|---|"]
    for name, res, q in tests:
        share, loco = _cells_cells(res)
        v, _ = _judge(res, q, as_the_paper=name.startswith(AS_THE_PAPER))
        lines.append(f"| {name} | {res.n_configs} | {fmt(res.r, res.ci_low, res.ci_high, 3)} | {res.p_perm:.4f} | "
                     f"{q:.4f} | {share} | {loco} | {v} |")
    if dropped:
        lines += ["", "Dropped as identical to another test (same statistic, n and p): " + "; ".join(dropped) + "."]
    raw, raw_cells = tests[0][1], tests[1][1]
    log_row = next(t for t in tests if t[0] == "log FID vs D-loss mean, within design cells")
    lines += ["", f"**Raw FID: r = {raw.r:.3f} across configurations, {raw_cells.r:.3f} within "
              f"{raw_cells.cells.n_cells} cells ({raw_cells.between:.0%} of the association between cells)**: "
              + ("the raw-scale correlation is the cells' doing (the factors that explain the D loss also move "
                 "FID); within a cell the D loss says nothing about raw FID."
                 if raw_cells.p_perm > 0.05 else "it survives within cells.")
              + f" **Log FID within cells: r = {fmt(log_row[1].r, log_row[1].ci_low, log_row[1].ci_high, 3)}, "
              f"p = {log_row[1].p_perm:.4f}, q = {log_row[2]:.4f} ({_judge(log_row[1], log_row[2])[0]})**: on the "
              "log scale, among configurations of the same cell, a higher D loss goes with a lower FID. That is "
              "the pilot's finding worth testing, and it is what the pre-registered plan tests.", ""]
    return lines


def _proxy(proxies: list, q: list[float]) -> list[str]:
    return ["## The early proxy: does the D loss early in training rank configurations by final FID?", "",
            render_proxy_markdown(proxies, q=q)]


def _factors(effects: dict, t0: dict, table: pd.DataFrame) -> list[str]:
    lines = ["## Which factors move FID", "",
             "Each effect compares configurations that differ only in that factor (seeds averaged; 8 matched "
             "pairs), with a bootstrap CI over pairs and an exact sign-flip p. On log FID the mean paired "
             "difference is a ratio of FIDs (exp of the difference: 0.5 = half the FID); the raw difference is "
             "beside it. Exploratory.", "",
             "| factor | contrast | FID ratio b / a [95% CI] (log FID) | p | q | raw FID (b) vs (a) | raw difference "
             "b - a [95% CI] | p | q |", "|---|---|---|---|---|---|---|---|---|"]
    for name, e in effects.items():
        col, a, b = FACTORS[name]
        g, r = e[C.LOG_FID], e[mk.FID]
        ratio = fmt(math.exp(g["diff"]), math.exp(g["ci_low"]), math.exp(g["ci_high"]), 2)
        lines.append(f"| {name} | {_lvl(b)} - {_lvl(a)} | {ratio} | {g['p']:.4f} | {g['q']:.4f} | "
                     f"{r['mean_b']:.2f} vs {r['mean_a']:.2f} | {fmt(r['diff'], r['ci_low'], r['ci_high'], 2)} | "
                     f"{r['p']:.4f} | {r['q']:.4f} |")
    flips = [n for n, e in effects.items() if (e[C.LOG_FID]["p"] <= 0.05) != (e[mk.FID]["p"] <= 0.05)]
    if flips:
        lines += ["", "The scale decides for " + ", ".join(flips) + ": significant on one scale and not the other "
                  "(raw FID is dominated by the collapsed seeds)."]
    lines += ["", f"T0 (the initial low-D-loss phase, iterations) at batch 128 minus batch 64, matched configurations "
              f"(finished and diverged): {fmt(t0['diff'], t0['ci_low'], t0['ci_high'], 1)} over {t0['n_pairs']} "
              f"pairs (means {t0['mean_b']:.1f} vs {t0['mean_a']:.1f}), p = {t0['p']:.4f}, q = {t0['q']:.4f}. "
              "A run that never left the phase counts its full length (censored), one that never entered it 0.", ""]
    return lines


def _collapse(finished: pd.DataFrame, flags: pd.Series, threshold: float) -> list[str]:
    by = collapse_by_factor(finished, flags, list(FACTOR_COLUMNS), n_resamples=N_RESAMPLES, seed=SEED)
    lines = ["## Collapse, and FID among runs that did not collapse (the two-part view)", "",
             f"Collapse rule: the tool's default, {describe_rule(DEFAULT_RULE)} (here FID > {threshold:.1f}); "
             "like every test of the pilot it was chosen after its data were seen, and the confirmatory study's plan "
             "declares it in advance. The collapse rate is its own outcome: the share of configurations with a "
             "collapsed seed, with an exact Clopper-Pearson interval over configurations (the configuration is "
             "the unit); the share of runs is beside it. Exploratory.", "",
             "| factor | level | runs | collapsed runs | configurations | with a collapsed seed | rate [95% CI] |",
             "|---|---|---|---|---|---|---|"]
    for r in by.itertuples():
        lines.append(f"| {r.factor} | {r.level} | {r.runs} | {r.collapsed} | {r.configurations} | "
                     f"{r.configurations_collapsed} | {fmt(r.rate, r.ci_low, r.ci_high, 3)} |")
    return lines + [""]


def _lvl(v) -> str:
    return {True: "on", False: "off"}.get(v, str(v)) if isinstance(v, bool) else str(v)


DOWNSTREAM_STUDIES = ("acgan_tstr_cpu", "minority_augmentation_cpu")


def _downstream(results: Path) -> list[str]:
    """TSTR vs TRTR on the real test split and the minority-augmentation gain, with CIs over configurations."""
    lines = ["## Are the synthetic images useful? (seeds 000 and 001)", ""]
    done = [s for s in DOWNSTREAM_STUDIES if (results / s / TRIALS_FILE).is_file()]
    missing = [s for s in DOWNSTREAM_STUDIES if s not in done]
    rows, noise = [], []
    for study in done:
        trials = load_studies([results / study]).analysed()
        noise.append(_fit_noise(study, trials))
        for label, col in _downstream_groups(study, trials):
            sub = trials if col is None else trials.loc[trials[col[0]] == col[1]]
            for metric, text in ((C.TSTR_ACCURACY, "TSTR accuracy"), (TSTR_BALANCED, "TSTR balanced accuracy"),
                                 (mk.AUGMENT_GAIN, "augmentation gain"), (C.AUGMENT_ACCURACY, "augmented accuracy")):
                if metric in sub.columns and sub[metric].notna().any():
                    m, lo, hi = trial_mean(sub, metric, N_RESAMPLES, SEED)
                    rows.append(f"| {study} | {label} | {text} | {fmt(m, lo, hi)} | {int(sub[metric].notna().sum())} |")
        if study.startswith("minority") and mk.AUGMENT_GAIN in trials.columns:
            noise.append(_seed001_line(trials))
        if study.startswith("acgan"):
            noise.append(_one_class_line(trials))
        for metric, text in ((C.TRTR_ACCURACY, "TRTR accuracy"), (TRTR_BALANCED, "TRTR balanced accuracy")):
            trtr = baseline_values(trials, metric) if metric in trials.columns else pd.Series(dtype=float)
            if not trtr.empty:  # one real-data fit per classifier seed, shared by the study's settings
                m, lo, hi = t_interval(trtr)
                rows.append(f"| {study} | real images only | {text} | {fmt(m, lo, hi)} | {len(trtr)} seeds |")
    if rows:
        lines += ["Means over finished trials with 95% CIs that resample whole configurations (a setting with one "
                  "configuration: a Student-t interval over its seeds; TRTR, which does not depend on the GAN: one "
                  "value per classifier seed, Student-t); classifiers tested on "
                  "the real 624-image test split, where always answering 'pneumonia' scores accuracy 0.625 and "
                  "balanced accuracy (the mean of the two classes' recalls) 0.5: accuracy alone rewards a classifier "
                  "that ignores the minority class, so balanced accuracy stands beside it. Seed 000: TSTR "
                  "accuracy 0.85 (VGG-16, 30,000 synthetic images, 64 px); seed 001: 71.31% -> 74.68% (+3.37 "
                  "points) with 2,000 synthetic NORMAL images. Exploratory.", "",
                  "| study | setting | metric | mean [95% CI] | trials |", "|---|---|---|---|---|", *rows, "",
                  *noise, ""]
    if missing:
        lines += [f"Not run yet: {', '.join(missing)} (`gan-study reproduce "
                  f"{' / '.join(s.removesuffix('_cpu') for s in missing)} --scale cpu`): no committed results at "
                  "this stop, so this document makes no claim about them.", ""]
    return lines


TSTR_BALANCED = mk.TSTR_PREFIX + mk.BALANCED_ACCURACY
TRTR_BALANCED = mk.TRTR_PREFIX + mk.BALANCED_ACCURACY
ONE_CLASS = 0.52  # balanced accuracy at or below this: the classifier (nearly) always answers one class


def _one_class_line(trials: pd.DataFrame) -> str:
    """TSTR against the majority-class level: which settings fall below it, and which classifiers answer one class."""
    if TSTR_BALANCED not in trials.columns:
        return "- TSTR balanced accuracy was not recorded."
    loss = C.cfg("loss")
    below = [f"{g} (mean accuracy {v:.3f})" for g, v in trials.groupby(loss)[C.TSTR_ACCURACY].mean().items()
             if v < 0.625]
    one = trials.loc[trials[TSTR_BALANCED] <= ONE_CLASS]
    named = ", ".join(f"{r[loss]} seed {int(r[C.SEED])} (balanced accuracy {r[TSTR_BALANCED]:.3f}, accuracy "
                      f"{r[C.TSTR_ACCURACY]:.3f})" for _, r in one.iterrows())
    return ("- Against always answering 'pneumonia' (accuracy 0.625, balanced 0.5): "
            + (f"below it on accuracy: {', '.join(below)}; " if below else "every setting is above it on accuracy; ")
            + (f"classifiers that (nearly) only ever answer one class: {named}." if named else
               "no classifier answers only one class."))


def _seed001_line(trials: pd.DataFrame) -> str:
    """Seed 001's claim (a gain with 2,000 images) against our interval for the same number of images."""
    col = C.cfg("augment_samples")
    sub = trials.loc[trials[col] == 2000] if col in trials.columns else trials.iloc[:0]
    if sub[mk.AUGMENT_GAIN].notna().sum() < 2:
        return "- Seed 001's setting (2,000 added images) was not run: no verdict on its gain."
    m, lo, hi = trial_mean(sub, mk.AUGMENT_GAIN, N_RESAMPLES, SEED)
    where = ("includes both 0 and seed 001's +0.034: this study can neither confirm nor rule out the gain"
             if lo <= 0 <= hi and lo <= SEED001_GAIN_POINTS / 100 <= hi else
             "excludes 0 on the positive side: adding the images helped" if lo > 0 else
             "excludes 0 on the negative side: adding the images hurt" if hi < 0 else
             "includes 0 but not seed 001's +0.034: a gain as large as seed 001's is unlikely here")
    return f"- Seed 001's claim, 2,000 added images: our gain {fmt(m, lo, hi)} {where}."


def _fit_noise(study: str, trials: pd.DataFrame) -> str:
    """How many classifier fits each accuracy averages, and how much one fit's accuracy moves by its seed."""
    fits = trials.get(mk.TRTR_PREFIX + mk.FITS)
    if fits is None or fits.isna().all():
        return (f"- {study}: one classifier fit per measurement, its initial weights drawn from the trial's RNG "
                "state (results from before seeded, paired fits): part of each difference is the fit's luck.")
    parts = []
    for prefix, name in ((mk.TSTR_PREFIX, "TSTR"), (mk.AUGMENT_PREFIX, "augmented"), (mk.TRTR_PREFIX, "TRTR")):
        sd = trials.get(prefix + mk.ACCURACY_FIT_SD)
        if sd is not None and sd.notna().any():
            parts.append(f"{name} {sd.mean():.3f}")
    return (f"- {study}: each accuracy is the mean of {int(fits.max())} classifier fits whose seeds pair them with "
            f"TRTR's; the standard deviation of one fit's accuracy across those seeds, averaged over trials: "
            f"{', '.join(parts)}.")


CURVE_STUDIES = {"dcgan_training_cpu": ("dcgan_training", "003"), "upsample_dcgan_cpu": ("upsample_dcgan", "004")}


def _seeds_003_004(results: Path) -> list[str]:
    """Seed 003's training curves and seed 004's generator, as `gan-study reproduce` judges them."""
    lines = ["## Training curves and the upsampling generator (seeds 003 and 004)", ""]
    done = [s for s in CURVE_STUDIES if (results / s / TRIALS_FILE).is_file()]
    for study in done:
        paper, seed = CURVE_STUDIES[study]
        trials = load_studies([results / study]).analysed()
        lines += [f"Seed {seed} ({study}, {len(trials)} finished trials; rows as in `gan-study reproduce {paper}`'s "
                  "comparison.md; exploratory, outside this document's q-value family):", "", HEADER,
                  *COMPARATORS[paper](trials, None, "cpu", N_RESAMPLES), "", *_curve_reading(study, trials, results)]
    missing = [s for s in CURVE_STUDIES if s not in done]
    if missing:
        lines += [f"Not run yet: {', '.join(missing)}: no committed results, so no claim about "
                  f"{' / '.join('seed ' + CURVE_STUDIES[s][1] for s in missing)}.", ""]
    return lines


def _curve_reading(study: str, trials: pd.DataFrame, results: Path) -> list[str]:
    """What each seed 003/004 row can and cannot show, from the study's own data."""
    if study == "dcgan_training_cpu":
        return ["How strong a check this is: D(x) above D(G(z)) and the G loss above the D loss at the end hold for "
                "almost any non-saturating GAN whose discriminator is ahead when training stops, which is the usual "
                "state; they fail only for a collapsed or inverted D. So 'reproduced' here is a weak check of seed "
                "003, not evidence about its curves' shapes, which need its data and length.", ""]
    if study != "upsample_dcgan_cpu":
        return []
    col = C.cfg("g_upsample")
    means = trials.groupby(col)[mk.FID].mean()
    up, tr = float(means.get("upsample_conv", math.nan)), float(means.get("transpose", math.nan))
    side = "against" if up > tr else "with"
    out = [f"The point estimate goes {side} seed 004's claim (upsampling + convolution better): mean FID "
           f"{up:.3f} (upsample + conv) vs {tr:.3f} (transposed convolution) over 3 seeds each."]
    path = results / study / "yardstick.json"
    if path.is_file():
        doc = json.loads(path.read_text())
        floor = doc["settings"][0]["floor"]
        rows = {(r["comparison"], r["n"]): r for r in floor["rows"]}
        half = next((r for (c, n), r in sorted(rows.items(), key=lambda kv: -kv[0][1])
                     if c == "train halves" and np.isfinite(r["fid_mean"]) and n >= 512), None)
        test = next((r for (c, _), r in rows.items() if c == "train vs test"), None)
        subset = floor["setting"]["class_subset"] or "all classes"
        if half is not None:
            out.append(f"These FIDs sit near the real-vs-real floor of the class used ({subset}, "
                       f"{floor['reference_size']} training images, `results/{study}/yardstick.json`): two disjoint "
                       f"halves of N = {half['n']} real training images score {half['fid_mean']:.3f} (SD "
                       f"{half['fid_sd']:.3f} over {half['repeats']} draws; N = 1,024 halves do not fit), so both "
                       f"generators are {min(up, tr) / half['fid_mean']:.0f}-{max(up, tr) / half['fid_mean']:.0f}x "
                       f"that floor (measured at N = {half['n']}, where a floor runs higher than at the trials' N = "
                       "1,024): near enough that the extractor's own noise matters for a difference this size.")
        if test is not None:
            same = rows.get(("train halves", test["n"]))
            out.append(f"Real training vs real test images of that class at N = {test['n']}: FID {test['fid_mean']:.2f}"
                       + (f", against {same['fid_mean']:.3f} for two halves of the training images at the same N"
                          if same else "")
                       + ": the extractor separates the splits, so a FID against the test split would rank "
                       "generators on another scale.")
    return [" ".join(out), ""]


def _downstream_groups(study: str, trials: pd.DataFrame) -> list[tuple[str, tuple | None]]:
    """The settings a downstream study compares: adversarial loss (seed 000), images added (seed 001)."""
    col = C.cfg("loss") if study.startswith("acgan") else C.cfg("augment_samples")
    if col not in trials.columns:
        return [("all", None)]
    return [(f"{col.removeprefix(C.CONFIG_PREFIX)}={v}", (col, v)) for v in sorted(trials[col].dropna().unique())]


def _yardstick(results: Path) -> list[str]:
    """The pilot's yardstick from its committed floor (nothing computed, so the same on every machine)."""
    from analysis.yardstick import render_yardstick_markdown, study_robustness, yardstick_for_trials

    trials = load_studies([results / B22]).analysed()
    entries = yardstick_for_trials(trials, compute=False, cached=False, results=results)
    text = render_yardstick_markdown(entries, trials, robustness=study_robustness([results / B22]),
                                     heading="## The yardstick: how far is the pilot's FID from real-vs-real?")
    return [text.rstrip(), "", "The pilot kept no generators (exported results hold no checkpoints), so neither its FID "
            "against the held-out test split nor the extractor-seed check can be computed for it; a study that "
            "keeps its trial directories is re-scored by `gan-study yardstick --study DIR --out DIR/yardstick.json`, "
            "and exported results keep that file.", ""]


def _surprises(trials, finished, table, tests, effects) -> list[str]:
    won_runs = finished.loc[finished[mk.T0_CENSORED].fillna(False).astype(bool)]
    where = ", ".join(f"{n} {o}/{a}" for (o, a), n in won_runs.groupby([OPT, ACT]).size().items()) or "none"
    share, log_share = variance_share(finished, mk.FID), variance_share(finished, C.LOG_FID)
    fid = finished[mk.FID].to_numpy(float)
    ss = np.sort((fid - fid.mean()) ** 2)[::-1]
    top3 = ss[:3].sum() / ss.sum()
    collapsed = table.loc[table["fid"] > 10 * table["fid"].median()]
    named = {n: (r, q) for n, r, q in tests}
    w_name = next(n for n in named if "D won throughout" in n)
    w, wq = named[w_name]
    lines = ["## What surprised us, and what this study cannot settle", "",
             f"- Runs whose D wins from the start and never lets go (T0 censored; seed 002's failed run was Adam + "
             f"ELU, FID 238): {len(won_runs)} of {len(finished)} finished runs here ({where}). "
             f"{w_name.split(', ', 1)[1][0].upper()}{w_name.split(', ', 1)[1][1:]}, raw r = "
             f"{fmt(w.r, w.ci_low, w.ci_high, 3)} over {w.n_configs} configurations (p = {w.p_perm:.4f}, "
             f"q = {wq:.4f}): {_judge(w, wq)[0]}.",
             f"- Raw FID is a few seeds: the 3 largest squared deviations carry {top3:.0%} of the raw FID sum of "
             f"squares. The between-configuration share of FID variance (one-way ICC over seeds) is {share:.2f} "
             f"on the raw scale and {log_share:.2f} on log FID, so a 3-seed configuration mean of raw FID has "
             f"reliability {_reliability(share, 3):.2f} (log FID: {_reliability(log_share, 3):.2f}) across configurations, differences between the design cells included (within cells it is far lower: see the recomputation above).",
             f"- {len(collapsed)} of {len(table)} configurations have a mean FID above ten times the median "
             f"configuration's: {', '.join(f'{r.optimizer}/{r.activation}/TTUR {r.TTUR}/batch {r.batch}' for r in collapsed.itertuples()) or 'none'}.",
             "- Not settled at this scale: 32 px and 900 iterations are far from seed 002's 64 px runs; FID here uses "
             "a domain extractor (not Inception), so values are not comparable with the paper's, only directions "
             "and rankings; three seeds per configuration give wide per-configuration intervals; the pilot's "
             "tests were chosen while it ran (exploratory): the pre-registered confirmatory study decides.", ""]
    return lines


def _reliability(icc: float, k: int) -> float:
    """Spearman-Brown: reliability of a mean of k seeds given the single-seed ICC."""
    return k * icc / (1 + (k - 1) * icc)


def main(argv: list[str] | None = None) -> int:
    FINDINGS.write_text(render())
    print(f"wrote {FINDINGS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
