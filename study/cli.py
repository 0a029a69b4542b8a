"""`gan-study` command line: one subcommand per job, each implemented in the module that owns it.

Every module named here exposes `add_arguments(parser)` and `main(args) -> int`.
User errors (bad config, missing data) print one line and exit 2; tracebacks are for bugs.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from trainers.errors import UserError

COMMANDS = {
    "trial": ("trainers.trial_command", "train one GAN configuration without Ray"),
    "data": ("trainers.data_command", "what a --data source holds: format, splits, classes, patients, rows left out"),
    "memory": ("trainers.memory", "measure memory per image of G and D against feature-map size (seed 002)"),
    "run": ("study.run_command", "run a study: many trials scheduled by Ray Tune"),
    "resume": ("study.resume_command", "finish an interrupted study"),
    "status": ("study.status_command", "progress table of a study"),
    "watch": ("study.watch_command", "serve a live dashboard of a running study"),
    "generate": ("study.generate_command", "write images from a trial checkpoint"),
    "tstr": ("study.tstr_command", "train-on-synthetic/test-on-real from one generator per class"),
    "reproduce": ("study.reproduce_command", "run a seed paper's experiment, analyse it, compare with the paper"),
    "analyze": ("analysis.analyze_command", "statistics, tables and an HTML dashboard from studies"),
    "yardstick": ("study.yardstick_command", "FID floor between real samples and extractor-seed robustness of a study"),
    "rescore": ("study.rescore_command", "re-score a study's kept generators with another feature extractor"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `only` that one (importing its module alone: a helper process such as
    the --live watcher need not import torch for the other commands' options)."""
    parser = argparse.ArgumentParser(prog="gan-study", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        if only and name != only:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None, *, only: str | None = None) -> int:
    args = build_parser(only).parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        return int(module.main(args) or 0)
    except UserError as exc:
        print(f"gan-study {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gan-study {args.command}: interrupted; results written so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
