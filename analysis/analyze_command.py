"""`gan-study analyze STUDY_DIR [STUDY_DIR ...] -o OUT`: statistics, report.md, dashboard.html, csv/."""
from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from analysis.dashboard import render_dashboard
from analysis.export import write_csvs
from analysis.load import DEFAULT_STATUSES
from analysis.pipeline import Analysis, analyze
from analysis.report import render_report
from trainers.atomic import atomic_path
from trainers.errors import UserError

STATUSES = ("finished", "stopped", "diverged", "running", "errored")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_dirs", nargs="+", type=Path, help="study directories (several are analysed together)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output dir for dashboard.html, report.md, csv/")
    parser.add_argument("--statuses", default=",".join(DEFAULT_STATUSES),
                        help=f"comma list of trial statuses to analyse (default finished; any of "
                        f"{', '.join(STATUSES)})")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples per CI (default 2000)")
    parser.add_argument("--permutations", type=int, default=2000, help="permutations per p-value (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every resampling (default 0)")
    parser.add_argument("--color-by", default=None, help="config field that colours the scatter plots "
                        "(default: the first factor the study varied)")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="leave out the seed 002 Table I reference analysis (included by default)")
    parser.add_argument("--reference", dest="reference", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(reference=True)
    parser.add_argument("--no-yardstick", dest="yardstick", action="store_false",
                        help="do not compute a missing real-vs-real FID floor (committed and cached ones still show; "
                             "`gan-study yardstick` computes one)")
    parser.add_argument("--plan", type=Path, default=None, metavar="FILE",
                        help="an analysis plan written after the data (YAML, analysis/plan.py): its test is run and "
                             "labelled post hoc; a plan recorded in study.json before the first report is primary")


class Written(NamedTuple):
    result: Analysis
    n_figures: int  # in dashboard.html
    csvs: list[Path]


def main(args: argparse.Namespace) -> int:
    statuses = tuple(s.strip() for s in args.statuses.split(",") if s.strip())
    start = time.perf_counter()
    out: Path = args.out
    result, n_fig, csvs = analyze_into(args.study_dirs, out, statuses=statuses, n_resamples=args.resamples,
                                       n_permutations=args.permutations, seed=args.seed, color_by=args.color_by,
                                       include_reference=args.reference, plan_file=args.plan,
                                       yardstick=args.yardstick)
    counts = ", ".join(f"{k} {v}" for k, v in result.data.status_counts().items()) or "no trial table"
    print(f"analysed {len(result.analysed)} trials ({counts}) in {time.perf_counter() - start:.1f} s")
    print(f"wrote {out / 'dashboard.html'} ({n_fig} figures), {out / 'report.md'}, {len(csvs)} CSVs in {out / 'csv'}")
    for note in result.notes:
        print(f"note: {note}")
    return 0


def analyze_into(study_dirs: Iterable[str | Path], out: Path, *, statuses: tuple[str, ...] = DEFAULT_STATUSES,
                 n_resamples: int = 2000, n_permutations: int = 2000, seed: int = 0, color_by: str | None = None,
                 include_reference: bool = True, plan_file: str | Path | None = None,
                 yardstick: bool = True) -> Written:
    """Check the options as the CLI does, analyse the studies and write OUT/dashboard.html, report.md, csv/
    (shared by `gan-study analyze` and `Study.analyze` of the Python API)."""
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise UserError(f"--statuses {','.join(unknown)} is not a trial status; allowed: {', '.join(STATUSES)}")
    if n_resamples < 100 or n_permutations < 100:
        raise UserError(f"--resamples={n_resamples} / --permutations={n_permutations}: use at least 100")
    plan = None
    if plan_file is not None:
        from analysis.plan import load_plan_file

        plan = load_plan_file(plan_file)
    result = analyze(study_dirs, statuses=statuses, n_resamples=n_resamples, n_permutations=n_permutations,
                     seed=seed, include_reference=include_reference, plan=plan, yardstick=yardstick)
    n_fig, csvs = write_analysis(result, out, color_by=color_by)
    return Written(result, n_fig, csvs)


def write_analysis(result: Analysis, out: Path, *, color_by: str | None = None) -> tuple[int, list[Path]]:
    """OUT/dashboard.html, OUT/report.md and OUT/csv/; returns (figures in the dashboard, CSV paths)."""
    out.mkdir(parents=True, exist_ok=True)
    page, n_fig = render_dashboard(result, color_by=color_by)
    _write_atomic(out / "dashboard.html", page)
    _write_atomic(out / "report.md", render_report(result))
    return n_fig, write_csvs(result, out / "csv")


def _write_atomic(path: Path, text: str) -> None:
    """Temp file + rename, so a browser never opens a half-written dashboard."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
