"""Which test is primary, and its result: the study's pre-registered plan, checked against the results.

A plan is primary only when study.json recorded it (hash intact) before the study's first report, read
from the results' own timestamps; a plan given to `analyze --plan FILE` is *post hoc*; without either,
every test is exploratory. The status carries the one-line reason the report prints.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import columns as C
from analysis.cells import Cells, design_cells, within_cells
from analysis.groups import at_level, config_labels, configuration_codes, is_pooled, loss_groups
from analysis.plan import AnalysisPlan, parse_plan, plan_hash
from analysis.stats import corr_test
from analysis.verdicts import verdict
from trainers.layout import STUDY_FILE

PRE_REGISTERED, POST_HOC, NONE = "pre-registered", "post hoc", "none"


@dataclass
class PlanStatus:
    """The plan `analyze` follows (or None), its status and the one-line reason."""

    plan: AnalysisPlan | None
    status: str
    why: str

    @property
    def primary(self) -> bool:
        return self.status == PRE_REGISTERED


def plan_status(dirs: list[Path], history: pd.DataFrame, post_hoc: AnalysisPlan | None = None) -> PlanStatus:
    """Decide whether the studies' recorded plan is pre-registered (recorded before the first report)."""
    if post_hoc is not None:
        return PlanStatus(post_hoc, POST_HOC, "the plan was supplied to analyze after the data existed "
                          "(--plan): its test is post hoc, and every test is exploratory")
    records = [_recorded(d) for d in dirs]
    if not any(records):
        return PlanStatus(None, NONE, "no analysis plan was recorded before this study ran (none in study.json): "
                          "there is no primary test, and every test is exploratory")
    if not all(records) or len({r["sha256"] for r in records}) > 1:
        return PlanStatus(None, NONE, "the studies analysed together do not share one recorded plan: every test "
                          "is exploratory")
    plan = parse_plan(records[0], recorded=True)
    if plan_hash(plan) != records[0]["sha256"]:
        return PlanStatus(plan, POST_HOC, "the recorded plan no longer matches its hash (study.json was edited): "
                          "its test is treated as post hoc")
    for d, rec in zip(dirs, records):
        first = _first_report(history, d)
        recorded = _parse_utc(rec.get("recorded_at", ""))
        if recorded is None:
            return PlanStatus(plan, POST_HOC, f"{d.name}: the plan has no valid recorded_at time: post hoc")
        if first is not None and recorded >= first:
            return PlanStatus(plan, POST_HOC, f"{d.name}: the plan was recorded at {_fmt(recorded)}, after the first "
                              f"report at {_fmt(first)}: its test is post hoc")
    when = ", ".join(f"{d.name} {_fmt(_parse_utc(r['recorded_at']))}" for d, r in zip(dirs, records))
    return PlanStatus(plan, PRE_REGISTERED, f"the plan was recorded in study.json ({when}) before the first report "
                      "of the study")


def planned_test(trials: pd.DataFrame, plan: AnalysisPlan, factors: list[str], *, n_resamples: int,
                 n_permutations: int, seed: int, named: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """The plan's test in each loss group (and measurement setting), with its direction/magnitude verdict."""
    x, y = plan.predictor, plan.outcome
    if x not in trials.columns or y not in trials.columns or trials[[x, y]].dropna().empty:
        return pd.DataFrame()
    rows = []
    frame = at_level(trials, plan.level, [x, y])
    for group, sub in loss_groups(frame, [x, y]):
        if is_pooled(group):  # the plan is tested within each loss type; the z-scored pool is exploratory
            continue
        sub = sub.dropna(subset=[x, y]).reset_index(drop=True)
        if len(sub) < 3:
            continue
        cells = _cells(sub, plan, factors, named or {})
        kw = {"method": plan.method, "n_resamples": n_resamples, "n_permutations": n_permutations, "seed": seed}
        if plan.level == "trial":
            kw.update(clusters=configuration_codes(sub))
        if cells is not None:
            res, controls = within_cells(sub[x], sub[y], cells, **kw), cells.describe()
        else:
            res = corr_test(sub[x], sub[y], **kw)
            controls = "none" if plan.controls == "none" else ("not possible: too few configurations beyond the "
                                                               "cells; the plain test is reported")
        rows.append({"group": group, "test": plan.describe(), "level": plan.level,
                     "unit": "configuration" if plan.level == "config" else "trial", "target": y, "predictor": x,
                     "controls": controls, **res.as_row()})
    return pd.DataFrame(rows)


def judge(rows: pd.DataFrame, plan: AnalysisPlan) -> pd.DataFrame:
    """Add verdict and why (after q is known): direction against the plan's sign, magnitude against `reproduced`."""
    if rows.empty:
        return rows
    paper = float(plan.reproduced.get("value", math.nan)) if plan.reproduced else math.nan
    out = []
    for _, r in rows.iterrows():
        if plan.sign == 0:
            sig = r.get("q", math.nan) if math.isfinite(r.get("q", math.nan)) else r["p_perm"]
            v = ("significant" if math.isfinite(sig) and sig <= plan.alpha else "not significant",
                 f"two-sided test at alpha {plan.alpha:g}")
        else:
            v = verdict(r["ci_low"], r["ci_high"], plan.sign, p=r["p_perm"], q=r.get("q", math.nan),
                        alpha=plan.alpha, paper=paper)
        out.append(v)
    return rows.assign(verdict=[v for v, _ in out], why=[w for _, w in out])


def _cells(sub: pd.DataFrame, plan: AnalysisPlan, factors: list[str], named: Mapping[str, Sequence[str]]
           ) -> Cells | None:
    if plan.controls == "none":
        return None
    if plan.controls == "cells" and plan.cells:  # the plan's named cells, fixed before the data
        from analysis.confirmatory import cell_columns

        cols = cell_columns(sub, plan.cells, named)
        if any(c is None for c in cols):
            return None
        labels = config_labels(sub, cols).to_numpy(dtype=object)
        if len(sub) - len(np.unique(labels)) < 3:
            return None
        return Cells(labels, cols, "named in the plan", float("nan"))
    if plan.controls == "cells":  # a plan recorded before cells were named: the data-chosen rule (exploratory)
        cells = design_cells(sub, factors, plan.predictor, level=plan.level)
        if cells is not None:
            cells.rule += "; chosen from the data because the plan, recorded before cells were named, names none"
        return cells
    cols = [_column(sub, name, named) for name in plan.controls]
    cols = [c for c in cols if c is not None and sub[c].nunique() > 1]
    if not cols:
        return None
    labels = config_labels(sub, cols).to_numpy(dtype=object)
    if len(sub) - len(np.unique(labels)) < 3:
        return None
    return Cells(labels, cols, "declared in the plan", float("nan"))


def _column(df: pd.DataFrame, name: str, named: Mapping[str, Sequence[str]]) -> str | None:
    """Config column for a plan's factor name: the field itself, or the first varying field a named factor sets."""
    if name in C.CONFIG_FIELDS and C.cfg(name) in df.columns:
        return C.cfg(name)
    fields = named.get(name, ())
    return next((C.cfg(f) for f in fields if C.cfg(f) in df.columns and df[C.cfg(f)].nunique() > 1), None)


def named_factors(dirs: list[Path]) -> dict[str, tuple[str, ...]]:
    """Named factors (e.g. `activation` -> g_activation, d_activation, g_norm) from the studies' study.json."""
    return {name: tuple(dict.fromkeys(f for lv in levels.values() for f in lv))
            for name, levels in factor_levels(dirs).items()}


def factor_levels(dirs: list[Path]) -> dict[str, dict[str, dict]]:
    """Each named factor's levels and the config fields each sets (e.g. lever -> {ema: {apply_g_ema: True}})."""
    out: dict[str, dict[str, dict]] = {}
    for d in dirs:
        try:
            space = json.loads((d / STUDY_FILE).read_text()).get("space_resolved") or {}
        except (OSError, ValueError):
            continue
        for name, levels in (space.get("factors") or {}).items():
            out.setdefault(name, {}).update({str(k): dict(v) for k, v in levels.items()})
    return out


def recorded_trials(dirs: list[Path]) -> int:
    """Trials the studies' recorded designs hold (study.json `design.trials`; 0 when any is unknown)."""
    total = 0
    for d in dirs:
        try:
            n = (json.loads((d / STUDY_FILE).read_text()).get("design") or {}).get("trials")
        except (OSError, ValueError):
            return 0
        if not isinstance(n, int):
            return 0
        total += n
    return total


def _recorded(d: Path) -> dict | None:
    try:
        plan = json.loads((d / STUDY_FILE).read_text()).get("plan")
    except (OSError, ValueError):
        return None
    return plan if isinstance(plan, dict) and plan.get("sha256") else None


def _first_report(history: pd.DataFrame, d: Path) -> datetime | None:
    if history.empty or C.TIMESTAMP not in history.columns:
        return None
    mine = history
    if C.STUDY_DIR in history.columns:
        mine = history.loc[history[C.STUDY_DIR] == str(d.resolve())]
    ts = pd.to_numeric(mine[C.TIMESTAMP], errors="coerce").dropna()
    return datetime.fromtimestamp(float(ts.min()), tz=timezone.utc) if len(ts) else None


def _parse_utc(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


def _fmt(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC") if t else "?"
