"""Run every analysis on loaded studies and keep the results in one `Analysis` object.

The report, the dashboard and the CSV export only read this object, so they agree on every number.

Example:
    >>> from analysis import analyze                                   # doctest: +SKIP
    >>> result = analyze(["runs/smoke"], n_resamples=500)              # doctest: +SKIP
    >>> result.correlations.query("predictor == 'd_loss_mean'")        # doctest: +SKIP
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import columns as C
from analysis import reference as ref
from analysis.budget import budget_curves
from analysis.collapse import DEFAULT_RULE, collapse_by_factor, collapse_flags, collapse_table, describe_rule
from analysis.correlation import correlation_matrices, signal_correlations, summarise_within, within_trial
from analysis.downstream import augmentation_gain, baseline, downstream_summary, tstr_vs_fid
from analysis.factors import factor_effects
from analysis.family import assign_family
from analysis.groups import measurement_groups, measurement_labels, varied
from analysis.load import DEFAULT_STATUSES, StudyData, load_studies
from analysis.memory_cost import bn_saving, memory_curves
from analysis.plan import AnalysisPlan
from analysis.confirmatory import Confirmatory, run_confirmatory
from analysis.primary import (PlanStatus, factor_levels, judge, named_factors, plan_status, planned_test,
                              recorded_trials)
from analysis.tables import classification_report, confusion_matrix, table1
from trainers import metric_keys as mk

MATRIX_COLUMNS = (*C.TARGETS, *C.PREDICTORS)
REPORT_PREFIXES = (mk.TSTR_PREFIX, mk.AUGMENT_PREFIX, mk.TRTR_PREFIX)


@dataclass
class Analysis:
    """All statistics of one `gan-study analyze` run; empty frames where the data did not allow one."""

    data: StudyData
    statuses: tuple[str, ...]
    n_resamples: int
    n_permutations: int
    seed: int
    analysed: pd.DataFrame = field(default_factory=pd.DataFrame)
    correlations: pd.DataFrame = field(default_factory=pd.DataFrame)
    matrices: dict[str, pd.DataFrame] = field(default_factory=dict)
    within: pd.DataFrame = field(default_factory=pd.DataFrame)
    within_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    factors: pd.DataFrame = field(default_factory=pd.DataFrame)
    budget: pd.DataFrame = field(default_factory=pd.DataFrame)
    table1: pd.DataFrame = field(default_factory=pd.DataFrame)
    class_reports: dict[str, pd.DataFrame] = field(default_factory=dict)
    confusion: dict[str, pd.DataFrame] = field(default_factory=dict)
    tstr_fid: pd.DataFrame = field(default_factory=pd.DataFrame)
    trtr: dict | None = None
    downstream_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    augment: pd.DataFrame = field(default_factory=pd.DataFrame)
    memory_curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    bn_saving: pd.DataFrame = field(default_factory=pd.DataFrame)
    reference: dict[str, pd.DataFrame] | None = None
    tests: pd.DataFrame = field(default_factory=pd.DataFrame)  # the report's family of tests, with q
    plan: PlanStatus | None = None  # the analysis plan followed, and whether its test is primary
    planned: pd.DataFrame = field(default_factory=pd.DataFrame)  # the plan's test per group, with its verdict
    confirmatory: Confirmatory | None = None  # a plan with named cells: analysis/confirmatory.py
    collapse_rule: dict = field(default_factory=lambda: dict(DEFAULT_RULE))
    collapse_threshold: float = float("nan")
    collapse_configs: pd.DataFrame = field(default_factory=pd.DataFrame)  # rate per configuration
    collapse_factors: pd.DataFrame = field(default_factory=pd.DataFrame)  # rate per factor level
    not_collapsed: pd.DataFrame = field(default_factory=pd.DataFrame)  # log FID vs D-loss among runs that did not
    duplicates: list[str] = field(default_factory=list)  # tests dropped from the family as identical to another
    yardstick: list = field(default_factory=list)  # analysis.yardstick.YardstickEntry per FID measurement setting
    robustness: dict = field(default_factory=dict)  # extractor-seed re-scoring (DIR/yardstick.json), by extractor
    measurements: list[str] = field(default_factory=list)  # FID/KID measurement settings, when several
    extractor_agreement: pd.DataFrame = field(default_factory=pd.DataFrame)  # analysis.extractors.agreement
    heldout_fid: pd.DataFrame = field(default_factory=pd.DataFrame)  # test-split vs train-split FID per extractor
    heldout_configs: pd.DataFrame = field(default_factory=pd.DataFrame)  # the same per configuration
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)  # precision/recall/density/coverage per configuration
    memorisation: pd.DataFrame = field(default_factory=pd.DataFrame)  # analysis.privacy.memorisation_table
    nearest_pairs: list = field(default_factory=list)  # analysis.privacy.PairsRecord of the best trials
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def has(self, column: str) -> bool:
        return column in self.analysed.columns and bool(self.analysed[column].notna().any())

    @property
    def loss_column_varies(self) -> bool:
        return C.LOSS in self.analysed.columns and self.analysed[C.LOSS].nunique() > 1


def analyze(
    dirs: Iterable[str | Path],
    *,
    statuses: Iterable[str] = DEFAULT_STATUSES,
    n_resamples: int = 2000,
    n_permutations: int = 2000,
    seed: int = 0,
    include_reference: bool = True,
    plan: AnalysisPlan | None = None,
    yardstick: bool = True,
) -> Analysis:
    """Load study dirs and compute every statistic the report and dashboard show.

    `plan`: an analysis plan supplied now, after the data (`analyze --plan`): its test is run and labelled
    post hoc. Without it, the plan the studies recorded in study.json is primary if it predates their
    first report. `yardstick`: compute the real-vs-real FID floor of each measurement setting when no
    committed or cached one exists (False: use those only; nothing is trained).
    """
    start = time.perf_counter()
    data = load_studies(dirs)
    a = Analysis(data, tuple(statuses), n_resamples, n_permutations, seed)
    a.notes.extend(data.warnings)
    a.analysed = data.analysed(a.statuses)
    a.plan = plan_status(data.dirs, data.history, plan)
    kw = {"n_resamples": n_resamples, "seed": seed}
    if a.analysed.empty:
        a.notes.append(f"no trial has status {', '.join(a.statuses)}: statistics over trials are skipped")
    else:
        _measurements(a)
        _collapse(a, kw)
        _planned(a)
        _quality_vs_signals(a, kw)
        _factors_budget_tables(a, kw)
        _downstream(a, kw)
        a.tests, a.duplicates = assign_family(a.correlations, a.tstr_fid, a.factors, planned=a.planned,
                                              primary=a.plan.primary, not_collapsed=a.not_collapsed)
        if not a.planned.empty:
            a.planned = judge(a.planned, a.plan.plan)
        _yardstick(a, compute=yardstick)
        _extractors(a, compute=yardstick)
    a.memory_curves = memory_curves(data.memory)
    a.bn_saving = bn_saving(data.memory)
    if a.memory_curves.empty:
        a.notes.append("no memory.parquet (run `gan-study memory --out STUDY_DIR/memory.parquet`): "
                       "memory figures skipped")
    if include_reference:
        table = ref.load_reference()
        a.reference = {"table": table, "correlations": ref.reference_correlations(table),
                           "matrix": ref.reference_matrix(table)}
    a.seconds = time.perf_counter() - start
    return a


def _measurements(a: Analysis) -> None:
    """Name the FID/KID measurement settings when there are several: they are analysed apart, never pooled."""
    labels = sorted(measurement_labels(a.analysed).unique())
    if len(labels) > 1:
        a.measurements = labels
        a.notes.append(f"FID/KID were measured in {len(labels)} ways ({'; '.join(labels)}): values measured "
                       "with different extractors or sample sizes are not comparable, so each setting is "
                       "analysed as its own group and never pooled")
    a.notes.extend(weak_extractor_notes(a.analysed))


def weak_extractor_notes(trials: pd.DataFrame) -> list[str]:
    """A warning per extractor trained on fewer images than MIN_EXTRACTOR_TRAIN_IMAGES: its FIDs sit near 0 for
    any generator, so they rank nothing."""
    from trainers.evaluation.defaults import MIN_EXTRACTOR_TRAIN_IMAGES

    col = mk.EVAL_EXTRACTOR_TRAIN_N
    if col not in trials.columns or mk.EVAL_EXTRACTOR not in trials.columns:
        return []
    n = pd.to_numeric(trials[col], errors="coerce")
    weak = trials.loc[n < MIN_EXTRACTOR_TRAIN_IMAGES]
    return [f"warning: extractor {name} was trained on {int(g[col].min())} images (< {MIN_EXTRACTOR_TRAIN_IMAGES}): "
            "its FIDs are near 0 even for an untrained generator, so they rank nothing; use more training images "
            "(data_limit) or a pretrained extractor" for name, g in weak.groupby(mk.EVAL_EXTRACTOR)]


def _collapse(a: Analysis, kw: dict) -> None:
    """The declared collapse rule (the plan's, else FID > 10 x the median configuration's), the rate per
    configuration and factor level, and the collapse flag as a per-trial outcome (its configuration mean is
    the collapse rate)."""
    if a.plan and a.plan.plan is not None:
        a.collapse_rule = dict(a.plan.plan.collapse)
    flags, a.collapse_threshold = collapse_flags(a.analysed, a.collapse_rule)
    if a.collapse_rule.get("rule") == "none" or flags.isna().all():
        return
    a.analysed[C.COLLAPSED] = pd.to_numeric(flags, errors="coerce").astype(float)
    a.collapse_configs = collapse_table(a.analysed, flags, a.data.factors)
    a.collapse_factors = collapse_by_factor(a.analysed, flags, a.data.factors, **kw)


def _yardstick(a: Analysis, *, compute: bool) -> None:
    """The validated yardstick for the extractor(s) the study used: floor, relative FID, extractor-seed check."""
    if not a.has(mk.FID):
        return
    from analysis.yardstick import study_robustness, yardstick_for_trials

    a.yardstick = yardstick_for_trials(a.analysed, compute=compute)
    a.robustness = study_robustness(a.data.dirs)
    missing = [e for e in a.yardstick if e.floor is None]
    if missing:
        a.notes.append("no yardstick (real-vs-real floor) for " + "; ".join(f"{e.study_extractor}: {e.reason}"
                                                                           for e in missing))


def _extractors(a: Analysis, *, compute: bool) -> None:
    """Re-scored extractors and their agreement, held-out FID, density/coverage, memorisation and the nearest
    pairs of the best trials (issue 23); each only where its columns exist. compute: write missing pairs of
    trials whose generators are kept (pixels only)."""
    from analysis import extractors as E
    from analysis import privacy as P

    a.analysed = E.with_rescored(a.analysed)
    kw = {"n_resamples": a.n_resamples, "n_permutations": a.n_permutations, "seed": a.seed}
    a.extractor_agreement = E.agreement(a.analysed, **kw)
    a.heldout_fid = E.heldout_agreement(a.analysed, **kw)
    a.heldout_configs = E.by_configuration(a.analysed, {"FID (train split, test n)": mk.FID_TRAIN_AT_TEST_N,
                                                        "FID (test split)": mk.FID_TEST})
    a.quality = E.quality_table(a.analysed)
    a.memorisation = P.memorisation_table(a.analysed)
    if not a.memorisation.empty:
        a.nearest_pairs, notes = P.nearest_pair_records(a.analysed, compute=compute)
        a.notes.extend(notes)


def _planned(a: Analysis) -> None:
    if a.plan is None or a.plan.plan is None:
        return
    named = named_factors(a.data.dirs)
    # A contrast plan's primary is its contrast family (run_confirmatory below), not a correlation.
    a.planned = pd.DataFrame() if a.plan.plan.contrast else planned_test(
        a.analysed, a.plan.plan, a.data.factors, n_resamples=a.n_resamples, n_permutations=a.n_permutations,
        seed=a.seed, named=named)
    # Collapsed runs stay in the confirmatory test: a diverged run with a measured FID counts like a finished one.
    ended = a.data.analysed((mk.STATUS_FINISHED, mk.STATUS_DIVERGED))
    a.confirmatory = run_confirmatory(ended, a.data.history, a.plan.plan, named=named,
                                      expected_trials=recorded_trials(a.data.dirs), n_resamples=a.n_resamples,
                                      n_permutations=max(a.n_permutations, 2000), seed=a.seed,
                                      levels=factor_levels(a.data.dirs))
    if a.planned.empty and not a.plan.plan.contrast:
        a.notes.append(f"the plan's test ({a.plan.plan.describe()}) could not be run: too few trials with both "
                       "variables")


def _quality_vs_signals(a: Analysis, kw: dict) -> None:
    df = a.analysed
    if not a.has(mk.FID):
        a.notes.append("no FID was measured in the analysed trials: FID correlations and FID figures skipped")
    if not any(a.has(t) for t in C.TARGETS):
        return
    if a.loss_column_varies:
        a.notes.append(f"loss types are analysed separately ({', '.join(map(str, sorted(df[C.LOSS].unique())))}); "
                       "the pooled group z-scores every variable within its loss type first")
    a.correlations = signal_correlations(df, targets=(*C.TARGETS, C.COLLAPSED), factors=a.data.factors,
                                         n_permutations=a.n_permutations, **kw)
    if C.COLLAPSED in df.columns and df[C.COLLAPSED].eq(1).any() and a.has(C.LOG_FID):
        kept = df.loc[df[C.COLLAPSED] == 0].reset_index(drop=True)
        a.not_collapsed = signal_correlations(kept, targets=[C.LOG_FID], predictors=[mk.D_LOSS_MEAN], levels=("config",),
                                              factors=a.data.factors, n_permutations=a.n_permutations, **kw)
    a.matrices = correlation_matrices(df, MATRIX_COLUMNS)
    keys = df[C.TRIAL_KEY].tolist()
    a.within = within_trial(a.data.history, keys)
    a.within_summary = summarise_within(a.within, df, **kw)
    if a.within.empty and a.has(mk.FID):
        a.notes.append("within-trial correlation needs >= 3 reports with FID per trial (set fid_every): skipped")


def _factors_budget_tables(a: Analysis, kw: dict) -> None:
    df = a.analysed
    a.factors = factor_effects(df, factors=a.data.factors, n_permutations=a.n_permutations, **kw)
    if a.factors.empty:
        a.notes.append("no factor varies among analysed trials with a measured FID/TSTR: factor effects skipped")
    by = C.LOSS if a.loss_column_varies else (varied(df, a.data.factors) or [None])[0]
    budgets, tables = [], []
    for measurement, part in measurement_groups(df):
        curves = budget_curves(part, by=by, n_resamples=min(a.n_resamples, 1000), seed=a.seed)
        budgets.append(curves.assign(group=measurement + "; " + curves["group"]) if measurement and not curves.empty
                       else curves)
        layout = table1(part)
        tables.append(layout.assign(**{"FID measured": measurement}) if measurement and not layout.empty else layout)
    a.budget = _concat(budgets)
    a.table1 = _concat(tables)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _downstream(a: Analysis, kw: dict) -> None:
    df = a.analysed
    if not a.has(C.TSTR_ACCURACY):
        a.notes.append("no TSTR accuracy in the analysed trials (downstream='tstr' not run): TSTR analyses skipped")
    a.tstr_fid = tstr_vs_fid(df, n_permutations=a.n_permutations, **kw)
    a.trtr = baseline(df)
    a.augment = augmentation_gain(df, **kw)
    a.downstream_summary = downstream_summary(df, **kw)
    if a.augment.empty:
        a.notes.append("no augment_gain in the analysed trials: augmentation gain skipped")
    for prefix in REPORT_PREFIXES:
        cols = [c for c in df.columns if str(c).startswith(prefix)]
        if not cols:
            continue
        with_data = df.loc[df[cols].notna().any(axis=1)]
        if with_data.empty:
            continue
        picks = {"mean over trials": with_data[cols].mean(numeric_only=True)}
        if mk.FID in with_data.columns and with_data[mk.FID].notna().any():
            best = with_data.loc[with_data[mk.FID].idxmin()]
            picks[f"lowest-FID trial {best[C.TRIAL_KEY]}"] = best
        for title, row in picks.items():
            report = classification_report(row, prefix)
            if report is not None and len(report) > 1:  # accuracy alone is in downstream_summary
                a.class_reports[f"{prefix.rstrip('_').upper()}: {title}"] = report
            cm = confusion_matrix(row, prefix)
            if cm is not None:
                a.confusion[f"{prefix.rstrip('_').upper()}: {title}"] = cm
