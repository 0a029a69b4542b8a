"""Ray Tune's TensorBoard logger writing one directory per trial under the study's own log directory."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.logger import TBXLoggerCallback


class StudyTBXLogger(TBXLoggerCallback):
    """Ray's TensorBoard logger, writing each trial to LOGDIR/<trial_id> instead of Ray's trial directory, so one
    `--logdir` shows every trial. Being a TBXLoggerCallback, it also stands in for the one Ray adds by default."""

    def __init__(self, logdir: str) -> None:
        super().__init__()
        self.logdir = logdir

    def log_trial_start(self, trial: Any) -> None:
        if trial in self._trial_writer:
            self._trial_writer[trial].close()
        self._trial_writer[trial] = self._summary_writer_cls(str(Path(self.logdir) / trial.trial_id), flush_secs=30)
        self._trial_result[trial] = {}
