"""The confirmatory within-cell test (analysis/confirm.py): its size holds when cells differ in noise,
its pieces match independent computations, and a null result is called equivalent only when TOST says so."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.confirm import (CONFIRMED, EQUIVALENT, INCONCLUSIVE, confirmatory_test, fisher_interval, power,
                              tost_p, within_cell_permutation_p, within_cell_reliability, within_r)


def simulate(rng: np.random.Generator, *, rho: float = 0.0, cells: int = 8, per_cell: int = 6, seeds: int = 3,
             noise=(0.25, 1.5), icc: float = 0.5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trials of a designed study: cells with their own level and a 6-fold spread of seed noise; x (the
    D-loss mean) has cell differences and within-cell spread that grows with the cell's noise, so a pooled
    statistic is dominated by the noisiest cells; y's configuration effect correlates rho with x within cells."""
    rows = []
    sds = np.linspace(*noise, cells)
    for c in range(cells):
        level_x, level_y = rng.normal(0, 3), rng.normal(0, 3)
        for j in range(per_cell):
            cfg = c * per_cell + j
            x = level_x + rng.normal(0, 1) * sds[c]
            effect = rho * (x - level_x) / sds[c] + math.sqrt(1 - rho ** 2) * rng.normal()
            for s in range(seeds):
                y = level_y + math.sqrt(icc) * effect * sds[c] + math.sqrt(1 - icc) * sds[c] * rng.normal()
                rows.append({"config": cfg, "cell": f"c{c}", "seed": s, "x": x + 0.05 * rng.normal(), "y": y})
    trials = pd.DataFrame(rows)
    configs = trials.groupby("config").agg(x=("x", "mean"), y=("y", "mean"), cell=("cell", "first")).reset_index()
    return configs, trials


def test_within_r_is_the_cell_fixed_effects_partial_r() -> None:
    rng = np.random.default_rng(1)
    configs, _ = simulate(rng, rho=0.5)
    codes = pd.factorize(configs.cell)[0]
    dummies = pd.get_dummies(configs.cell, dtype=float).to_numpy()
    rx = configs.x - dummies @ np.linalg.lstsq(dummies, configs.x, rcond=None)[0]
    ry = configs.y - dummies @ np.linalg.lstsq(dummies, configs.y, rcond=None)[0]
    assert within_r(configs.x.to_numpy(), configs.y.to_numpy(), codes) == pytest.approx(np.corrcoef(rx, ry)[0, 1])


def test_exact_permutation_enumerates_only_within_cell_arrangements() -> None:
    # 3 cells of 3: 6^3 = 216 arrangements; the p is the share at least as extreme, counted by brute force.
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=9), rng.normal(size=9)
    codes = np.repeat([0, 1, 2], 3)
    p, kind = within_cell_permutation_p(x, y, codes, sign=-1)
    assert kind == "exact"
    obs = within_r(x, y, codes)
    count = 0
    for a, b, c in itertools.product(itertools.permutations(range(3)), repeat=3):
        idx = np.r_[np.array(a), 3 + np.array(b), 6 + np.array(c)]
        count += within_r(x[idx], y, codes) <= obs + 1e-12
    assert p == pytest.approx(count / 216)


@pytest.mark.slow
def test_size_holds_with_unequal_cell_noise() -> None:
    """Under H0 (no within-cell association) with a 6-fold spread of seed noise across cells, the one-sided
    within-cell permutation test rejects at most alpha + 2.6 standard errors of the simulated rate (400 studies)."""
    rng = np.random.default_rng(3)
    n, alpha, rejections, two_sided = 400, 0.05, 0, 0
    for i in range(n):
        configs, _ = simulate(rng)
        codes = pd.factorize(configs.cell)[0]
        x, y = configs.x.to_numpy(), configs.y.to_numpy()
        p, _ = within_cell_permutation_p(x, y, codes, sign=-1, n_permutations=400, seed=i)
        rejections += p <= alpha
        p2, _ = within_cell_permutation_p(x, y, codes, sign=0, n_permutations=400, seed=i)
        two_sided += p2 <= alpha
    bound = alpha + 2.6 * math.sqrt(alpha * (1 - alpha) / n)
    assert rejections / n <= bound and two_sided / n <= bound
    assert rejections / n >= 0.01  # not a test that can never reject


def test_it_detects_a_real_within_cell_association() -> None:
    rng = np.random.default_rng(4)
    found = 0
    for i in range(20):
        configs, trials = simulate(rng, rho=-0.7, per_cell=11, icc=0.8)
        res = confirmatory_test(configs, trials, x="x", y="y", cell="cell", config="config", sign=-1, alpha=0.05,
                                smallest_effect=0.3, n_permutations=500, seed=i)
        found += res.verdict == CONFIRMED
        assert res.k == 8 and res.n == 88 and res.df == 78
        assert len(res.per_cell) == 8 and res.cells_with_r == 8
    assert found >= 17


def test_fisher_interval_tost_and_power_against_formulas() -> None:
    lo, hi = fisher_interval(-0.4, 78)
    half = stats.norm.ppf(0.975) / math.sqrt(78)
    assert (lo, hi) == pytest.approx((math.tanh(math.atanh(-0.4) - half), math.tanh(math.atanh(-0.4) + half)))
    # TOST: r = 0 with 78 df is equivalent to |r| < 0.3; r = 0.25 is not.
    assert tost_p(0.0, 78, 0.3) == pytest.approx(stats.norm.sf(math.atanh(0.3) * math.sqrt(78)))
    assert tost_p(0.0, 78, 0.3) < 0.01 and tost_p(0.25, 78, 0.3) > 0.05
    # Power for r = 0.3 at df 78, one-sided: normal approximation on Fisher z; attenuation lowers it.
    full = power(0.3, 78, alpha=0.05, sign=-1)
    assert full == pytest.approx(stats.norm.sf(stats.norm.ppf(0.95) - math.atanh(0.3) * math.sqrt(78)))
    assert power(0.3, 78, alpha=0.05, sign=-1, attenuation=0.3) < full


def test_within_cell_reliability_matches_anova() -> None:
    rng = np.random.default_rng(5)
    _, trials = simulate(rng, rho=0.0, per_cell=10, seeds=3, icc=0.6, noise=(1.0, 1.0))
    icc, rel = within_cell_reliability(trials.y.to_numpy(), trials.config.to_numpy(), trials.cell.to_numpy())
    assert 0.4 < icc < 0.8 and rel == pytest.approx(3 * icc / (1 + 2 * icc), abs=0.02)
    # Cell differences do not count as reliability: shifting whole cells leaves it unchanged.
    shifted = trials.y + trials.cell.str[1:].astype(int) * 100
    assert within_cell_reliability(shifted.to_numpy(), trials.config.to_numpy(),
                                   trials.cell.to_numpy())[1] == pytest.approx(rel)


def test_verdicts_equivalent_and_inconclusive() -> None:
    rng = np.random.default_rng(6)
    configs, trials = simulate(rng, rho=0.0, per_cell=40, icc=0.9)
    res = confirmatory_test(configs, trials, x="x", y="y", cell="cell", config="config", sign=-1, alpha=0.05,
                            smallest_effect=0.3, n_permutations=300)
    assert res.verdict == EQUIVALENT and res.tost_p <= 0.05
    small, small_trials = simulate(rng, rho=0.0, cells=4, per_cell=4, icc=0.9)
    res = confirmatory_test(small, small_trials, x="x", y="y", cell="cell", config="config", sign=-1, alpha=0.05,
                            smallest_effect=0.3, n_permutations=300)
    assert res.verdict == INCONCLUSIVE and "TOST" in res.why
    # Leave one cell out reports the within-cell r of the rest, not the plain r.
    keep = small.cell != "c0"
    expected = within_r(small.x[keep].to_numpy(), small.y[keep].to_numpy(), pd.factorize(small.cell[keep])[0])
    assert res.per_cell[0]["loco_r"] == pytest.approx(expected)


def test_analyze_reports_the_plans_named_cells_test(tmp_path) -> None:
    """A study whose recorded plan names its cells gets the within-cell test as its primary (per-cell r,
    leave-one-cell-out, TOST, power), the plan's secondary tests with q-values, and 'interim' until the
    recorded design is complete."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from fixtures_analysis import make_study

    from analysis.pipeline import analyze
    from analysis.report import render_report

    plan = {"outcome": "log_fid", "predictor": "d_loss_mean", "controls": "cells",
            "cells": ["optimizer", "g_activation", "ttur"], "direction": "negative", "smallest_effect": 0.3,
            "secondary": [{"kind": "correlation", "predictor": "d_gap"}, {"kind": "rank_fidelity"},
                          {"kind": "collapse_by_cell"}]}
    d = make_study(tmp_path, plan=plan, losses=("bce",), seeds=(0, 1, 2), with_downstream=False, with_memory=False)
    a = analyze([d], n_resamples=100, n_permutations=100, yardstick=False, include_reference=False)
    conf = a.confirmatory
    assert conf is not None and conf.primary is not None
    assert conf.primary.k == 8 and conf.primary.n == 16 and conf.primary.perm_kind == "exact"
    assert set(conf.secondary.test.str.slice(0, 14)) >= {"log FID vs D(x", "rank fidelity:", "collapse rate "}
    assert conf.secondary.q.between(0, 1).all() and not conf.rank_fidelity.empty
    text = render_report(a)
    primary = text[text.index("## Primary test"):text.index("## Study and methods")]
    assert "Confirmatory test within the plan's cells (optimizer x g_activation x ttur)" in primary
    assert "within-cell r without it" in primary and "equivalence (TOST) p" in primary
    assert "Interim" not in primary
    # The recorded design says 100 trials: the analysis is an interim look, and says so.
    doc = json.loads((d / "study.json").read_text())
    doc["design"] = {"trials": 100, "configurations": []}
    (d / "study.json").write_text(json.dumps(doc))
    again = analyze([d], n_resamples=100, n_permutations=100, yardstick=False, include_reference=False)
    assert "**Interim: 49 of the design's 100 trials are in.**" in render_report(again)
    assert "(interim; not a verdict)" in render_report(again)


def test_analyze_warns_about_an_extractor_trained_on_few_images() -> None:
    """#24: a domain extractor trained on tens of images gives FID near 0 for any generator; analyze says so."""
    from analysis.pipeline import weak_extractor_notes
    from trainers import metric_keys as mk

    trials = pd.DataFrame({mk.EVAL_EXTRACTOR: ["domain-a", "domain-a", "domain-b"],
                           mk.EVAL_EXTRACTOR_TRAIN_N: [40.0, 40.0, 4708.0]})
    notes = weak_extractor_notes(trials)
    assert len(notes) == 1 and "domain-a was trained on 40 images (< 500)" in notes[0]
    assert weak_extractor_notes(trials.drop(columns=[mk.EVAL_EXTRACTOR_TRAIN_N])) == []


def test_a_plan_recorded_before_cells_were_named_still_reads() -> None:
    """Old study.json files hold `controls: cells` without `cells`: analyze must read them (data-chosen cells,
    labelled), while a new plan without named cells is refused."""
    from analysis.plan import parse_plan
    from trainers.errors import ConfigError

    old = {"outcome": "log_fid", "predictor": "d_loss_mean", "controls": "cells", "direction": "negative"}
    assert parse_plan(old, recorded=True).cells == ()
    with pytest.raises(ConfigError, match="controls: cells needs the cells named"):
        parse_plan(old)
