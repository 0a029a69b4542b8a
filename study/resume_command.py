"""`gan-study resume STUDY_DIR`: finish a study stopped by Ctrl-C, a crash or kill -9 of the driver.

Unfinished trials continue from their latest checkpoints; finished, diverged, stopped and errored
trials are kept as they are (`--retry-errored`: errored ones continue from their last checkpoint too). Because the training loop resumes exactly, the final results equal
those of an uninterrupted run (on CPU, same config and seed).
"""
from __future__ import annotations

import argparse

from study.live import add_live_arguments, live_kwargs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_dir", metavar="DIR", help="the study directory given to gan-study run --out")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else local)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--retry-errored", action="store_true",
                        help="continue errored trials from their last checkpoint too (e.g. killed more often than "
                             "--max-failures on spot workers); a trial that errored from a bug fails again")
    parser.add_argument("--plan-file", default=None, metavar="FILE",
                        help="check that FILE is the plan the study recorded (a different plan is refused)")
    parser.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                        help="trials at a time from now on (a designed study resumed from its results store; "
                             "a restored Ray experiment keeps the number it started with)")
    add_live_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from study.api import resume_study

    study = resume_study(args.study_dir, address=args.address or None, progress=not args.quiet,
                         retry_errored=args.retry_errored, plan_file=args.plan_file,
                         max_concurrent=args.max_concurrent, **live_kwargs(args))
    return 130 if study.interrupted else 0
