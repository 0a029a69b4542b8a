"""Durability of the results journal: every record reaches the disk before the callback returns."""
from __future__ import annotations

import os
from types import SimpleNamespace

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
