"""ASHA and PBT on FID measured every 2nd report: every decision the schedulers make sees a measured
(finite) FID, never the NaN of a report without an evaluation, and every report still reaches the store.

The spies wrap the points where Ray's schedulers use the metric: ASHA's `_Bracket.on_result` (a rung
records the value and compares it with the cutoff) and PBT's `_save_trial_state` (the score that ranks
the trial for checkpointing or exploiting). The space puts ASHA's rungs (10, 30) and PBT's perturbation
interval (10) on reports without FID, so schedulers that rank whatever is reported see NaN there.
"""
from __future__ import annotations

import math
import textwrap

import pandas as pd
import pytest

from study.runner import run_study
from study.spec import new_spec
from study.tables import HISTORY_FILE
from trainers import metric_keys as K

pytestmark = pytest.mark.slow

ITERATIONS, REPORT_EVERY, FID_EVERY = 40, 10, 2
SPACE = f"""
description: FID every {FID_EVERY} reports, 2 tiny trials
fixed: {{data: phantom, data_limit: 128, resolution: 32, g_features: 16, d_features: 16, latent_dim: 16,
        batch_size: 16, iterations: {ITERATIONS}, report_every: {REPORT_EVERY}, fid_every: {FID_EVERY},
        eval_samples: 32, allow_low_n: true, sample_grid: 16, num_threads: 1, detect_divergence: false}}
seeds: [0, 1]
"""


def _run(tmp_path, scheduler: str) -> pd.DataFrame:
    space = tmp_path / "space.yaml"
    space.write_text(textwrap.dedent(SPACE))
    spec = new_spec(out=str(tmp_path / scheduler), space=str(space), scheduler=scheduler, metric=K.FID,
                    mode="min", max_concurrent=2)
    run_study(spec, progress=False)
    return pd.read_parquet(tmp_path / scheduler / HISTORY_FILE)


def _check_history(history: pd.DataFrame) -> None:
    # Every report reached the results store, those without an evaluation (NaN FID) included.
    for _, reports in history.groupby("trial_id"):
        its = sorted(reports[K.ITERATION])
        assert its == list(range(REPORT_EVERY, its[-1] + 1, REPORT_EVERY))
    assert history[K.FID].isna().any() and history[K.FID].notna().any()


def test_asha_decides_on_measured_fid_only(local_ray, tmp_path, monkeypatch):
    from ray.tune.schedulers import async_hyperband

    decisions: list[tuple[int, float]] = []
    on_result = async_hyperband._Bracket.on_result

    def spy(self, trial, cur_iter, cur_rew):
        decisions.append((cur_iter, cur_rew))
        return on_result(self, trial, cur_iter, cur_rew)

    monkeypatch.setattr(async_hyperband._Bracket, "on_result", spy)
    _check_history(_run(tmp_path, "asha"))
    assert decisions, "ASHA made no decision"
    assert all(math.isfinite(v) for _, v in decisions), decisions
    assert all(it % (REPORT_EVERY * FID_EVERY) == 0 for it, _ in decisions), decisions  # at evaluated reports


def test_pbt_decides_on_measured_fid_only(local_ray, tmp_path, monkeypatch):
    from ray.tune.schedulers import PopulationBasedTraining

    decisions: list[tuple[int, float]] = []
    save_state = PopulationBasedTraining._save_trial_state

    def spy(self, state, time, result, trial):
        decisions.append((time, result[self._metric]))
        return save_state(self, state, time, result, trial)

    monkeypatch.setattr(PopulationBasedTraining, "_save_trial_state", spy)
    _check_history(_run(tmp_path, "pbt"))
    assert decisions, "PBT made no decision"
    assert all(math.isfinite(v) for _, v in decisions), decisions
    assert all(it % (REPORT_EVERY * FID_EVERY) == 0 for it, _ in decisions), decisions
