"""ASHA and PBT that decide only on measured values of the study's metric.

The trainer reports every `report_every` steps, but an evaluated metric (FID, KID, ...) is measured
only every `fid_every` reports; the other reports carry NaN, because Ray rejects a result without the
study's metric. Ray's schedulers would decide on those NaNs: ASHA records a NaN at a rung (it passes
every cutoff, and the trial's real value at that rung is never compared), PBT spends a perturbation
on a NaN score and skips the trial in its quantiles. These subclasses hand a report to the scheduler
only when its metric is a finite number, so each rung or perturbation is decided at the first measured
report at or after its time (in iterations, as before) and every decision compares measured values.
Training signals such as d_loss_mean are measured at every report: nothing changes for them.
"""
from __future__ import annotations

import math
from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, PopulationBasedTraining, TrialScheduler


def is_measured(value: Any) -> bool:
    """True for a finite number (a metric measured at this report), False for NaN, None, strings."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _MeasuredOnly:
    """Mixin: the scheduler sees only results whose metric was measured."""

    metric: str | None

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if not is_measured(result.get(self.metric)):
            return TrialScheduler.CONTINUE  # nothing measured here: the decision waits for the next value
        return super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if not is_measured(result.get(self.metric)):
            # Ray's schedulers skip a final result without the metric instead of recording it at a rung.
            result = {k: v for k, v in result.items() if k != self.metric}
        super().on_trial_complete(tune_controller, trial, result)  # type: ignore[misc]


class MeasuredASHA(_MeasuredOnly, AsyncHyperBandScheduler):
    """AsyncHyperBandScheduler whose rungs record only measured values."""


class MeasuredPBT(_MeasuredOnly, PopulationBasedTraining):
    """PopulationBasedTraining that perturbs (ranks, exploits) only on measured values."""
