"""A compact progress line for the terminal, instead of Ray's wide status tables.

    [smoke 0:42] 4 trials: 2 finished, 2 running, 0 pending | best fid 231.4 (a1b2c_00001)

Printed when a trial ends and otherwise at most every `every_s` seconds.
"""
from __future__ import annotations

import math
import time
from typing import Any

from ray import tune
from ray.tune.experiment import Trial

from trainers import metric_keys as K


class ProgressPrinter(tune.Callback):
    def __init__(self, study: str, metric: str, mode: str, every_s: float = 15.0) -> None:
        self.study, self.metric, self.mode, self.every_s = study, metric, mode, every_s
        self._start = time.monotonic()
        self._last = 0.0

    def __setstate__(self, state: dict[str, Any]) -> None:  # restored from tuner.pkl: restart the clock
        self.__dict__.update(state)
        self._start = time.monotonic()
        self._last = 0.0

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self._last >= self.every_s:
            self.show(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.show(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.show(trials)

    def show(self, trials: list) -> None:
        self._last = time.monotonic()
        print(self.line(trials), flush=True)

    def line(self, trials: list) -> str:
        counts: dict[str, int] = {}
        best: tuple[float, str] | None = None
        sign = 1.0 if self.mode == "min" else -1.0
        for trial in trials:
            status = _status(trial)
            counts[status] = counts.get(status, 0) + 1
            value = (trial.last_result or {}).get(self.metric)
            if isinstance(value, (int, float)) and not math.isnan(value) and (
                    best is None or sign * value < sign * best[0]):
                best = (float(value), trial.trial_id)
        elapsed = int(time.monotonic() - self._start)
        order = (K.STATUS_FINISHED, K.STATUS_DIVERGED, K.STATUS_STOPPED, K.STATUS_ERRORED, K.STATUS_RUNNING,
                 K.STATUS_PENDING)
        parts = ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s))
        text = f"[{self.study} {elapsed // 60}:{elapsed % 60:02d}] {len(trials)} trials: {parts or 'none yet'}"
        if best is not None:
            text += f" | best {self.metric} {best[0]:.4g} ({best[1]})"
        return text


def _status(trial: Any) -> str:
    reported = (trial.last_result or {}).get(K.STATUS)
    if trial.status == Trial.ERROR:
        return K.STATUS_ERRORED
    if trial.status == Trial.TERMINATED:
        return reported if reported in (K.STATUS_FINISHED, K.STATUS_DIVERGED) else K.STATUS_STOPPED
    if trial.status in (Trial.RUNNING, Trial.PAUSED):
        return K.STATUS_RUNNING
    return K.STATUS_PENDING
