"""`gan-study run`: start a study — many trials of a search space, scheduled by Ray Tune.

    gan-study run --space smoke --out runs/smoke
    gan-study run --space belmekki2022 --data pneumoniamnist --out runs/b22 --gpus-per-trial 0.5
    gan-study run --space wide --out runs/wide --search optuna --num-samples 64 --storage s3://bucket/studies
    gan-study run --space smoke --out runs/smoke --live --log-to tensorboard --log-to mlflow

Ctrl-C stops cleanly: results so far stay in STUDY_DIR and `gan-study resume STUDY_DIR` continues.
"""
from __future__ import annotations

import argparse
import os

from search_spaces.space import SCHEDULERS, SEARCHES, available_spaces
from study.live import add_live_arguments, live_kwargs
from study.trackers import TRACKERS
from trainers.config import parse_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", required=True,
                        help=f"search space name ({', '.join(available_spaces())}) or path to a YAML file")
    parser.add_argument("--data", default=None,
                        help="phantom | pneumoniamnist | path to a Kaggle tree or .npz (default: the space's)")
    parser.add_argument("--out", required=True, help="study directory STUDY_DIR (must not hold a study yet)")
    parser.add_argument("--search", choices=SEARCHES, default=None, help="default: the space's (usually grid)")
    parser.add_argument("--scheduler", choices=SCHEDULERS, default=None, help="default: the space's (usually fifo)")
    parser.add_argument("--num-samples", type=int, default=None,
                        help="grid: repeats of the grid; random/optuna: number of trials (default: the space's)")
    parser.add_argument("--max-concurrent", type=int, default=None, help="trials at a time (0 = as resources allow)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions share a GPU, e.g. 0.5")
    parser.add_argument("--storage", default=os.environ.get("GAN_STUDY_STORAGE", ""),
                        help="Ray experiment storage: s3://bucket/prefix, gs://..., or a shared path; needed on "
                             "multi-node clusters (default: $GAN_STUDY_STORAGE, else STUDY_DIR/ray)")
    parser.add_argument("--metric", default=None, help="metric to optimise (default: the space's, usually fid)")
    parser.add_argument("--mode", choices=("min", "max"), default=None)
    parser.add_argument("--max-failures", type=int, default=1,
                        help="restarts of a failed trial from its last checkpoint (-1 = forever)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random/Optuna sampler")
    parser.add_argument("--reuse-workers", action="store_true",
                        help="run later trials in finished trials' worker processes (saves ~5-10 s of process "
                             "start and torch import per trial; on CPU, peak_memory_mb then carries over)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="fix any config key or factor for every trial, e.g. --set iterations=500 (repeatable)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: RAY_ADDRESS, else a local Ray); 'auto' on a cluster head")
    parser.add_argument("--dashboard", action="store_true", help="start Ray's dashboard with a local Ray")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--log-to", dest="log_to", action="append", default=[], choices=TRACKERS,
                        help="also log every trial to an experiment tracker (repeatable): TensorBoard event files "
                             "in STUDY_DIR/tensorboard, MLflow, Weights & Biases (offline unless WANDB_API_KEY "
                             "is set); each needs its extra, e.g. pip install -e '.[mlflow]'")
    parser.add_argument("--mlflow-uri", default=None, metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the file store "
                             "STUDY_DIR/mlruns)")
    parser.add_argument("--plan-file", default=None, metavar="FILE",
                        help="pre-registered analysis plan (YAML, analysis/plan.py), recorded in study.json before "
                             "the first trial; or put it in the space's analysis: block")
    add_live_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from study.api import run_study

    study = run_study(
        args.space, out=args.out, data=args.data, overrides=parse_overrides(args.overrides), search=args.search,
        scheduler=args.scheduler, num_samples=args.num_samples, max_concurrent=args.max_concurrent,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, storage=args.storage,
        metric=args.metric, mode=args.mode, max_failures=args.max_failures, seed=args.seed,
        reuse_workers=args.reuse_workers, address=args.address or None, dashboard=args.dashboard,
        progress=not args.quiet, log_to=args.log_to, mlflow_uri=args.mlflow_uri, plan_file=args.plan_file,
        **live_kwargs(args),
    )
    return 130 if study.interrupted else 0
