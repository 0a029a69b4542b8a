"""`gan-study watch STUDY_DIR`: a live dashboard of a study that is running (or has finished), e.g. on a
cluster's head node; reach it from a laptop through `ssh -L 8600:127.0.0.1:8600 HEAD` (docs/CLUSTER.md).

    gan-study watch runs/b22                  # http://127.0.0.1:8600/ until Ctrl-C
    gan-study watch runs/b22 --once           # write runs/b22/live/dashboard.html once and exit

See study/live.py for what the page shows and how it stays current.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from study.live import DEFAULT_EVERY_S, LiveDashboard, add_serve_arguments, serve
from study.spec import read_spec
from trainers.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_dir", metavar="DIR", help="the study directory")
    add_serve_arguments(parser)
    parser.add_argument("--every", type=float, default=DEFAULT_EVERY_S, metavar="SECONDS",
                        help=f"least time between two regenerations of the page (default {DEFAULT_EVERY_S:g})")
    parser.add_argument("--out", type=Path, default=None, help="where the page goes (default DIR/live)")
    parser.add_argument("--resamples", type=int, default=200,
                        help="bootstrap resamples and permutations of the live analysis (default 200)")
    parser.add_argument("--once", action="store_true", help="write the page once and exit (no server)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)  # set by --live


def main(args: argparse.Namespace) -> int:
    spec = read_spec(args.study_dir)
    if args.every <= 0 or args.resamples < 100:
        raise UserError(f"--every {args.every:g} must be > 0 and --resamples {args.resamples} at least 100")
    dash = LiveDashboard(spec.study_dir, args.out, every_s=args.every, resamples=args.resamples)
    if args.once:
        dash.step(final=True)
        print(f"wrote {dash.page}")
        return 0
    logging.basicConfig(level=logging.WARNING, format="gan-study watch: %(message)s")
    try:  # second place to the study's trials, whose CPUs these are
        os.nice(10)
    except OSError:
        pass
    server = serve(dash.out, args.host, args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # from --live when the study ends: last page, exit
    if not args.quiet:
        print(f"live dashboard of {spec.name}: http://{args.host}:{server.server_address[1]}/ "
              f"(page regenerated at most every {args.every:g} s; Ctrl-C stops)", flush=True)
    try:
        dash.run(stop, parent_pid=args.parent_pid)
    except KeyboardInterrupt:
        dash.step(final=True)
    finally:
        server.shutdown()
        server.server_close()  # refuse new connections at once rather than leave them in the backlog
    if not args.quiet:
        print(f"stopped; the last page is {dash.page}")
    return 0


if __name__ == "__main__":  # `python -m study.watch_command DIR ...`: how --live starts the watcher
    from study.cli import main as cli_main

    sys.exit(cli_main(["watch", *sys.argv[1:]], only="watch"))
