"""The function Ray Tune runs per trial: a flat config in, `trainers.loop.train` with a reporter out.

Per trial it:
  1. turns the flat Ray config into a TrialConfig (the space's factors and ties applied);
  2. picks the device from what Ray assigned: CUDA only when Ray gave the trial a GPU *and* torch sees
     one (a logical GPU on a machine without CUDA falls back to CPU, with a warning);
  3. restores: Ray's checkpoint (`tune.get_checkpoint()`: after a failure, on resume, or a PBT donor's)
     is copied to STUDY_DIR/trials/<trial_id>/checkpoint/ unless that directory already holds a
     newer checkpoint of the same config (the driver died after the trial wrote it);
  4. loads the training split through the node's on-disk cache under a file lock, so the first trial
     on a node fills the cache and the others read it;
  5. calls `train()` with a reporter that forwards every report to `tune.report` with the checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search_spaces.space import SearchSpace
from study.layout import TRIALS_DIRNAME
from study.results_store import plain_value
from trainers import metric_keys as K
from trainers.config import TrialConfig
from trainers.layout import CHECKPOINT_FILENAME, METRICS_FILE

logger = logging.getLogger(__name__)

PBT_MUTABLE = ("lr_g", "lr_d")


def make_trainable(space: SearchSpace, study_dir: str, *, metric: str, cpus_per_trial: float,
                   cache_dir: str = "") -> Callable[[dict], None]:
    """The per-trial function (a closure, so Ray ships the space and paths with it)."""

    def gan_trial(config: dict) -> None:
        run_trial(config, space=space, study_dir=study_dir, metric=metric, cpus_per_trial=cpus_per_trial,
                  cache_dir=cache_dir)

    return gan_trial


def run_trial(config: dict, *, space: SearchSpace, study_dir: str, metric: str, cpus_per_trial: float,
              cache_dir: str = "") -> None:
    from ray import tune

    from trainers.loop import train

    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # one line per checkpoint
    if cache_dir:  # the driver's cache setting wins over whatever environment the worker started with
        os.environ["GAN_STUDY_CACHE"] = cache_dir
    trial_id = tune.get_context().get_trial_id()
    out_dir = Path(study_dir) / TRIALS_DIRNAME / trial_id
    out_dir.mkdir(parents=True, exist_ok=True)

    cfg = space.resolve(config)
    cfg = cfg.replace(device=pick_device(cfg.device, trial_id),
                      num_threads=cfg.num_threads or max(1, int(cpus_per_trial)))
    ray_step = restore_checkpoint(tune.get_checkpoint(), out_dir, cfg)
    train_set = load_train_set(cfg, cache_dir)

    def reporter(metrics: dict, checkpoint_dir: Path | None) -> None:
        payload = {k: plain_value(v) for k, v in metrics.items()}
        # Ray rejects a result without the study's metric; "not measured at this report" is NaN.
        payload.setdefault(metric, math.nan)
        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report(payload, checkpoint=checkpoint)

    for record in replay_reports(out_dir, ray_step):
        reporter(record, None)
    train(cfg, out_dir, reporter=reporter, resume=True, train_set=train_set)


def pick_device(requested: str, trial_id: str = "") -> str:
    """'cuda' only when Ray assigned this trial a GPU and torch can use it; never a GPU Ray did not give."""
    import ray
    import torch

    if requested == "cpu":
        return "cpu"
    gpu_ids = ray.get_gpu_ids()
    if gpu_ids and torch.cuda.is_available():
        return "cuda"
    if gpu_ids:
        logger.warning("trial %s: Ray assigned GPU %s but torch sees no CUDA device; training on CPU",
                       trial_id, gpu_ids)
    elif requested == "cuda":
        logger.warning("trial %s: device=cuda but Ray assigned no GPU (--gpus-per-trial 0); training on CPU",
                       trial_id)
    return "cpu"


def restore_checkpoint(checkpoint: Any, out_dir: Path, cfg: TrialConfig) -> int:
    """Put the checkpoint this trial must continue from at out_dir/checkpoint/checkpoint.pt.

    Returns the step of the checkpoint Ray knows (0 for none): when the trial's own checkpoint is
    newer, the reports between the two may never have reached the driver (see `replay_reports`).
    """
    from trainers.checkpoint import checkpoint_path, config_changes, load_checkpoint, save_checkpoint

    def same_config(state: dict) -> bool:
        return not config_changes(state["config"], cfg.to_dict())

    local = checkpoint_path(out_dir)
    local_state = _read_state(local)
    if checkpoint is None:
        if local_state is not None and not same_config(local_state):
            local.unlink()  # a leftover of another config: start this one fresh
        return 0
    with checkpoint.as_directory() as d:
        ray_file = Path(d) / CHECKPOINT_FILENAME
        ray_state = _read_state(ray_file)
        if ray_state is None:
            raise FileNotFoundError(f"Ray checkpoint {d} holds no {CHECKPOINT_FILENAME}")
        if local_state is not None and same_config(local_state) and local_state["step"] >= ray_state["step"]:
            return ray_state["step"]  # our own newer checkpoint: continue from it, the loop is exact either way
        if same_config(ray_state):
            _copy_atomic(ray_file, local)
            return ray_state["step"]
        # A checkpoint of another config: PBT exploited a better trial and mutated the config. Carry the
        # weights over, and set the mutated learning rates into the optimiser states, which would otherwise
        # restore the donor's.
        state = load_checkpoint(ray_file)
        for opt_key, lr in (("opt_g", cfg.lr_g), ("opt_d", cfg.lr_d)):
            for group in state[opt_key]["param_groups"]:
                group["lr"] = lr
        state["config"] = cfg.to_dict()
        save_checkpoint(state, local)
        logger.info("trial %s: continuing from a checkpoint of another config (PBT exploit) at step %s",
                    out_dir.name, ray_state["step"])
        return ray_state["step"]


def replay_reports(out_dir: Path, after_step: int) -> list[dict]:
    """The trial's own reports past `after_step`, up to the checkpoint it continues from.

    A worker killed (node lost) after its loop wrote a report and a checkpoint, but before Ray
    delivered the report to the driver, resumes past that report and would never send it again:
    these are sent again, and the results store keeps one row per (trial, iteration). When that
    checkpoint already ended the run, the loop reports nothing more, so its final report is always
    sent: Ray and the store then see the trial's outcome.
    """
    from trainers.checkpoint import checkpoint_path

    state, log = _read_state(checkpoint_path(out_dir)), out_dir / METRICS_FILE
    if state is None or not log.is_file():
        return []
    after = min(after_step, state["step"] - 1) if state["ended"] else after_step
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [r for r in records if after < int(r.get(K.ITERATION, 0)) <= state["step"]]


def _read_state(path: Path) -> dict | None:
    if not path.is_file():
        return None
    from trainers.checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    loop = ck.get("loop", {})
    return {"config": ck.get("config", {}), "step": int(loop.get("step", 0)),
            "ended": loop.get("status", K.STATUS_RUNNING) != K.STATUS_RUNNING}


def _copy_atomic(src: Path, dst: Path) -> None:
    from trainers.atomic import atomic_path

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def data_args(cfg: TrialConfig) -> dict[str, Any]:
    """The load_split arguments of a config's training split (the same call the loop makes)."""
    from trainers.data import task_options

    return {"source": cfg.data, "split": "train", "resolution": cfg.resolution, "hist_eq": cfg.hist_eq,
            "class_subset": cfg.class_subset, "limit": cfg.data_limit, "seed": cfg.seed, **task_options(cfg)}


def load_train_set(cfg: TrialConfig, cache_dir: str = "") -> Any:
    """Load the training split through the on-disk cache; one process per node fills it (file lock)."""
    from trainers.atomic import build_lock
    from trainers.data import default_cache_dir, load_split

    args = data_args(cfg)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    key = hashlib.sha1(repr(sorted(args.items())).encode()).hexdigest()[:16]
    with build_lock(root / "locks" / f"train-{key}"):
        return load_split(args.pop("source"), args.pop("split"), args.pop("resolution"),
                          cache_dir=cache_dir or None, **args)
