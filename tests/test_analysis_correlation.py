"""Loading study dirs and the across/within-trial correlation analyses on fabricated studies."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_analysis import make_study  # tests/ is on sys.path (rootdir conftest, no package)

from analysis import columns as C
from analysis.correlation import correlation_matrices, signal_correlations, summarise_within, within_trial
from analysis.groups import POOLED_LABEL, at_level
from analysis.load import load_studies
from trainers import metric_keys as mk
from trainers.errors import DataError

FAST = {"n_resamples": 200, "n_permutations": 200}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("studies"))


def test_load_counts_every_status_and_analyses_finished_only(study):
    data = load_studies([study])
    assert data.status_counts() == {"diverged": 1, "errored": 1, "finished": 64, "pending": 1, "running": 1}
    done = data.analysed()
    assert len(done) == 64 and set(done[mk.STATUS]) == {mk.STATUS_FINISHED}
    assert data.history[C.TRIAL_KEY].nunique() == 67  # the pending trial never reported
    assert data.memory.shape[0] > 0 and not data.warnings


def test_load_tolerates_missing_and_unreadable_files(tmp_path, study):
    hist_only = tmp_path / "hist_only"
    hist_only.mkdir()
    (hist_only / "history.parquet").write_bytes((study / "history.parquet").read_bytes())
    (hist_only / "trials.parquet").write_bytes(b"")  # zero-byte: a crash mid-write on another tool
    data = load_studies([hist_only])
    assert len(data.trials) == 67 and data.status_counts()["finished"] == 64
    assert any("could not be read" in w for w in data.warnings)
    assert any("derived from history.parquet" in w for w in data.warnings)
    derived = data.trials.set_index(C.TRIAL_ID)
    original = pd.read_parquet(study / "trials.parquet").set_index(C.TRIAL_ID)
    assert derived.loc["t0000", C.BEST_FID] == pytest.approx(original.loc["t0000", C.BEST_FID])
    assert derived.loc["t0000", mk.FID] == pytest.approx(original.loc["t0000", mk.FID])
    with pytest.raises(DataError, match="does not exist"):
        load_studies([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no"):
        load_studies([tmp_path / "empty"])


def test_several_study_dirs_keep_trials_apart(tmp_path):
    a = make_study(tmp_path, "a", seeds=(0,), extra_trials=False, with_memory=False)
    b = make_study(tmp_path, "b", seeds=(0,), extra_trials=False, with_memory=False, rng_seed=1)
    data = load_studies([a, b])
    assert len(data.trials) == 64 and data.trials[C.TRIAL_KEY].is_unique  # same Ray ids, two studies
    assert set(data.trials[C.STUDY_DIR]) == {str(a.resolve()), str(b.resolve())}


def test_loss_types_are_not_pooled(study):
    done = load_studies([study]).analysed()
    naive = np.corrcoef(done[mk.D_LOSS_MEAN], done[mk.FID])[0, 1]
    assert naive > 0.5  # hinge: larger D loss *and* worse FID, so raw pooling flips the sign
    res = signal_correlations(done, targets=[mk.FID], predictors=[mk.D_LOSS_MEAN], methods=["pearson"],
                              levels=["trial"], partial=False, **FAST)
    by_group = res.set_index("group")["r"]
    assert set(by_group.index) == {"loss=bce", "loss=hinge", POOLED_LABEL}
    assert (by_group < -0.5).all(), by_group
    assert res.set_index("group").loc["loss=bce", "n"] == 32


def test_configuration_level_averages_over_seeds(study):
    done = load_studies([study]).analysed()
    configs = at_level(done, "config", [mk.FID, mk.D_LOSS_MEAN])
    assert len(configs) == 32 and (configs["n_seeds"] == 2).all()
    first = done.loc[(done[C.cfg("optimizer")] == "adam") & (done[C.cfg("g_activation")] == "relu")
                     & (~done[C.cfg("ttur")]) & (done[C.cfg("batch_size")] == 32) & (done[C.LOSS] == "bce")]
    row = configs.loc[(configs[C.cfg("optimizer")] == "adam") & (configs[C.cfg("g_activation")] == "relu")
                      & (~configs[C.cfg("ttur")]) & (configs[C.cfg("batch_size")] == 32) & (configs[C.LOSS] == "bce")]
    assert row[mk.FID].iloc[0] == pytest.approx(first[mk.FID].mean())
    res = signal_correlations(done, targets=[mk.FID], predictors=[mk.D_LOSS_MEAN], methods=["spearman"],
                              partial=True, **FAST)
    cfg_rows = res.loc[(res.level == "config") & (res.group == "loss=bce")]
    assert set(cfg_rows["n"]) == {16}
    partial = cfg_rows.loc[cfg_rows.control_kind == "factors"]
    assert len(partial) == 1 and "config/optimizer" in partial["controls"].iloc[0]
    assert len(cfg_rows.loc[cfg_rows.control_kind == "cells"]) == 1
    assert "config/seed" not in partial["controls"].iloc[0]


def test_correlation_matrix_per_loss_group(study):
    done = load_studies([study]).analysed()
    mats = correlation_matrices(done, [mk.FID, mk.D_LOSS_MEAN, mk.D_LOSS_VAR, mk.D_LOSS_STD])
    assert set(mats) == {"loss=bce", "loss=hinge", POOLED_LABEL}
    m = mats["loss=bce"]
    assert list(m.columns) == ["FID", "D-loss mean", "D-loss variance", "D-loss std"]
    assert np.allclose(np.diag(m), 1.0) and m.loc["FID", "D-loss mean"] < -0.5


def test_within_trial_uses_only_reports_with_fid(study):
    data = load_studies([study])
    keys = data.analysed()[C.TRIAL_KEY]
    per_trial = within_trial(data.history, keys)
    assert set(per_trial["n_points"]) == {3}  # FID at 3 of the 5 reports
    assert per_trial[C.TRIAL_KEY].nunique() == 64
    summary = summarise_within(per_trial, n_resamples=200)
    assert set(summary["group"]) == {"loss=bce", "loss=hinge"}
    assert (summary["mean_r"] < 0).all() and (summary["n_trials"] == 32).all()
