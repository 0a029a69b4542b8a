"""Pre-registered analysis plans: the one test a study is run to answer, declared before its data exist.

A plan is an `analysis:` block in the space YAML or a YAML file given to `gan-study run --plan-file`:

    analysis:
      outcome: log_fid          # fid | log_fid | kid_mean | log_kid_mean
      predictor: d_loss_mean    # a training signal (analysis.columns.PREDICTORS)
      level: config             # config (seeds averaged: the configuration is the unit) | trial
      method: pearson           # pearson | spearman
      controls: cells           # none | cells (within the named cells, below) | [factor, ...]
      cells: [optimizer, activation, ttur]   # the design cells, named before the data (never data-chosen)
      direction: negative       # the sign the hypothesis predicts: negative | positive | two-sided
      alpha: 0.05
      collapse: {rule: fid_ratio, k: 10}   # or {rule: diverged}, {rule: none}: the two-part view's rule
      reproduced: {value: -0.90, source: "seed 002, 4 runs"}   # optional: the magnitude to compare with
      smallest_effect: 0.3      # |r| of the smallest effect of interest: TOST and the design's power use it
      excludes: [results/belmekki2022_cpu]   # earlier studies: no (configuration, seed) pair may repeat
      secondary:                # tests declared with the plan (q-values over them); everything else exploratory
        - {kind: correlation, outcome: log_fid, predictor: d_gap}
        - {kind: rank_fidelity}
        - {kind: collapse_by_cell}
      note: "what the design can and cannot detect, in words"

A plan whose question is "does each level of a factor beat a reference level?" (a lever study) declares
`contrast:`; its primary test is then that family of contrasts instead of the correlation (analysis/contrasts.py):

    analysis:
      outcome: log_fid
      contrast: {factor: lever, reference: baseline, within: [data_limit], correction: holm, direction: negative}
      smallest_effect: 0.35     # in the outcome's units here (log FID 0.35 = FID x 0.70)
      secondary:
        - {kind: contrast, outcome: tstr_balanced_accuracy}   # the same contrasts on another outcome

`record_plan` validates it (an unknown key, metric or factor is one line naming it and the allowed
values) and stamps it with the SHA-256 of its canonical form and the UTC time; `gan-study run` writes
that record into study.json before the first trial starts and `resume` never changes it. `analyze`
calls the plan's test primary only when the record is older than the study's first report.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis import columns as C
from trainers import metric_keys as mk
from trainers.errors import ConfigError, UserError

OUTCOMES = (C.LOG_FID, mk.FID, C.LOG_KID, mk.KID_MEAN)
LEVELS = ("config", "trial")
METHODS = ("pearson", "spearman")
DIRECTIONS = ("negative", "positive", "two-sided")
COLLAPSE_RULES = ("fid_ratio", "diverged", "none")
# Signals a plan may test beside analysis.columns.PREDICTORS: D(x) - D(G(z)) at the end (analysis.load adds it).
PLAN_PREDICTORS = tuple(C.PREDICTORS) + (C.D_GAP,)
SECONDARY_KINDS = ("correlation", "rank_fidelity", "collapse_by_cell", "contrast")
# Outcomes a contrast may compare besides OUTCOMES: the evaluation's other per-trial measures.
CONTRAST_OUTCOMES = OUTCOMES + (mk.FID_TEST, mk.COVERAGE, mk.DENSITY, mk.MEMORISATION_SHARE_P1,
                                mk.MEMORISATION_SHARE_P5, "tstr_balanced_accuracy")
CONTRAST_KEYS = ("factor", "reference", "within", "correction", "direction")
CORRECTIONS = ("holm", "bh")
RECORD_KEYS = ("sha256", "recorded_at", "source")  # added by record_plan, not part of the declaration


@dataclass(frozen=True)
class AnalysisPlan:
    """One pre-registered test and the rules that go with it (every field has a one-line meaning above)."""

    outcome: str = C.LOG_FID
    predictor: str = mk.D_LOSS_MEAN
    level: str = "config"
    method: str = "pearson"
    controls: str | tuple[str, ...] = "cells"
    direction: str = "two-sided"
    alpha: float = 0.05
    collapse: Mapping[str, Any] = field(default_factory=lambda: {"rule": "fid_ratio", "k": 10.0})
    reproduced: Mapping[str, Any] = field(default_factory=dict)
    cells: tuple[str, ...] = ()
    smallest_effect: float = 0.0  # 0 = not stated: a null result then cannot be called equivalent to none
    excludes: tuple[str, ...] = ()
    secondary: tuple[Mapping[str, Any], ...] = ()
    note: str = ""
    # {} = the primary test is the correlation above; else {factor, reference, within, correction, direction}:
    # each level of `factor` minus `reference`, matched on the `within` factors' levels (analysis/contrasts.py).
    contrast: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sign(self) -> int:
        """-1, +1, or 0 (two-sided) for the predicted direction."""
        return {"negative": -1, "positive": 1}.get(self.direction, 0)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["controls"] = list(self.controls) if isinstance(self.controls, tuple) else self.controls
        d["collapse"], d["reproduced"] = dict(self.collapse), dict(self.reproduced)
        d["cells"], d["excludes"] = list(self.cells), list(self.excludes)
        d["secondary"] = [dict(x) for x in self.secondary]
        d["contrast"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.contrast.items()}
        if not d["contrast"]:  # absent, not {}: plans recorded before contrasts existed keep their hash
            del d["contrast"]
        return d

    def describe(self) -> str:
        if self.contrast:
            c = self.contrast
            within = f", matched on {' x '.join(c['within'])}" if c["within"] else ""
            side = {"negative": "< 0", "positive": "> 0"}.get(c["direction"], "!= 0")
            return (f"{C.label(self.outcome)} of each {c['factor']} level minus {c['reference']!r}{within}, seeds as "
                    f"blocks, pooled-error t, {c['correction'].capitalize()} over the family; hypothesis difference "
                    f"{side}, alpha {self.alpha:g}")
        cells = "within design cells (" + " x ".join(self.cells) + ")" if self.cells else "within design cells"
        ctl = {"none": "no controls", "cells": cells}.get(self.controls) if isinstance(
            self.controls, str) else "controlling for " + ", ".join(self.controls)
        side = {"negative": "r < 0", "positive": "r > 0"}.get(self.direction, "r != 0")
        return (f"{C.label(self.outcome)} vs {C.label(self.predictor)}, {self.method.capitalize()} r, "
                f"{self.level} level, {ctl}; hypothesis {side}, alpha {self.alpha:g}")


def parse_plan(raw: Any, *, factors: Mapping[str, Sequence[str]] | None = None, where: str = "analysis plan",
               recorded: bool = False) -> AnalysisPlan:
    """Validate a plan mapping; `factors` maps the space's factor keys to the config fields each sets.
    `recorded`: a plan read back from a study.json written before `cells` existed may lack them (analysis then
    falls back to the data-chosen cells, labelled so); a new plan must name them."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a mapping with keys {', '.join(_fields())}")
    raw = {k: v for k, v in raw.items() if k not in RECORD_KEYS}
    unknown = sorted(set(raw) - set(_fields()))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(_fields())}")
    p = {**AnalysisPlan().to_dict(), **raw}
    contrast = _contrast(where, p.get("contrast") or {}, factors)
    _choice(where, "outcome", p["outcome"], CONTRAST_OUTCOMES if contrast else OUTCOMES)
    _choice(where, "predictor", p["predictor"], PLAN_PREDICTORS)
    _choice(where, "level", p["level"], LEVELS)
    _choice(where, "method", p["method"], METHODS)
    _choice(where, "direction", p["direction"], DIRECTIONS)
    alpha = p["alpha"]
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ConfigError(f"{where}: alpha={alpha!r} must be a number between 0 and 1 (e.g. 0.05)")
    controls = _controls(where, p["controls"], factors)
    collapse = _collapse(where, p["collapse"])
    reproduced = p["reproduced"] or {}
    if not isinstance(reproduced, Mapping) or set(reproduced) - {"value", "source"} or (
            "value" in reproduced and not _finite(reproduced["value"])):
        raise ConfigError(f"{where}: reproduced must be a mapping {{value: <the paper's r>, source: <text>}}")
    cells = _names(where, "cells", p["cells"])
    if factors is not None:
        for n in cells:
            if n not in factors:
                raise ConfigError(f"{where}: cells names {n!r}, which the space does not vary; allowed: "
                                  f"{', '.join(sorted(factors)) or 'none'}")
    if controls == "cells" and not cells and not recorded:
        raise ConfigError(f"{where}: controls: cells needs the cells named before the data, e.g. "
                          f"cells: [{', '.join(sorted(factors or {})[:2]) or 'optimizer, activation'}]")
    effect = p["smallest_effect"]
    if contrast and (not _finite(effect) or effect < 0):
        raise ConfigError(f"{where}: smallest_effect={effect!r} must be a difference >= 0 in the outcome's units "
                          "(e.g. 0.35 in log FID)")
    if not contrast and (not _finite(effect) or not 0 <= effect < 1):
        raise ConfigError(f"{where}: smallest_effect={effect!r} must be a correlation size in [0, 1), e.g. 0.3")
    excludes = _names(where, "excludes", p["excludes"])
    secondary = tuple(_secondary(where, x, contrast) for x in (p["secondary"] or []))
    if not isinstance(p["note"], str):
        raise ConfigError(f"{where}: note must be text")
    return AnalysisPlan(p["outcome"], p["predictor"], p["level"], p["method"], controls, p["direction"],
                        float(alpha), collapse, dict(reproduced), cells, float(effect), excludes, secondary,
                        p["note"].strip(), contrast)


def plan_hash(plan: AnalysisPlan) -> str:
    """SHA-256 of the plan's canonical JSON: what `analyze` checks the recorded declaration against."""
    return hashlib.sha256(json.dumps(plan.to_dict(), sort_keys=True).encode()).hexdigest()


def record_plan(plan: AnalysisPlan, *, source: str) -> dict:
    """The declaration as study.json stores it: the plan, its hash, where it came from and the UTC time."""
    return {**plan.to_dict(), "sha256": plan_hash(plan), "source": source,
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def load_plan_file(path: str | Path, *, factors: Mapping[str, Sequence[str]] | None = None) -> AnalysisPlan:
    """A plan from a YAML file: either the plan itself or a mapping with an `analysis:` block."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"plan file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"plan file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if isinstance(raw, Mapping) and "analysis" in raw:
        raw = raw["analysis"]
    return parse_plan(raw, factors=factors, where=f"plan file {path}")


def plan_differences(recorded: Mapping[str, Any], other: AnalysisPlan) -> list[str]:
    """Keys whose value differs between a recorded declaration and another plan (for refusing a resume).
    A key a plan recorded before it existed counts as its default."""
    defaults = AnalysisPlan().to_dict()
    mine = {**defaults, **{k: v for k, v in recorded.items() if k not in RECORD_KEYS}}
    theirs = other.to_dict()
    return sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))


def _fields() -> list[str]:
    return [f.name for f in dataclasses.fields(AnalysisPlan)]


def _choice(where: str, key: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{where}: {key}={value!r} is not allowed; allowed values: {', '.join(allowed)}")


def _controls(where: str, value: Any, factors: Mapping[str, Sequence[str]] | None) -> str | tuple[str, ...]:
    if value in (None, "none"):
        return "none"
    if value == "cells":
        return "cells"
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{where}: controls={value!r}; allowed: none, cells, or a list of the space's factors")
    if factors is not None:
        for n in names:
            if n not in factors:
                allowed = ", ".join(sorted(factors)) or "none (the space varies no factor)"
                raise ConfigError(f"{where}: controls names {n!r}, which the space does not vary; allowed: {allowed}")
    return tuple(names)


def _names(where: str, key: str, value: Any) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"{where}: {key}={value!r} must be a list of names")
    return tuple(names)


def _contrast(where: str, value: Any, factors: Mapping[str, Sequence[str]] | None) -> dict:
    if not value:
        return {}
    if not isinstance(value, Mapping) or set(value) - set(CONTRAST_KEYS) or not {"factor", "reference"} <= set(value):
        raise ConfigError(f"{where}: contrast={value!r} must be a mapping with factor and reference (and optionally "
                          f"within, correction, direction); allowed keys: {', '.join(CONTRAST_KEYS)}")
    within = _names(where, "contrast within", value.get("within"))
    for n in (value["factor"], *within):
        if factors is not None and n not in factors:
            raise ConfigError(f"{where}: contrast names {n!r}, which the space does not vary; allowed: "
                              f"{', '.join(sorted(factors)) or 'none'}")
    if value["factor"] in within:
        raise ConfigError(f"{where}: contrast factor {value['factor']!r} cannot also be in within")
    correction, direction = value.get("correction", "holm"), value.get("direction", "two-sided")
    _choice(where, "contrast correction", correction, CORRECTIONS)
    _choice(where, "contrast direction", direction, DIRECTIONS)
    return {"factor": str(value["factor"]), "reference": value["reference"], "within": within,
            "correction": correction, "direction": direction}


def _secondary(where: str, value: Any, contrast: Mapping[str, Any] | None = None) -> dict:
    if not isinstance(value, Mapping) or value.get("kind") not in SECONDARY_KINDS:
        raise ConfigError(f"{where}: secondary entry {value!r} needs kind: one of {', '.join(SECONDARY_KINDS)}")
    kind = value["kind"]
    allowed = {"correlation": {"kind", "outcome", "predictor"}, "rank_fidelity": {"kind"},
               "collapse_by_cell": {"kind"}, "contrast": {"kind", "outcome"}}[kind]
    extra = sorted(set(value) - allowed)
    if extra:
        raise ConfigError(f"{where}: secondary {kind} takes no key {extra[0]!r}; allowed: {', '.join(sorted(allowed))}")
    if kind == "correlation":
        _choice(where, "secondary outcome", value.get("outcome", C.LOG_FID), OUTCOMES)
        _choice(where, "secondary predictor", value.get("predictor"), PLAN_PREDICTORS)
        return {"kind": kind, "outcome": value.get("outcome", C.LOG_FID), "predictor": value["predictor"]}
    if kind == "contrast":
        if not contrast:
            raise ConfigError(f"{where}: a secondary contrast repeats the plan's contrast on another outcome: "
                              "declare contrast: {factor, reference, ...} first")
        _choice(where, "secondary outcome", value.get("outcome"), CONTRAST_OUTCOMES)
        return {"kind": kind, "outcome": value["outcome"]}
    return {"kind": kind}


def _collapse(where: str, value: Any) -> dict:
    if value in (None, "none"):
        return {"rule": "none"}
    if not isinstance(value, Mapping) or value.get("rule") not in COLLAPSE_RULES:
        raise ConfigError(f"{where}: collapse={value!r}; allowed: {{rule: fid_ratio, k: 10}}, {{rule: diverged}}, "
                          "{rule: none}")
    if value["rule"] == "fid_ratio":
        k = value.get("k", 10.0)
        if set(value) - {"rule", "k"} or not _finite(k) or k <= 1:
            raise ConfigError(f"{where}: collapse fid_ratio needs k > 1 (FID above k x the median configuration's)")
        return {"rule": "fid_ratio", "k": float(k)}
    if set(value) - {"rule"}:
        raise ConfigError(f"{where}: collapse rule {value['rule']!r} takes no other keys")
    return {"rule": value["rule"]}


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
