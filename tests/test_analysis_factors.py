"""Factor effects, budget curves, downstream statistics, memory and tables on small fabricated frames."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_analysis import memory_frame  # tests/ is on sys.path (rootdir conftest, no package)

from analysis import columns as C
from analysis.budget import budget_curve, budget_curves
from analysis.downstream import augmentation_gain, baseline, downstream_summary, to_points, tstr_vs_fid
from analysis.factors import factor_effects
from analysis.memory_cost import bn_saving, memory_curves
from analysis.tables import classification_report, confusion_matrix, markdown_table, table1
from trainers import metric_keys as mk

OPT, ACT_G, ACT_D, TTUR, SEED = (C.cfg(f) for f in ("optimizer", "g_activation", "d_activation", "ttur", "seed"))


@pytest.fixture
def trials() -> pd.DataFrame:
    """48 trials: AdaS lowers FID by ~30, activation does nothing; 3 seeds per configuration."""
    rng = np.random.default_rng(0)
    rows = []
    for opt in ("adam", "adas"):
        for act in ("relu", "elu"):
            for ttur in (False, True):
                for seed in range(6):
                    fid = 120.0 - 30.0 * (opt == "adas") + rng.normal(0, 5)
                    rows.append({OPT: opt, ACT_G: act, ACT_D: act, TTUR: ttur, SEED: seed, C.LOSS: "bce",
                                 C.TRIAL_KEY: f"{opt}-{act}-{ttur}-{seed}", mk.FID: fid,
                                 mk.D_LOSS_MEAN: 1.0 - fid / 500, mk.D_LOSS_VAR: 0.2, mk.D_LOSS_STD: 0.45,
                                 C.TSTR_ACCURACY: 0.95 - fid / 400, C.TRTR_ACCURACY: 0.85 + 0.01 * (seed - 2.5),
                                 mk.AUGMENT_GAIN: 0.0337 + rng.normal(0, 0.005)})
    return pd.DataFrame(rows)


def test_factor_effects_find_the_real_factor_only(trials):
    eff = factor_effects(trials, n_resamples=300)
    fid = eff.loc[eff.metric == mk.FID].set_index(["factor", "level"])
    adam, adas = fid.loc[(OPT, "adam")], fid.loc[(OPT, "adas")]
    assert adas["mean"] < adam["mean"] - 20 and adas.ci_high < adam.ci_low
    # 4 adam vs 4 adas configurations (6 seeds each): the configuration is the unit, so perfect separation
    # gives the exact Kruskal-Wallis permutation p 2/70, not the p < 1e-6 of 24 vs 24 "independent" seeds.
    assert adam.kruskal_p == pytest.approx(2 / 70, abs=0.01) and adam.n == 24 and adam.n_configs == 4
    assert fid.loc[(ACT_G, "elu"), "kruskal_p"] > 0.01
    assert set(eff.loc[eff.factor == TTUR, "level"]) == {"no", "yes"}
    assert C.cfg("batch_size") not in set(eff.factor)  # absent factors are skipped, not errors
    assert set(eff.metric) == {mk.FID, C.TSTR_ACCURACY}


def test_budget_curve_is_monotone_with_a_band():
    values = np.random.default_rng(1).uniform(50, 200, size=40)
    curve = budget_curve(values, mode="min", n_resamples=300)
    assert list(curve.k) == list(range(1, 41))
    for col in ("mean", "median", "low", "high"):
        assert (np.diff(curve[col]) <= 1e-12).all(), col  # best-of-k FID never gets worse
    assert (curve.low <= curve["mean"]).all() and (curve["mean"] <= curve.high).all()
    assert curve["mean"].iloc[-1] >= values.min() and curve["mean"].iloc[0] == pytest.approx(values.mean(), rel=0.1)
    acc = budget_curve(values / 200, mode="max", n_resamples=300)
    assert (np.diff(acc["mean"]) >= -1e-12).all()
    assert budget_curve([np.nan], n_resamples=10).empty


def test_budget_curves_per_group(trials):
    curves = budget_curves(trials, by=OPT, n_resamples=200)
    assert set(curves.group) == {"all", "optimizer=adam", "optimizer=adas"}
    assert set(curves.metric) == {mk.FID, C.TSTR_ACCURACY}
    assert curves.loc[(curves.metric == mk.FID) & (curves.group == "all"), "k"].max() == 48


def test_downstream_statistics(trials):
    corr = tstr_vs_fid(trials, n_resamples=200, n_permutations=200).set_index("method")
    assert corr.loc["pearson", "r"] == pytest.approx(-1.0)
    base = baseline(trials)
    # One TRTR fit per classifier seed, shared by every trial with that seed: 6 values, not 48.
    assert base["n"] == trials["config/seed"].nunique() == 6 and base["mean"] == pytest.approx(0.85)
    assert base["ci_low"] < base["mean"] < base["ci_high"]
    gain = augmentation_gain(trials, n_resamples=300)
    overall = gain.iloc[0]
    assert overall.configuration == "all trials" and overall.n_seeds == 48
    assert overall.ci_low < 3.37 < overall.ci_high  # points, not fractions
    assert (gain.iloc[1:]["n_seeds"] == 6).all() and len(gain) == 1 + 8
    assert list(to_points(pd.Series([0.5, 0.25]))) == [50.0, 25.0]
    assert set(downstream_summary(trials, n_resamples=100).metric) == {C.TSTR_ACCURACY, C.TRTR_ACCURACY}
    assert augmentation_gain(trials.drop(columns=[mk.AUGMENT_GAIN])).empty


def test_memory_curves_and_bn_saving_match_seed002_range():
    mem = memory_frame()
    curves = memory_curves(mem)
    assert len(curves) == len(mem)
    saving = bn_saving(mem)
    assert saving.saving_pct.min() == pytest.approx(1.2) and saving.saving_pct.max() == pytest.approx(7.0)
    assert memory_curves(pd.DataFrame()).empty and bn_saving(mem.loc[mem.norm == "batch"]).empty


def test_table1_layout(trials):
    t = table1(trials)
    assert list(t.columns[:3]) == ["Optimizer", "Activation", "TTUR"]
    assert {"Mean", "Variance", "Standard Deviation", "FID", "n"} <= set(t.columns)
    assert len(t) == 8 and set(t.TTUR) == {"P", "-"} and set(t.Optimizer) == {"Adam", "AdaS"}
    assert (np.diff(t.FID) >= 0).all()  # sorted best first
    mixed = trials.assign(**{ACT_D: "leaky_relu"})
    assert "ReLU, LReLU" in set(table1(mixed).Activation)
    assert "| Optimizer |" in markdown_table(t)


def test_classification_report_from_per_class_keys_and_confusion_counts():
    p = mk.TSTR_PREFIX
    row = pd.Series({f"{p}precision_NORMAL": 0.99, f"{p}recall_NORMAL": 0.64, f"{p}f1_NORMAL": 0.78,
                     f"{p}precision_PNEUMONIA": 0.81, f"{p}recall_PNEUMONIA": 1.00, f"{p}f1_PNEUMONIA": 0.89,
                     f"{p}accuracy": 0.85, f"{p}cm_NORMAL_NORMAL": 1324, f"{p}cm_NORMAL_PNEUMONIA": 745,
                     f"{p}cm_PNEUMONIA_NORMAL": 0, f"{p}cm_PNEUMONIA_PNEUMONIA": 3147, "fid": 50.0})
    rep = classification_report(row)
    assert list(rep.index) == ["NORMAL", "PNEUMONIA", "accuracy", "macro avg", "weighted avg"]  # seed 000 layout
    assert rep.loc["NORMAL", "support"] == 2069 and rep.loc["accuracy", "support"] == 5216
    assert rep.loc["accuracy", "f1-score"] == 0.85
    assert rep.loc["macro avg", "precision"] == pytest.approx(0.90)
    assert rep.loc["weighted avg", "recall"] == pytest.approx((0.64 * 2069 + 3147) / 5216)
    cm = confusion_matrix(row)
    assert cm.loc["NORMAL", "PNEUMONIA"] == 745 and list(cm.columns) == ["NORMAL", "PNEUMONIA"]


def test_classification_report_adapts_to_what_exists():
    p = mk.TSTR_PREFIX
    only_cm = pd.Series({f"{p}cm_NORMAL_NORMAL": 8.0, f"{p}cm_NORMAL_PNEUMONIA": 2.0,
                         f"{p}cm_PNEUMONIA_NORMAL": 1.0, f"{p}cm_PNEUMONIA_PNEUMONIA": 9.0})
    rep = classification_report(only_cm)
    assert rep.loc["NORMAL", "precision"] == pytest.approx(8 / 9) and rep.loc["NORMAL", "recall"] == 0.8
    assert rep.loc["accuracy", "f1-score"] == pytest.approx(17 / 20)
    acc_only = classification_report(pd.Series({f"{p}accuracy": 0.7}))
    assert list(acc_only.index) == ["accuracy"]
    assert classification_report(pd.Series({"fid": 3.0})) is None
    assert confusion_matrix(pd.Series({"fid": 3.0})) is None
    macro = pd.Series({f"{p}precision_NORMAL": 0.5, f"{p}precision_macro": 0.6})
    assert next(iter(classification_report(macro).index)) == "NORMAL"  # 'macro' is not a class


def test_factors_are_the_axes_the_study_declared_not_a_fixed_list(tmp_path):
    """A search axis the analysis never heard of (here kernel_size and a named factor) is analysed because
    study.json declares it; the fixed list is only the fallback for studies that declare nothing."""
    import json

    from fixtures_analysis import make_study

    from analysis.load import load_studies
    from analysis.pipeline import analyze

    study = make_study(tmp_path, seeds=(0, 1), losses=("bce",), extra_trials=False, with_memory=False)
    trials = pd.read_parquet(study / "trials.parquet")
    trials[C.cfg("leaky_slope")] = np.where(trials.index % 2 == 0, 0.1, 0.3)  # a new axis, via a named factor
    trials.to_parquet(study / "trials.parquet", index=False)
    assert C.cfg("leaky_slope") not in C.FACTORS
    assert load_studies([study]).factors == list(C.FACTORS)  # nothing declared: the fallback
    space = {"dimensions": {"optimizer": {"kind": "grid", "role": "scientific", "values": ["adam", "adas"]},
                            "slope": {"kind": "grid", "role": "scientific", "values": ["low", "high"]},
                            "lr_g": {"kind": "loguniform", "role": "scientific", "values": [1e-5, 1e-3]},
                            "seed": {"kind": "grid", "role": "nuisance", "values": [0, 1]}},
             "factors": {"slope": {"low": {"leaky_slope": 0.1}, "high": {"leaky_slope": 0.3}}}}
    meta = json.loads((study / "study.json").read_text())
    (study / "study.json").write_text(json.dumps({**meta, "space_resolved": space}))
    data = load_studies([study])
    assert data.factors == [C.cfg("optimizer"), C.cfg("leaky_slope")]  # seed and the continuous lr_g excluded
    a = analyze([study], n_resamples=100, n_permutations=100, include_reference=False)
    assert set(a.factors["factor"]) == {C.cfg("optimizer"), C.cfg("leaky_slope")}


def test_few_pairs_get_the_exact_sign_flip_interval_that_agrees_with_its_p():
    """With 8 matched pairs a pair bootstrap can exclude 0 while the exact sign-flip p is 0.19; the interval
    now inverts the same exact test, so 0 lies inside it exactly when p > 0.05."""
    import numpy as np

    from analysis.paired import sign_flip_interval, sign_flip_p

    rng = np.random.default_rng(0)
    for _ in range(40):
        d = rng.normal(0.3, 0.5, size=8)
        lo, hi = sign_flip_interval(d)
        assert lo <= d.mean() <= hi
        assert (lo <= 0 <= hi) == (sign_flip_p(d) > 0.05)
    assert sign_flip_interval(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == (-np.inf, np.inf)  # 5 pairs never reject
