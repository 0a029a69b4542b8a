"""The report's family of tests: the pre-registered plan's test heads it, everything else is exploratory,
BH q-values sit beside p in the report and the CSVs, and FID measured two ways is never pooled."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from fixtures_analysis import make_study  # tests/ is on sys.path (rootdir conftest, no package)

from analysis import columns as C
from analysis.correlation import signal_correlations
from analysis.export import write_csvs
from analysis.multiplicity import bh_qvalues
from analysis.pipeline import analyze
from analysis.report import render_report
from trainers import metric_keys as mk

FAST = {"n_resamples": 200, "n_permutations": 200, "include_reference": False}


RAW_PLAN = {"outcome": "fid", "predictor": "d_loss_mean", "level": "config", "method": "pearson",
            "controls": "none", "direction": "negative"}


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    return analyze([make_study(tmp_path_factory.mktemp("family"), plan=RAW_PLAN)], **FAST)


def test_report_opens_with_the_pre_registered_test_and_labels_the_rest_exploratory(analysed):
    report = render_report(analysed)
    headings = re.findall(r"^## .*$", report, flags=re.M)
    assert headings[0] == "## Primary test (pre-registered)"
    first_section = next(h for h in headings if h.startswith("## 1."))
    assert headings.index("## Exploratory analyses") < headings.index(first_section)
    numbered = [h for h in headings if re.match(r"## \d+[a-z]?\.", h)]
    assert numbered and all(h.endswith("(exploratory)") for h in numbered), numbered
    primary = report.split("## Study and methods")[0]
    assert "FID vs D-loss mean, Pearson r, config level, no controls; hypothesis r < 0" in primary
    assert "recorded in study.json (fabricated 2023-11-01 00:00:00 UTC) before the first report" in primary
    rows = [line for line in primary.splitlines() if line.startswith("| loss=")]
    assert [r.split(" | ")[0] for r in rows] == ["| loss=bce", "| loss=hinge"]  # within each loss type
    assert all(" | 16 | none | " in r for r in rows)  # 16 configurations of 2 seeds each
    assert all("direction reproduced" in r for r in rows), rows


def test_the_planned_test_is_primary_and_every_correlation_is_exploratory(analysed):
    p = analysed.planned
    assert sorted(p["group"]) == ["loss=bce", "loss=hinge"] and (p["n_configs"] == 16).all() and (p["r"] < -0.5).all()
    assert not analysed.correlations["primary"].any()
    # the planned test equals the plain configuration-level row it duplicates, which leaves the family
    c = analysed.correlations
    same = c.loc[(c.level == "config") & (c.target == mk.FID) & (c.predictor == mk.D_LOSS_MEAN)
                 & (c.method == "pearson") & (c.control_kind == "")].set_index("group")
    for _, row in p.iterrows():
        assert row["r"] == pytest.approx(same.loc[row["group"], "r"])
    assert any("FID vs D-loss mean, Pearson r" in d for d in analysed.duplicates)


def test_a_plan_recorded_after_the_first_report_is_post_hoc(tmp_path):
    late = analyze([make_study(tmp_path, plan=RAW_PLAN, plan_recorded_at="2024-06-01T00:00:00Z",
                               with_memory=False)], **FAST)
    assert late.plan.status == "post hoc" and "after the first report" in late.plan.why
    assert not late.tests["primary"].any()
    report = render_report(late)
    assert report.split("\n\n")[1] == "## The plan's test (post hoc, exploratory)"


def test_without_a_plan_there_is_no_primary_test(tmp_path):
    none = analyze([make_study(tmp_path, with_memory=False)], **FAST)
    assert none.plan.status == "none" and none.planned.empty and not none.tests["primary"].any()
    assert "## Primary test: none (every test is exploratory)" in render_report(none)


def test_q_values_are_benjamini_hochberg_over_every_test_of_the_report(analysed):
    tests = analysed.tests
    assert {"the plan's test", "quality vs training signals", "downstream: TSTR accuracy vs FID",
            "factor effects"} <= set(tests.section)
    assert tests["primary"].iloc[:2].all() and not tests["primary"].iloc[2:].any()  # primary first
    np.testing.assert_allclose(tests["q"], bh_qvalues(tests["p"]), equal_nan=True)
    assert (tests.loc[tests.p.notna(), "q"] >= tests.loc[tests.p.notna(), "p"] - 1e-15).all()
    # the same q beside p in the source tables; skipped tests (no p) are not in the family
    c = analysed.correlations
    family = tests.loc[tests.section == "quality vs training signals"]
    dropped = sum("(quality vs training signals) is identical" in d for d in analysed.duplicates)
    assert len(family) + dropped == c[["p_perm", "p_param"]].notna().any(axis=1).sum()
    np.testing.assert_allclose(np.sort(c["q"].dropna()), np.sort(family["q"]))
    kw = analysed.factors.drop_duplicates(["factor", "metric"])
    assert len(kw) == (tests.section == "factor effects").sum()
    assert set(np.round(kw["q"], 12)) <= set(np.round(tests["q"], 12))


def test_csvs_carry_unit_primary_and_q(analysed, tmp_path):
    written = {p.name: p for p in write_csvs(analysed, tmp_path)}
    tests = pd.read_csv(written["tests.csv"])
    assert {"unit", "primary", "p", "q", "n_configs"} <= set(tests.columns)
    assert set(tests.unit) == {"trial", "configuration"}
    corr = pd.read_csv(written["correlations.csv"])
    assert {"unit", "primary", "q", "p_perm", "n_configs"} <= set(corr.columns)
    assert corr["primary"].sum() == 0  # the primary test is the plan's (csv/planned.csv)
    assert {"q", "primary", "unit"} <= set(pd.read_csv(written["tstr_vs_fid.csv"]).columns)
    assert {"q", "kruskal_p", "n_configs"} <= set(pd.read_csv(written["factor_effects.csv"]).columns)


def test_one_seed_per_configuration_tests_at_configuration_level(tmp_path):
    analysis = analyze([make_study(tmp_path, seeds=(0,), extra_trials=False, with_memory=False, plan=RAW_PLAN)],
                       **FAST)
    c = analysis.correlations
    assert set(c.level) == {"config"}  # the trial level would repeat the same tests
    assert len(analysis.planned) == 2 and "| loss=bce | 16 | none |" in render_report(analysis)


def _two_extractors(tmp_path):
    """A study whose batch-64 trials were evaluated with Inception at N=2048: FID on another scale."""
    study = make_study(tmp_path, extra_trials=False, with_memory=False, plan=RAW_PLAN)
    trials = pd.read_parquet(study / "trials.parquet")
    other = trials[C.cfg("batch_size")] == 64
    trials.loc[other, mk.EVAL_EXTRACTOR] = "inception-2048"
    trials.loc[other, mk.EVAL_N] = 2048
    trials.loc[other, mk.FID] = trials.loc[other, mk.FID] * 3.0 + 50.0
    trials.to_parquet(study / "trials.parquet", index=False)
    return study, trials, other


def test_fid_measured_with_different_extractors_is_never_pooled(tmp_path):
    study, trials, other = _two_extractors(tmp_path)
    analysis = analyze([study], **FAST)
    assert len(analysis.measurements) == 2
    assert any("measured in 2 ways" in n for n in analysis.notes)
    c = analysis.correlations
    domain, inception = "extractor=domain:fabricated, N=1024", "extractor=inception-2048, N=2048"
    assert all(g.startswith((domain + "; ", inception + "; ")) for g in c.group)
    assert (c.loc[c.level == "trial", "n"] <= 32).all()  # 16 trials per loss and setting, 32 pooled over losses
    primary = analysis.planned.set_index("group")
    assert len(primary) == 4  # loss type x measurement setting
    assert primary.loc[f"{inception}; loss=bce", "n_configs"] == 8
    f = analysis.factors.loc[analysis.factors.metric == mk.FID]
    assert set(f["measurement"]) == {domain, inception}
    means = f.groupby("measurement")["mean"].mean()
    assert means[inception] > 2 * means[domain]  # the scales stayed apart
    assert set(analysis.table1["FID measured"]) == {domain, inception}
    assert all(g.startswith((domain, inception)) for g in analysis.budget["group"])
    report = render_report(analysis)
    assert "measured in 2 ways" in report and "never pooled" in report
    assert set(analysis.tstr_fid["group"]) == {domain, inception}


def test_signal_correlations_keep_extractors_apart_without_a_pipeline(tmp_path):
    _, trials, other = _two_extractors(tmp_path)
    res = signal_correlations(trials, targets=[mk.FID], predictors=[mk.D_LOSS_MEAN], methods=["pearson"],
                              partial=False, n_resamples=100, n_permutations=100)
    assert len(res) == 2 * 2 * 3  # level x setting x (bce, hinge, pooled)
    assert (res.loc[res.level == "config", "n"].isin([8, 16])).all()
