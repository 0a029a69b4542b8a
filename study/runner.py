"""Run and resume studies with Ray Tune: the public Python API behind `gan-study run/resume`.

Example (a notebook):
    >>> from study.spec import new_spec
    >>> from study.runner import run_study
    >>> outcome = run_study(new_spec(out="runs/smoke", space="smoke"))  # doctest: +SKIP
    >>> outcome.counts                                                  # doctest: +SKIP
    {'finished': 4}
"""
from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_spaces.design import DESIGN_ID, DESIGN_POINT
from search_spaces.space import MAX_CHECKED_COMBINATIONS, SearchSpace
from study.layout import JOURNAL_FILE
from study.algorithms import build_scheduler, build_search, pbt_space
from study.live import LiveOptions, live_dashboard
from study.progress import ProgressPrinter
from study.ray_fixes import tolerate_pruned_checkpoints
from study.results_store import ResultsStore
from study.spec import StudySpec, check_spec, is_remote
from study.tables import TERMINAL, load_tables
from study.trackers import tracker_callbacks
from study.trainable import data_args, load_train_set, make_trainable
from trainers import metric_keys as K
from trainers.errors import UserError

logger = logging.getLogger(__name__)


@dataclass
class StudyOutcome:
    study_dir: str
    counts: dict[str, int] = field(default_factory=dict)  # status -> number of trials
    interrupted: bool = False  # trials left unfinished (Ctrl-C): `gan-study resume` continues them

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else 0


def ensure_ray(address: str | None = None, *, dashboard: bool = False) -> bool:
    """Connect to a cluster (address, or RAY_ADDRESS as set by `ray job submit`) or start a local Ray.

    Returns True when this call started a local Ray: its nodes are all there will ever be.
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address)
        return False
    # "local": never attach by accident to another Ray instance running on this machine
    ray.init(address="local", include_dashboard=dashboard)
    return True


def check_gpus(gpus_per_trial: float, *, local: bool) -> None:
    """Refuse (local Ray) or warn about (a cluster, whose autoscaler may add nodes) --gpus-per-trial above
    what any node has: Ray would otherwise keep such trials pending forever."""
    import ray

    if gpus_per_trial <= 0:
        return
    most = max((float(n.get("Resources", {}).get("GPU", 0)) for n in ray.nodes() if n.get("Alive")), default=0.0)
    if gpus_per_trial <= most:
        return
    if local:
        fix = (f"use --gpus-per-trial {most:g} or less (fractions share a GPU)" if most else
               "use --gpus-per-trial 0 (CPU trials)")
        raise UserError(f"--gpus-per-trial {gpus_per_trial:g} but this machine has {most:g} GPUs (as Ray sees "
                        f"them), so no trial could ever start; {fix}, or run on a cluster with --address")
    logger.warning("--gpus-per-trial %g but no node of the cluster has more than %g GPUs now; trials wait "
                   "until the autoscaler adds a node with enough", gpus_per_trial, most)


def prepared_space(spec: StudySpec) -> tuple[SearchSpace, dict[str, Any]]:
    """The validated space, adjusted for the scheduler, and any extra param_space entries."""
    space = check_spec(spec)
    if spec.scheduler == "pbt":
        return pbt_space(space)
    return space, {}


def build_trainable(spec: StudySpec, space: SearchSpace) -> Any:
    from ray import tune

    fn = make_trainable(space, spec.study_dir, metric=spec.metric, cpus_per_trial=spec.cpus_per_trial,
                        cache_dir=os.environ.get("GAN_STUDY_CACHE", ""))
    return tune.with_resources(fn, {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial})


def build_callbacks(spec: StudySpec, space: SearchSpace, *, progress: bool) -> list:
    mirror = f"{spec.experiment_path}/study" if is_remote(spec.storage) else ""
    callbacks: list = [ResultsStore(spec.study_dir, space, scheduler=spec.scheduler, mirror_uri=mirror)]
    if progress:
        callbacks.append(ProgressPrinter(spec.name, spec.metric, spec.mode))
    callbacks.extend(tracker_callbacks(spec))  # --log-to: TensorBoard, MLflow, W&B (Ray's logger callbacks)
    return callbacks


def build_tuner(spec: StudySpec, *, progress: bool = True, points: list[dict] | None = None) -> Any:
    """A fresh Tuner for the spec (nothing runs until `.fit()`); `points` limits a design to those
    {design_id, seed} pairs (a resume from the results store)."""
    from ray import tune

    # A snapshot of the experiment state per checkpoint is what we want (resume loses little): no warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    tolerate_pruned_checkpoints()

    space, extra = prepared_space(spec)
    search_alg, param_space = build_search(space, spec.search, max_concurrent=spec.max_concurrent,
                                           seed=spec.search_seed, metric=spec.metric, mode=spec.mode)
    param_space.update(extra)
    if points is not None:
        param_space = {**space.fixed, DESIGN_POINT: tune.grid_search(points)}
    # Keep two checkpoints per trial (the newest may be torn by a crash). PBT keeps all: its exploits copy
    # other trials' checkpoints, and Ray's pruning then trips over already-deleted ones (Ray 2.60).
    keep = None if spec.scheduler == "pbt" else 2
    return tune.Tuner(
        build_trainable(spec, space),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=spec.mode, search_alg=search_alg,
            scheduler=build_scheduler(space, spec.scheduler), num_samples=1 if points is not None else spec.trial_samples,
            trial_dirname_creator=trial_dirname, reuse_actors=spec.reuse_workers,
        ),
        run_config=tune.RunConfig(
            name=spec.name, storage_path=spec.storage_path,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=keep),
            callbacks=build_callbacks(spec, space, progress=progress), verbose=0,
        ),
    )


def trial_dirname(trial: Any) -> str:
    return trial.trial_id


def warm_data_cache(space: SearchSpace) -> int:
    """Load every distinct training split of the space once in the driver, so the node's on-disk cache
    is warm before trials start (trials on other nodes fill their node's cache under a file lock)."""
    n = 0
    combos = space.combinations() if _n_combinations(space) <= MAX_CHECKED_COMBINATIONS else iter([{}])
    seen = set()
    for point in combos:
        cfg = space.resolve(point)
        key = tuple(sorted(data_args(cfg).items()))
        if key in seen:
            continue
        seen.add(key)
        load_train_set(cfg, os.environ.get("GAN_STUDY_CACHE", ""))
        n += 1
    logger.info("training splits cached: %d", n)
    return n


def _n_combinations(space: SearchSpace) -> int:
    n = 1
    for d in space.dims.values():
        n *= len(d.candidates())
    return n


def run_study(spec: StudySpec, *, progress: bool = True, address: str | None = None,
              dashboard: bool = False, live: LiveOptions | None = None) -> StudyOutcome:
    """Start a new study (STUDY_DIR must not hold one yet) and run it to the end or to Ctrl-C; with `live`,
    a live dashboard of it is served meanwhile (study/live.py)."""
    space, _ = prepared_space(spec)
    # Ray first: a study it could never schedule is refused before STUDY_DIR holds a study.json.
    check_gpus(spec.gpus_per_trial, local=ensure_ray(address, dashboard=dashboard))
    Path(spec.study_dir).mkdir(parents=True, exist_ok=True)
    spec.save()
    with _live(spec, live):
        warm_data_cache(space)
        tuner = build_tuner(spec, progress=progress)
        tuner.fit()
    return outcome(spec)


def _live(spec: StudySpec, live: LiveOptions | None) -> AbstractContextManager:
    return live_dashboard(spec.study_dir, live) if live else nullcontext()


def resume_study(spec: StudySpec, *, progress: bool = True, address: str | None = None,
                 live: LiveOptions | None = None, retry_errored: bool = False) -> StudyOutcome:
    """Finish an interrupted study: unfinished trials continue from their checkpoints, finished ones are
    kept as they are; errored ones too, unless `retry_errored` (they continue from their last checkpoint:
    for trials that ran out of --max-failures on reclaimed spot workers, not for a bug, which fails again)."""
    from ray import tune

    space, _ = prepared_space(spec)
    path = spec.experiment_path
    _unpack_journal(Path(spec.study_dir))
    if not tune.Tuner.can_restore(path) and space.design is not None and (Path(spec.study_dir) / JOURNAL_FILE).is_file():
        return resume_from_store(spec, space, progress=progress, address=address, live=live,
                                 retry_errored=retry_errored)
    if not tune.Tuner.can_restore(path):
        raise UserError(f"no Ray Tune experiment to resume at {path}: the study stopped before its first "
                        f"trial started; delete {spec.study_dir} and start it again with gan-study run")
    check_gpus(spec.gpus_per_trial, local=ensure_ray(address))
    with _live(spec, live):
        warm_data_cache(space)
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        tolerate_pruned_checkpoints()  # a killed driver's restored state may list checkpoints it pruned
        tuner = tune.Tuner.restore(path, trainable=build_trainable(spec, space), resume_unfinished=True,
                                   resume_errored=retry_errored, restart_errored=False)
        # The restored run config carries the callbacks pickled at launch; point them at STUDY_DIR as it is now.
        run_config = tuner._local_tuner.get_run_config()
        run_config.callbacks = build_callbacks(spec, space, progress=progress)
        tuner.fit()
    return outcome(spec)


def _unpack_journal(study_dir: Path) -> None:
    """An exported study carries its journal gzipped (study.export_results): unpack it to resume there."""
    import gzip

    packed = study_dir / (JOURNAL_FILE + ".gz")
    if packed.is_file() and not (study_dir / JOURNAL_FILE).is_file():
        with gzip.open(packed, "rb") as f:
            (study_dir / JOURNAL_FILE).write_bytes(f.read())


def remaining_points(spec: StudySpec, space: SearchSpace, *, retry_errored: bool = False
                     ) -> tuple[list[dict], list[str]]:
    """(the design's {design_id, seed} pairs no kept trial has run, the unfinished trials to drop)."""
    tables = load_tables(spec.study_dir)
    kept = set(TERMINAL) - ({K.STATUS_ERRORED} if retry_errored else set())
    done, stale = set(), []
    for tid, state in tables.trials.items():
        design = state.get("design")
        if state["status"] in kept and design:
            done.add((int(design[DESIGN_ID]), state["config"].get("seed")))
        else:
            stale.append(tid)
    points = [p for p in space.combinations() if (p[DESIGN_ID], p.get("seed")) not in done]
    return points, stale


def resume_from_store(spec: StudySpec, space: SearchSpace, *, progress: bool = True, address: str | None = None,
                      live: LiveOptions | None = None, retry_errored: bool = False) -> StudyOutcome:
    """Finish a designed study whose Ray state is gone (a committed results store on a new machine): the
    design says which trials exist, the journal which are done; unfinished ones start again from scratch."""
    points, stale = remaining_points(spec, space, retry_errored=retry_errored)
    store = ResultsStore(spec.study_dir, space, scheduler=spec.scheduler)
    store.load()
    if stale:
        store.drop(stale, "restarted: its Ray state was not kept")
    logger.info("resuming %s from its results store: %d of %d trials to run", spec.name, len(points),
                space.grid_size())
    if not points:
        return outcome(spec)
    check_gpus(spec.gpus_per_trial, local=ensure_ray(address))
    with _live(spec, live):
        warm_data_cache(space)
        build_tuner(spec, progress=progress, points=points).fit()
    return outcome(spec)


def outcome(spec: StudySpec) -> StudyOutcome:
    tables = load_tables(spec.study_dir)
    counts: dict[str, int] = {}
    for state in tables.trials.values():
        counts[state["status"]] = counts.get(state["status"], 0) + 1
    ended = sum(n for s, n in counts.items() if s in TERMINAL)
    interrupted = ended < max(len(tables.trials), tables.total_trials)  # open trials, or ones never created
    return StudyOutcome(spec.study_dir, dict(sorted(counts.items())), interrupted)

