"""analysis.proxy: the early proxy's regret and P(best kept) under a seeds-within-configurations bootstrap."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import columns as C
from analysis.load import load_studies
from analysis.proxy import LOG_FID, early_proxy, render_proxy_markdown
from trainers import metric_keys as mk

OPT, BATCH, TTUR = C.cfg("optimizer"), C.cfg("batch_size"), C.cfg("ttur")
FACTORS = (OPT, BATCH, TTUR)
ITERS = 100
PILOT = Path(__file__).resolve().parents[1] / "results" / "belmekki2022_cpu"


def _study(proxy_of, fid_of, seeds: int = 3, noise: float = 0.0, rng=None):
    """2 x 2 x 2 configurations x `seeds`: trials and a history of 10 reports each.

    proxy_of / fid_of map (optimizer, batch, ttur) to the configuration's value; seeds add N(0, noise^2).
    The proxy is d_loss_mean at iteration 10 (the 10% cut-off); later reports hold a decoy value.
    """
    rng = rng or np.random.default_rng(0)
    trials, history = [], []
    for i, (opt, batch, ttur) in enumerate(itertools.product(("adam", "adas"), (64, 128), (False, True))):
        for s in range(seeds):
            tid = f"t{i}_{s}"
            trials.append({C.TRIAL_ID: tid, OPT: opt, BATCH: batch, TTUR: ttur, C.SEED: s, C.cfg("iterations"): ITERS,
                           mk.FID: fid_of(opt, batch, ttur) * math.exp(noise * rng.standard_normal())})
            early = proxy_of(opt, batch, ttur) + noise * rng.standard_normal()
            history += [{C.TRIAL_ID: tid, mk.ITERATION: it, mk.D_LOSS_MEAN: early if it <= 10 else -99.0}
                        for it in range(5, ITERS + 1, 5)]
    return pd.DataFrame(trials), pd.DataFrame(history)


def _fid(opt, batch, ttur):
    return 10.0 + (0 if opt == "adas" else 5) + (0 if batch == 128 else 2) + (0 if ttur else 1)


def test_a_proxy_that_separates_one_factor_is_named_as_that_factor_rule():
    trials, history = _study(lambda o, b, t: (1.0 if o == "adas" else 0.0) + 0.01 * b / 128, _fid, noise=0.001)
    res = early_proxy(trials, history, 0.1, factors=FACTORS, n_resamples=300)
    assert res.iteration == 10 and res.n_configs == 8 and res.k == 4 and res.n_trials == 24
    assert res.same_as_factor_rule == "optimizer=adas" and res.equivalent_rules == ("optimizer=adas",)
    assert set(res.configurations.loc[res.configurations["kept"], OPT]) == {"adas"}
    rule = next(r for r in res.rules if r.name == "optimizer=adas")
    assert rule.same_as_proxy and rule.p_same_as_proxy == 1.0 and rule.size == 4
    assert len(res.rules) == 6  # 3 two-level factors
    assert res.regret == 0.0 and res.best_kept and res.p_best_kept == 1.0
    text = render_proxy_markdown([res])
    assert "Exploratory" in text and "keeps exactly the configurations with optimizer=adas" in text


@pytest.mark.parametrize("good", [True, False])
def test_seeds_without_spread_make_the_bootstrap_degenerate(good):
    """Identical seeds: every draw is the full data, so P(best kept) is 0 or 1 and the interval a point."""
    trials, history = _study(lambda o, b, t: -_fid(o, b, t) if good else _fid(o, b, t), _fid)
    res = early_proxy(trials, history, 0.1, factors=FACTORS, n_resamples=200)
    assert res.p_best_kept == (1.0 if good else 0.0) and res.best_kept is good and res.p_best_stable == 1.0
    assert res.regret_low == res.regret_high == res.regret_mean == pytest.approx(res.regret)
    assert res.regret == (0.0 if good else pytest.approx(5.0))  # the bad proxy keeps adam: its best is 15 vs 10
    assert res.seed_sd == 0.0 and res.margin == pytest.approx(1.0) and res.best_resolved
    assert res.corr.r == pytest.approx(-1.0 if good else 1.0)
    # higher_is_better_proxy=False turns the bad proxy into the good one (and leaves the good one good here)
    flipped = early_proxy(trials, history, 0.1, factors=FACTORS, n_resamples=200, higher_is_better_proxy=good)
    assert flipped.p_best_kept == 1.0 and flipped.regret == 0.0


@pytest.mark.parametrize("keep", [0.25, 0.5, 0.75])
def test_the_random_baseline_is_exact(keep):
    trials, history = _study(lambda o, b, t: 0.0 if o == "adam" else 1.0, _fid, noise=0.3, rng=np.random.default_rng(3))
    res = early_proxy(trials, history, 0.1, factors=FACTORS, keep=keep, n_resamples=200)
    n, k = res.n_configs, res.k
    assert k == int(keep * 8) and res.random_p_best_kept == k / n
    fid = res.configurations[mk.FID].to_numpy()
    subsets = [fid[list(s)].min() - fid.min() for s in itertools.combinations(range(n), k)]
    assert res.random_regret == pytest.approx(np.mean(subsets), abs=1e-12)
    for rule in res.rules:  # a rule's regret on the full data is its best configuration's
        mask = (res.configurations[rule.factor] == rule.level).to_numpy()
        assert rule.regret == pytest.approx(fid[mask].min() - fid.min())
        assert rule.best_kept == bool(mask[fid.argmin()])


def test_a_noise_proxy_keeps_the_best_about_k_over_n_of_the_time():
    rng = np.random.default_rng(7)
    p = []
    for _ in range(150):
        effect = dict(zip(itertools.product(("adam", "adas"), (64, 128), (False, True)), rng.normal(size=(8, 2))))
        trials, history = _study(lambda o, b, t: effect[(o, b, t)][0], lambda o, b, t: math.exp(effect[(o, b, t)][1]),
                                 noise=0.3, rng=rng)
        p.append(early_proxy(trials, history, 0.1, factors=FACTORS, n_resamples=50).p_best_kept)
    assert np.mean(p) == pytest.approx(0.5, abs=0.1)  # SE ~0.035 over 150 studies


def test_log_fid_is_the_mean_of_logs():
    trials, history = _study(lambda o, b, t: 0.0, _fid, noise=0.5, rng=np.random.default_rng(1))
    res = early_proxy(trials, history, 0.1, factors=FACTORS, outcome=LOG_FID, n_resamples=100)
    per_config = res.configurations[LOG_FID].sort_values().to_numpy()
    expected = np.log(trials[mk.FID]).groupby([trials[OPT], trials[BATCH], trials[TTUR]]).mean().sort_values()
    assert per_config == pytest.approx(expected.to_numpy())


def test_too_few_configurations_or_mixed_settings_are_refused():
    trials, history = _study(lambda o, b, t: 0.0, _fid)
    with pytest.raises(ValueError, match="measurement"):
        early_proxy(trials.assign(**{mk.EVAL_N: np.arange(len(trials)) % 2}), history, 0.1, factors=FACTORS)
    with pytest.raises(ValueError, match="at least 3"):
        early_proxy(trials.iloc[:6], history, 0.1, factors=FACTORS)


def test_the_pilot_proxy_at_10_percent_is_the_adas_rule_and_its_best_is_unresolved():
    """Reviewer: at 10% the kept half is exactly the 8 AdaS configurations; the best beats the runner-up by
    0.03 FID against a seed SD of ~0.4. With seeds resampled the best is kept sometimes, not always."""
    data = load_studies([PILOT])
    finished, history = data.analysed(), data.history
    factors = [OPT, C.cfg("g_activation"), TTUR, BATCH]
    res = early_proxy(finished, history, 0.10, factors=factors)
    assert res.n_configs == 16 and res.k == 8 and res.iteration == 90
    kept = res.configurations.loc[res.configurations["kept"]]
    assert len(kept) == 8 and set(kept[OPT]) == {"adas"}
    assert res.same_as_factor_rule == "optimizer=adas"
    assert res.regret == 0.0 and res.best_kept and 0.0 < res.p_best_kept < 1.0
    assert res.margin < 0.05 and 0.2 < res.seed_sd_top < 0.6 and not res.best_resolved
    assert res.p_best_stable < 0.5
    assert res.random_p_best_kept == 0.5 and res.random_regret == pytest.approx(0.127, abs=5e-4)
    assert res.corr.r == pytest.approx(-0.682, abs=5e-4)  # as docs/findings.md
    later = early_proxy(finished, history, 0.25, factors=factors, outcome=LOG_FID)
    text = render_proxy_markdown([res, later], q=[0.01, 0.01])
    assert text.count("\n- At ") == 2 and "not resolved" in text and "| q |" in text
