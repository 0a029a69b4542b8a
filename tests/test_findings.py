"""docs/findings.md is regenerated from the committed results and must match them exactly."""
from __future__ import annotations

import pandas as pd

from analysis.findings import B22, FINDINGS, RESULTS, render
from trainers import metric_keys as K


def test_findings_match_the_committed_results():
    assert FINDINGS.read_text() == render(RESULTS), (
        "docs/findings.md differs from what results/ gives: run `python3 -m analysis.findings` and review the diff")


def test_the_committed_reference_study_is_complete_and_compact():
    trials = pd.read_parquet(RESULTS / B22 / "trials.parquet")
    assert len(trials) == 48 and trials[K.STATUS].isin([K.STATUS_FINISHED, K.STATUS_DIVERGED]).all()
    assert trials.groupby(["config/optimizer", "config/g_activation", "config/ttur", "config/batch_size"]).size() \
        .eq(3).all()  # 16 configurations x 3 seeds
    history = pd.read_parquet(RESULTS / B22 / "history.parquet")
    evaluated = history.dropna(subset=[K.FID]).groupby("trial_id").size()
    assert (evaluated >= 4).all()  # 3 evaluations during training and one at the end
    assert sum(p.stat().st_size for p in RESULTS.rglob("*") if p.is_file()) < 5 * 2**20
