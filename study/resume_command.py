"""`gan-study resume STUDY_DIR`: finish a study stopped by Ctrl-C, a crash or kill -9 of the driver.

Unfinished trials continue from their latest checkpoints; finished, diverged, stopped and errored
trials are kept as they are. Because the training loop resumes exactly, the final results equal
those of an uninterrupted run (on CPU, same config and seed).
"""
from __future__ import annotations

import argparse

from study.run_command import report_outcome
from study.spec import read_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_dir", metavar="DIR", help="the study directory given to gan-study run --out")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else local)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def main(args: argparse.Namespace) -> int:
    spec = read_spec(args.study_dir)
    from study.runner import resume_study

    print(f"resuming study {spec.name} from {spec.experiment_path}", flush=True)
    return report_outcome(resume_study(spec, progress=not args.quiet, address=args.address or None))
