"""Search algorithms and schedulers for a study, from their CLI names.

search:    grid   - every combination of the grid keys (x num_samples), ranges sampled (BasicVariantGenerator)
           random - grid keys become random choices; num_samples points (BasicVariantGenerator)
           optuna - TPE over the space's Optuna distributions, grid keys categorical (OptunaSearch)
scheduler: fifo   - every trial runs to the end
           asha   - asynchronous successive halving on the trainer's `iteration` metric (fixed report
                    cadence, so rungs mean the same amount of training for every trial)
           pbt    - population based training: lr_g and lr_d are perturbed (x0.8/x1.2 or resampled) and,
                    half the time, lr_d is reset to lr_g x a TTUR ratio in {1, 2, 4}; exploiting trials
                    continue from the better trial's checkpoint. PBT cannot be combined with a searcher.
ASHA and PBT decide only at reports where the metric was measured (study/schedulers.py): a rung or
perturbation falling on a report without FID is decided at the next report that has one.
"""
from __future__ import annotations

import dataclasses
import random
from typing import Any

from search_spaces.space import SearchSpace
from study.trainable import PBT_MUTABLE
from trainers import metric_keys as K
from trainers.errors import UserError

DEFAULT_LR_RANGE = (1e-5, 1e-2)  # compare_gan's wide range, used by PBT when the space fixes the rates
TTUR_RATIOS = (1.0, 2.0, 4.0)


def build_search(space: SearchSpace, search: str, *, max_concurrent: int, seed: int, metric: str,
                 mode: str) -> tuple[Any, dict]:
    """(search_alg, param_space) for the Tuner. Concurrency is applied here (Ray ignores
    TuneConfig.max_concurrent_trials for an explicit BasicVariantGenerator)."""
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    if search == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        # metric/mode go in here: an OptunaSearch built with a space ignores TuneConfig's (Ray 2.60).
        searcher = OptunaSearch(space=space.to_optuna(), metric=metric, mode=mode,
                                sampler=optuna.samplers.TPESampler(seed=seed))
        if max_concurrent:
            searcher = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
        return searcher, space.to_tune("optuna")
    return BasicVariantGenerator(max_concurrent=max_concurrent, random_state=seed), space.to_tune(search)


def build_scheduler(space: SearchSpace, scheduler: str) -> Any:
    """A Tune scheduler without metric/mode (TuneConfig passes them)."""
    from ray.tune.schedulers import FIFOScheduler

    from study.schedulers import MeasuredASHA, MeasuredPBT

    if scheduler == "fifo":
        return FIFOScheduler()
    max_t, every = _extreme(space, "iterations", max), _extreme(space, "report_every", min)
    if scheduler == "asha":
        # Rungs at grace, 3x grace, 9x grace ... <= max_t, with grace at least one report.
        return MeasuredASHA(time_attr=K.ITERATION, max_t=max_t, grace_period=max(every, max_t // 9),
                            reduction_factor=3)
    interval = max(every, (max_t // 4) // every * every)
    low, high = _lr_range(space)
    from ray import tune

    return MeasuredPBT(
        time_attr=K.ITERATION, perturbation_interval=interval, burn_in_period=0,
        hyperparam_mutations={key: tune.loguniform(low, high) for key in PBT_MUTABLE},
        custom_explore_fn=explore_ttur_ratio, quantile_fraction=0.25, resample_probability=0.25,
    )


def explore_ttur_ratio(config: dict) -> dict:
    """PBT's extra move: half the time set lr_d to lr_g times a TTUR ratio (Heusel et al. use D faster)."""
    if random.random() < 0.5:
        config["lr_d"] = config["lr_g"] * random.choice(TTUR_RATIOS)
    return config


def pbt_space(space: SearchSpace) -> tuple[SearchSpace, dict[str, Any]]:
    """The space as PBT needs it: lr_g/lr_d mutable and present in every trial's config.

    Returns the adjusted space and the param_space entries that give lr_g/lr_d their initial values.
    """
    from ray import tune

    for name in space.factors:
        if name in space.dims and set(space.fields_of(name)) & set(PBT_MUTABLE):
            raise UserError(f"--scheduler pbt mutates lr_g and lr_d itself, but the searched factor {name!r} sets "
                            f"them; fix it (e.g. --set {name}={space.dims[name].values[0]}) or use fifo/asha")
    first = space.resolve(next(space.combinations(), {}))
    initial: dict[str, Any] = {}
    for key in PBT_MUTABLE:
        if key in space.dims:
            continue
        source = space.ties.get(key)
        if source in space.dims:  # tied to a searched key: start equal to it, then mutate on its own
            initial[key] = tune.sample_from(_copy_of(source))
        else:
            initial[key] = getattr(first, key)
    ties = {t: s for t, s in space.ties.items() if t not in PBT_MUTABLE}
    return dataclasses.replace(space, mutable=PBT_MUTABLE, ties=ties), initial


def _copy_of(source: str) -> Any:
    def copy(spec: Any) -> Any:
        return spec.config[source]

    return copy


def _extreme(space: SearchSpace, key: str, pick: Any) -> int:
    if key in space.dims:
        return int(pick(space.dims[key].values))
    return int(getattr(space.resolve(next(space.combinations(), {})), key))


def _lr_range(space: SearchSpace) -> tuple[float, float]:
    for key in PBT_MUTABLE:
        d = space.dims.get(key)
        if d is not None and not d.categorical:
            return float(d.values[0]), float(d.values[1])
    return DEFAULT_LR_RANGE
