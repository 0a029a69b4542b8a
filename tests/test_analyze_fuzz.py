"""`gan-study analyze` never crashes: on broken, degenerate or odd studies it reports, or refuses in one line.

Each case mutates a fabricated study (tests/fixtures_analysis.py) the way real studies break: a column
dropped by an older version, a metric that is NaN everywhere (FID never measured, a trial that failed from
its first step), signals constant within every trial (the crash this file was written for: `_within`
labelled a NaN signal name), one configuration, one trial, every run diverged, and several loss types.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fixtures_analysis import make_study  # tests/ is on sys.path (rootdir conftest, no package)
from study.cli import main
from trainers import metric_keys as mk

FAST = ["--resamples", "100", "--permutations", "100", "--no-reference"]
SIGNALS = (mk.LOSS_D, mk.LOSS_G, mk.D_X, mk.D_G_Z, mk.D_LOSS_MEAN, mk.D_LOSS_VAR, mk.D_LOSS_STD, mk.G_LOSS_MEAN)


def _drop(cols):
    return lambda t, h: (t.drop(columns=[c for c in cols if c in t]), h.drop(columns=[c for c in cols if c in h]))


def _nan(cols):
    def f(t, h):
        return t.assign(**{c: np.nan for c in cols if c in t}), h.assign(**{c: np.nan for c in cols if c in h})
    return f


def _constant_within_trial(t, h):
    h = h.copy()
    for c in SIGNALS:
        h[c] = h.groupby("trial_id")[c].transform("first")
    return t, h


def _one_configuration(t, h):
    keep = t["config/optimizer"].eq("adam") & t["config/g_activation"].eq("relu") & ~t["config/ttur"].astype(bool) \
        & t["config/batch_size"].eq(32) & t["config/loss"].eq("bce")
    ids = set(t.loc[keep, "trial_id"])
    return t.loc[keep], h.loc[h["trial_id"].isin(ids)]


def _one_trial(t, h):
    first = t.loc[t[mk.STATUS] == mk.STATUS_FINISHED, "trial_id"].iloc[0]
    return t.loc[t["trial_id"] == first], h.loc[h["trial_id"] == first]


def _all_diverged(t, h):
    return t.assign(**{mk.STATUS: mk.STATUS_DIVERGED, mk.FID: np.nan}), h.assign(**{mk.FID: np.nan})


def _constant_everywhere(t, h):
    return t.assign(**{c: 0.5 for c in SIGNALS if c in t}), h.assign(**{c: 0.5 for c in SIGNALS if c in h})


def _fid_nonpositive(t, h):
    return t.assign(**{mk.FID: 0.0}), h.assign(**{mk.FID: h[mk.FID].where(h[mk.FID].isna(), 0.0)})


CASES = {
    "dropped FID and KID": _drop([mk.FID, mk.KID_MEAN, "best_fid", "best_kid_mean"]),
    "dropped D-loss statistics": _drop([mk.D_LOSS_MEAN, mk.D_LOSS_VAR, mk.D_LOSS_STD, mk.T0]),
    "dropped config factors": _drop(["config/optimizer", "config/g_activation", "config/ttur"]),
    "dropped measurement columns": _drop([mk.EVAL_EXTRACTOR, mk.EVAL_N]),
    "all-NaN FID": _nan([mk.FID, mk.KID_MEAN, "best_fid"]),
    "all-NaN signals": _nan(list(SIGNALS)),
    "signals constant within each trial": _constant_within_trial,
    "signals constant everywhere": _constant_everywhere,
    "FID zero (log undefined)": _fid_nonpositive,
    "one configuration": _one_configuration,
    "one trial": _one_trial,
    "all runs diverged": _all_diverged,
    "mixed loss types": lambda t, h: (t, h),  # the fixture holds bce and hinge trials
}


TWO_SEEDS = {"one configuration", "signals constant within each trial"}  # need seeds to mean anything


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_analyze_reports_or_refuses_in_one_line(case, tmp_path, capsys):
    # One loss type unless the case is about several: half the tests, the same code paths.
    study = make_study(tmp_path, seeds=(0, 1) if case in TWO_SEEDS else (0,), with_memory=False,
                       losses=("bce", "hinge") if case == "mixed loss types" else ("bce",))
    trials, history = pd.read_parquet(study / "trials.parquet"), pd.read_parquet(study / "history.parquet")
    trials, history = CASES[case](trials, history)
    trials.to_parquet(study / "trials.parquet", index=False)
    history.to_parquet(study / "history.parquet", index=False)
    out = tmp_path / "report"
    rc = main(["analyze", str(study), "-o", str(out), *FAST])  # an exception here is the failure
    err = capsys.readouterr().err.strip()
    assert rc in (0, 2), (rc, err)
    if rc == 0:
        report = (out / "report.md").read_text()
        assert report.startswith("# GAN study analysis") and "## Notes" in report
        assert (out / "dashboard.html").stat().st_size > 1000
    else:
        assert err.startswith("gan-study analyze: error: ") and "\n" not in err, err
