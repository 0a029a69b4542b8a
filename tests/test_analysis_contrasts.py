"""A plan's contrast family (analysis/contrasts.py): estimates, size under the null, power, labels, the plan keys."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.contrasts import contrast_family, interaction, level_labels
from analysis.multiplicity import holm_adjust
from analysis.plan import parse_plan, plan_hash
from trainers.errors import ConfigError

LEVELS = {"baseline": {}, "ema": {"apply_g_ema": True}, "diffaug": {"apply_diffaug": True},
          "diffaug_ema": {"apply_diffaug": True, "apply_g_ema": True}}


def _trials(effects: dict, *, seed: int, seeds: int = 3, sizes=(0, 500), block_sd: float = 1.0,
            noise: float = 0.3) -> pd.DataFrame:
    """log FID = 4 + size shift + effect[level] + seed block (shared by every level) + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for size in sizes:
        blocks = rng.normal(0, block_sd, seeds)
        for lv, fields in LEVELS.items():
            for s in range(seeds):
                rows.append({"config/apply_g_ema": fields.get("apply_g_ema", False),
                             "config/apply_diffaug": fields.get("apply_diffaug", False), "config/data_limit": size,
                             "config/seed": s, "log_fid": 4 + 0.5 * (size == 500) + effects.get((lv, size), 0.0)
                             + blocks[s] + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_level_labels_pick_the_most_specific_level():
    t = _trials({}, seed=0)
    labels = level_labels(t, LEVELS)
    want = ["baseline", "ema", "diffaug", "diffaug_ema"] * 2
    assert list(labels.iloc[::3]) == want
    odd = t.iloc[:1].assign(**{"config/apply_g_ema": True})
    assert level_labels(odd, {"a": {"apply_g_ema": True}, "b": {"apply_g_ema": True}}).isna().all()  # a tie


def test_balanced_estimate_is_the_mean_paired_difference_and_blocks_cancel():
    t = _trials({("diffaug", 500): -1.0}, seed=1, block_sd=3.0)
    fam = contrast_family(t, outcome="log_fid", level=level_labels(t, LEVELS), reference="baseline",
                          within=["config/data_limit"], direction="negative", smallest_effect=0.35)
    # Per size: 12 trials - 4 configurations - 2 seed blocks beyond the first
    assert len(fam) == 6 and (fam["df"] == 12 - 4 - 2).all()
    row = fam.set_index(["within", "level"]).loc[("500", "diffaug")]
    sub = t[t["config/data_limit"] == 500]
    lab = level_labels(sub, LEVELS)
    manual = (sub.loc[lab == "diffaug", "log_fid"].to_numpy() - sub.loc[lab == "baseline", "log_fid"].to_numpy()).mean()
    assert row["diff"] == pytest.approx(manual, abs=1e-9)
    # Seed blocks of SD 3 would swamp an unpaired comparison; blocked, the -1 effect is found and the others are not.
    assert row["verdict"] == "lower than the reference" and row["q"] <= 0.05
    assert abs(row["diff"] + 1.0) < 3 * row["se"]
    others = fam.drop(index=fam.index[(fam["within"] == "500") & (fam["level"] == "diffaug")])
    assert not others["verdict"].eq("lower than the reference").any()
    assert (fam["q"] >= fam["p"]).all()


def test_size_under_the_null_with_unequal_noise_between_sizes():
    rejections, covered, total = 0, 0, 0
    n = 300
    for s in range(n):
        t = _trials({}, seed=100 + s, block_sd=2.0)
        # Unequal noise between the two sizes: 3x larger at 500 images.
        rng = np.random.default_rng(s)
        t.loc[t["config/data_limit"] == 500, "log_fid"] += rng.normal(0, 0.6, (t["config/data_limit"] == 500).sum())
        fam = contrast_family(t, outcome="log_fid", level=level_labels(t, LEVELS), reference="baseline",
                              within=["config/data_limit"], direction="two-sided")
        rejections += int((fam["q"] <= 0.05).any())
        covered += int(((fam["ci_low"] <= 0) & (fam["ci_high"] >= 0)).sum())
        total += len(fam)
    assert 0.92 <= covered / total <= 0.98  # the 95% interval covers the true difference (0)
    # Holm keeps the family-wise error at 5%; pooling over unequal noise must not inflate it much (binomial SD ~1.3%).
    assert rejections / n <= 0.09


def test_power_and_tost_speak_for_a_null():
    t = _trials({}, seed=7, noise=0.05, seeds=4)
    fam = contrast_family(t, outcome="log_fid", level=level_labels(t, LEVELS), reference="baseline",
                          within=["config/data_limit"], direction="negative", smallest_effect=0.35)
    assert (fam["power"] > 0.9).all()
    assert fam["verdict"].str.startswith("equivalent").all()
    noisy = _trials({}, seed=7, noise=1.5)
    fam = contrast_family(noisy, outcome="log_fid", level=level_labels(noisy, LEVELS), reference="baseline",
                          within=["config/data_limit"], direction="negative", smallest_effect=0.35)
    assert (fam["power"] < 0.3).all() and not fam["verdict"].str.startswith("equivalent").any()


def test_a_lever_that_hurts_is_called_against_the_prediction():
    t = _trials({("ema", 0): 2.0}, seed=3, noise=0.1)
    fam = contrast_family(t, outcome="log_fid", level=level_labels(t, LEVELS), reference="baseline",
                          within=["config/data_limit"], direction="negative")
    row = fam.set_index(["within", "level"]).loc[("0", "ema")]
    assert row["verdict"].startswith("against the prediction") and row["p"] > 0.99


def test_interaction_says_where_a_level_helps_more():
    t = _trials({("diffaug", 500): -1.5, ("diffaug", 0): -0.2}, seed=5, noise=0.1)
    res = interaction(t, outcome="log_fid", level=level_labels(t, LEVELS), reference="baseline",
                      within="config/data_limit", a=500, b=0).set_index("level")
    assert res.at["diffaug", "diff_in_diff"] == pytest.approx(-1.3, abs=0.3)
    assert res.at["diffaug", "ci_high"] < 0 and res.at["ema", "ci_low"] < 0 < res.at["ema", "ci_high"]


def test_holm_matches_the_step_down_rule():
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, np.nan, 0.03, 0.2]), [0.04, 0.09, np.nan, 0.09, 0.2])


def test_plan_contrast_keys_are_validated_and_old_plans_keep_their_hash():
    factors = {"lever": ("apply_g_ema",), "data_limit": ("data_limit",)}
    plan = parse_plan({"outcome": "log_fid", "contrast": {"factor": "lever", "reference": "baseline",
                                                          "within": ["data_limit"], "direction": "negative"},
                       "smallest_effect": 0.35, "controls": "none",
                       "secondary": [{"kind": "contrast", "outcome": "tstr_balanced_accuracy"}]}, factors=factors)
    assert "minus 'baseline'" in plan.describe() and plan.contrast["correction"] == "holm"
    assert plan_hash(parse_plan(plan.to_dict())) == plan_hash(plan)
    with pytest.raises(ConfigError, match="contrast names 'optimizer'"):
        parse_plan({"contrast": {"factor": "optimizer", "reference": "adam"}, "controls": "none"}, factors=factors)
    with pytest.raises(ConfigError, match="contrast correction"):
        parse_plan({"contrast": {"factor": "lever", "reference": "baseline", "correction": "sidak"},
                    "controls": "none"}, factors=factors)
    with pytest.raises(ConfigError, match="declare contrast"):
        parse_plan({"controls": "none", "secondary": [{"kind": "contrast", "outcome": "log_fid"}]})
    # A plan recorded before contrasts existed: its stored hash still verifies.
    study = Path(__file__).resolve().parents[1] / "results" / "dloss_fid_confirm_cpu" / "study.json"
    rec = json.loads(study.read_text())["plan"]
    assert plan_hash(parse_plan(rec, recorded=True)) == rec["sha256"]


def test_a_contrast_plan_runs_and_renders_through_the_confirmatory_path():
    from analysis.confirm_markdown import render_confirmatory
    from analysis.confirmatory import run_confirmatory

    t = _trials({("diffaug", 500): -1.0}, seed=11, noise=0.1)
    t["fid"] = np.exp(t["log_fid"])
    t["tstr_balanced_accuracy"] = np.random.default_rng(0).uniform(0.6, 0.8, len(t))
    t["config/lr_g"] = 2e-4
    plan = parse_plan({"outcome": "log_fid", "smallest_effect": 0.35, "controls": "cells", "cells": ["data_limit"],
                       "contrast": {"factor": "lever", "reference": "baseline", "within": ["data_limit"],
                                    "direction": "negative"},
                       "secondary": [{"kind": "contrast", "outcome": "tstr_balanced_accuracy"},
                                     {"kind": "collapse_by_cell"}]})
    conf = run_confirmatory(t, pd.DataFrame(), plan, named={}, expected_trials=len(t), n_permutations=200,
                            levels={"lever": LEVELS})
    assert conf.primary is None and conf.complete
    prim = conf.contrasts[conf.contrasts["family"] == "primary"].set_index(["within", "level"])
    assert prim.loc[("500", "diffaug"), "verdict"] == "lower than the reference"
    assert set(conf.contrasts["family"]) == {"primary", "secondary"}
    assert conf.interactions.set_index("level").at["diffaug", "ci_high"] < 0
    text = render_confirmatory(conf, plan)
    assert "Planned contrasts: each lever level minus 'baseline'" in text and "lower than the reference: 1" in text
    assert "TSTR" in text or "tstr" in text
