"""Durability of the results journal: every record reaches the disk before the callback returns."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from search_spaces.space import load_space
from study.layout import JOURNAL_FILE
from study.results_store import ResultsStore
from trainers import metric_keys as K


def test_every_journal_record_is_fsynced_before_the_callback_returns(tmp_path, monkeypatch):
    synced: list[int] = []  # journal lines on disk at each fsync
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        real_fsync(fd)
        if os.path.realpath(f"/proc/self/fd/{fd}") == str((tmp_path / JOURNAL_FILE).resolve()):
            synced.append(len((tmp_path / JOURNAL_FILE).read_text().splitlines()))

    monkeypatch.setattr(os, "fsync", counting_fsync)
    store = ResultsStore(str(tmp_path), load_space("smoke"), min_write_interval_s=3600.0)
    store.setup()
    trial = SimpleNamespace(trial_id="a_00000", config={"optimizer": "adam", "ttur": "off", "seed": 0},
                            last_result={}, status="RUNNING")
    store.on_trial_start(0, [trial], trial)
    for i, it in enumerate((10, 20, 30)):
        store.on_trial_result(0, [trial], trial, {K.ITERATION: it, K.LOSS_D: 0.5, K.STATUS: K.STATUS_RUNNING,
                                                  K.REASON: "", "config": trial.config, "done": False})
        # The report is journalled and fsynced when the callback returns, Parquet rewrites or not.
        lines = (tmp_path / JOURNAL_FILE).read_text().splitlines()
        assert synced and synced[-1] == len(lines) == 2 + i
    assert len(synced) == 4  # one journal fsync per record: the start event and three reports


def test_a_checkpoint_pruned_before_the_driver_was_killed_is_skipped_on_resume(tmp_path):
    """A killed driver's restored state may list a Ray checkpoint it had already pruned; the next pruning
    must skip it (Ray 2.60 raises FileNotFoundError and drops the trial's checkpoint bookkeeping)."""
    import shutil

    from study.ray_fixes import tolerate_pruned_checkpoints

    if not tolerate_pruned_checkpoints():
        pytest.skip("this Ray has no checkpoint_manager._delete_fs_path: nothing to work around")
    from ray.train import Checkpoint, CheckpointConfig
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.session import _TrainingResult

    dirs = [tmp_path / f"checkpoint_{i:06d}" for i in range(4)]
    for d in dirs:
        d.mkdir()
        (d / "checkpoint.pt").write_bytes(b"x")
    manager = _CheckpointManager(CheckpointConfig(num_to_keep=2))

    def register(d: Path) -> None:
        manager.register_checkpoint(_TrainingResult(checkpoint=Checkpoint.from_directory(str(d)), metrics={}))

    register(dirs[0])
    register(dirs[1])
    shutil.rmtree(dirs[0])  # pruned by the driver that was killed before its next snapshot
    register(dirs[2])  # prunes dirs[0] again: must not raise
    register(dirs[3])  # pruning of checkpoints that exist goes on
    assert [d.exists() for d in dirs] == [False, False, True, True]
    assert [r.checkpoint.path for r in manager.best_checkpoint_results] == [str(dirs[2]), str(dirs[3])]
