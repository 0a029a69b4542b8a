"""`gan-study reproduce PAPER --out DIR [--scale cpu|gpu]`: run a seed paper's experiment end to end.

Runs the paper's study (or resumes it: the same command again after Ctrl-C or a crash continues where it
stopped), analyses it, and writes DIR/comparison.md: the paper's figures beside ours with confidence
intervals and a verdict per claim. DIR holds the study (a directory named after its space, e.g.
`belmekki2022_cpu/`), `report/` (gan-study analyze's output) and `comparison.md`. `--plan` only validates every trial and prints the study's size and cost.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from study.layout import STUDY_FILE
from study.papers import PAPERS, SCALES, Paper, describe, get_paper
from trainers.errors import UserError

REPORT_SUBDIR, COMPARISON_FILE = "report", "comparison.md"
GPU_PER_TRIAL = 0.25  # gpu scale: four small DCGAN trials share one GPU


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "papers:\n" + describe() + (
        "\n\nscales:\n  cpu    32 px PneumoniaMNIST, small CNN: fits a 2-core machine"
        "\n  gpu    the paper's own setting (64-128 px Kaggle tree, VGG-16 where the paper used it)"
        "\n  smoke  toy sizes on the procedural phantom: a pipeline check, never findings")
    parser.add_argument("paper", help=f"one of: {', '.join(PAPERS)}")
    parser.add_argument("--out", required=True, type=Path, help="output directory (resumes when it holds a run)")
    parser.add_argument("--scale", choices=SCALES, default="cpu")
    parser.add_argument("--data", default=None, help="data source (default: pneumoniamnist at cpu scale; "
                        "the Kaggle tree is required at gpu scale)")
    parser.add_argument("--gpus-per-trial", type=float, default=None,
                        help=f"default {GPU_PER_TRIAL} at gpu scale, 0 otherwise")
    parser.add_argument("--max-concurrent", type=int, default=None, help="default: the space's")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples per CI")
    parser.add_argument("--plan", action="store_true", help="validate every trial and print size and cost only")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def main(args: argparse.Namespace) -> int:
    paper = get_paper(args.paper)
    if args.plan:
        print(plan_text(paper, args.scale, data=args.data))
        return 0
    code = reproduce(paper.name, out=args.out, scale=args.scale, data=args.data, gpus_per_trial=args.gpus_per_trial,
                     max_concurrent=args.max_concurrent, n_resamples=args.resamples, progress=not args.quiet)
    return code


def reproduce(paper_name: str, *, out: str | Path, scale: str = "cpu", data: str | None = None,
              gpus_per_trial: float | None = None, max_concurrent: int | None = None, n_resamples: int = 2000,
              progress: bool = True) -> int:
    """Run (or resume) the paper's study, analyse it and write OUT/comparison.md; returns an exit code."""
    from study.api import report_outcome
    from study.runner import outcome, resume_study, run_study
    from study.spec import read_spec

    paper = get_paper(paper_name)
    if scale not in SCALES:
        raise UserError(f"--scale {scale!r} is not allowed; allowed: {', '.join(SCALES)}")
    out = Path(out).expanduser()
    study_dir = out / paper.space_for(scale)
    start = time.perf_counter()
    if (study_dir / STUDY_FILE).is_file():
        spec = read_spec(study_dir)
        _check_same_run(spec, paper, scale)
        if outcome(spec).interrupted:
            print(f"resuming {paper.name} ({scale}) in {study_dir}", flush=True)
            result = resume_study(spec, progress=progress)
        else:
            result = outcome(spec)
    else:
        spec = study_spec(paper, scale, study_dir, data=data, gpus_per_trial=gpus_per_trial,
                          max_concurrent=max_concurrent)
        print(f"reproducing {paper.name} (seed {paper.seed}) at {scale} scale: space {spec.space} -> {study_dir}",
              flush=True)
        result = run_study(spec, progress=progress)
    if result.interrupted:
        report_outcome(result)
        print(f"continue with the same command: gan-study reproduce {paper.name} --out {out} --scale {scale}")
        return result.exit_code
    text = write_outputs(paper, scale, study_dir, out, n_resamples=n_resamples)
    print(f"wrote {out / COMPARISON_FILE} and {out / REPORT_SUBDIR}/ in {time.perf_counter() - start:.0f} s")
    verdicts = [line for line in text.splitlines() if line.startswith("| ") and "**" in line]
    for line in verdicts:
        print(line)
    return 0


def study_spec(paper: Paper, scale: str, study_dir: Path, *, data: str | None = None,
               gpus_per_trial: float | None = None, max_concurrent: int | None = None) -> Any:
    """The checked StudySpec of a paper at a scale (nothing runs)."""
    from study.spec import new_spec

    if scale == "gpu" and not data:
        raise UserError(f"--scale gpu needs --data: {paper.gpu_data_hint}, e.g. --data /data/chest_xray")
    overrides = paper.overrides_for(scale)
    if scale == "smoke":
        data = None  # the phantom, from the overrides
    elif not data:
        data = "pneumoniamnist"
    gpus = GPU_PER_TRIAL if (gpus_per_trial is None and scale == "gpu") else (gpus_per_trial or 0.0)
    return new_spec(out=str(study_dir), space=paper.space_for(scale), data=data, overrides=overrides,
                    max_concurrent=max_concurrent, gpus_per_trial=gpus, cpus_per_trial=2.0 if gpus else 1.0)


def write_outputs(paper: Paper, scale: str, study_dir: Path, out: Path, *, n_resamples: int = 2000) -> str:
    """Analysis (report/) and comparison.md of a finished study; returns the comparison text."""
    from analysis.analyze_command import write_analysis
    from analysis.comparison import compare
    from analysis.pipeline import analyze
    from trainers.atomic import atomic_path

    result = analyze([study_dir], n_resamples=n_resamples, n_permutations=n_resamples, seed=0,
                     include_reference=paper.name == "belmekki2022")
    write_analysis(result, out / REPORT_SUBDIR)
    text = compare(paper.name, result, scale=scale, n_resamples=n_resamples)
    with atomic_path(out / COMPARISON_FILE) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return text


def plan_text(paper: Paper, scale: str, *, data: str | None = None) -> str:
    """Validate every trial config of the paper's study and estimate its compute (no training)."""
    from study.cost import estimate_cost

    spec = study_spec(paper, scale, Path("plan"), data=data or ("phantom" if scale == "gpu" else None))
    space = spec.load_space()
    configs = [space.resolve(point) for point in space.combinations()]  # resolving validates each trial
    cost = estimate_cost(configs)
    lines = [f"{paper.name} (seed {paper.seed}) at {scale} scale: space {spec.space}, {len(configs)} trials, "
             f"every config valid",
             f"training: {cost['images'] / 1e6:.1f} M images through G and D, {cost['train_tflop']:.0f} TFLOP "
             f"(measured per step with torch's FLOP counter)",
             f"evaluations: {cost['evaluations']} FID/KID evaluations, {cost['eval_tflop']:.1f} TFLOP",
             f"estimate: {cost['gpu_hours']:.2f} H100-hours at an assumed {cost['assumed_tflops']:.0f} TFLOP/s "
             f"achieved (replace with benchmarks/device_check.sh's measurement); "
             f"{cost['cpu_hours']:.1f} CPU-core-hours at {cost['assumed_cpu_gflops']:.0f} GFLOP/s per core"]
    return "\n".join(lines)


def _check_same_run(spec: Any, paper: Paper, scale: str) -> None:
    expected = paper.space_for(scale)
    if Path(spec.space).stem != expected:
        raise UserError(f"{spec.study_dir} holds a study of space {spec.space!r}, not {expected!r} "
                        f"({paper.name} at {scale} scale); choose another --out")
