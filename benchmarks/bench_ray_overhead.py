"""What does running a study through Ray Tune cost over running its trials by hand?

Runs the same N trials (the smoke space's tiny GAN, 1 CPU thread each, iterations calibrated so one
trial takes about --trial-seconds) twice:
  1. one after another in this process (`trainers.loop.train`), and
  2. as a study through Ray Tune with --concurrency trials at a time (`study.runner.run_study`).
The overhead ratio is  ray_wall / (sequential_wall / concurrency);  1.0 is ideal. Ray pays a worker
process start, torch import, checkpoint copies and result plumbing per trial, so the ratio falls as
trials get longer. Aim: <= 1.3 with trials of >= 30 s on 2 cores.

On a shared machine the concurrent trials also run slower than the sequential ones (CPU contention,
not Ray), so a second ratio divides by the trials' own training time *in the Ray run*:
ray_wall / (sum of the trials' wall_s / concurrency) -- the share of wall time Ray adds around them.

    python benchmarks/bench_ray_overhead.py --trials 8 --trial-seconds 30 --concurrency 2
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_space(out: Path, trials: int, iterations: int) -> Path:
    """The smoke space with enough seeds for `trials` trials and a calibrated length."""
    raw = yaml.safe_load((REPO / "search_spaces" / "smoke.yaml").read_text())
    per_seed = 4  # optimizer x ttur
    raw["seeds"] = list(range(max(1, -(-trials // per_seed))))
    raw["fixed"].update(eval_at_end=False, downstream="", iterations=iterations, report_every=max(10, iterations // 10),
                        num_threads=1)
    path = out / "bench_space.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def calibrate(seconds: float) -> int:
    """Iterations for one trial of about `seconds` (1 thread), from a short timed run."""
    from search_spaces.space import load_space
    from study.trainable import load_train_set
    from trainers.loop import train

    cfg = load_space("smoke").resolve({"optimizer": "adam", "ttur": "off", "seed": 0})
    cfg = cfg.replace(eval_at_end=False, downstream="", num_threads=1, iterations=60, report_every=20, device="cpu")
    data = load_train_set(cfg)
    with tempfile.TemporaryDirectory() as d:
        train(cfg.replace(iterations=10), Path(d) / "warm", train_set=data)  # first-call costs
        t = time.perf_counter()
        train(cfg, Path(d) / "timed", train_set=data)
        per_it = (time.perf_counter() - t) / cfg.iterations
    return max(20, round(seconds / per_it / 10) * 10)


def run_sequential(space_path: Path, trials: int, out: Path) -> float:
    from search_spaces.space import load_space
    from study.trainable import load_train_set
    from trainers.loop import train

    space = load_space(space_path)
    points = list(space.combinations())[:trials]
    t = time.perf_counter()
    for i, point in enumerate(points):
        cfg = space.resolve(point).replace(device="cpu")
        train(cfg, out / f"trial{i}", train_set=load_train_set(cfg))
    return time.perf_counter() - t


def run_ray(space_path: Path, trials: int, concurrency: int, out: Path, reuse: bool) -> tuple[float, float, float]:
    import ray

    from study.runner import run_study
    from study.spec import new_spec
    from trainers.metric_keys import STATUS_FINISHED

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    t = time.perf_counter()
    ray.init(address="local", num_cpus=concurrency, include_dashboard=False, log_to_driver=False)
    t_fit = time.perf_counter()
    spec = new_spec(out=str(out), space=str(space_path), max_concurrent=concurrency, cpus_per_trial=1,
                    metric="d_loss_mean", mode="max", reuse_workers=reuse)
    outcome = run_study(spec, progress=False)
    end = time.perf_counter()
    ray.shutdown()
    n = sum(outcome.counts.values())
    if n != trials or outcome.counts.get(STATUS_FINISHED) != trials:
        raise RuntimeError(f"expected {trials} finished trials, got {outcome.counts}")
    from study.tables import load_tables

    trial_seconds = float(load_tables(out).trials_frame()["wall_s"].sum())
    return end - t, end - t_fit, trial_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--trial-seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--out", default="", help="working directory (default: a temporary one)")
    parser.add_argument("--reuse-workers", choices=("no", "yes", "both"), default="both",
                        help="run the Ray study with fresh worker processes per trial, reused ones, or both")
    args = parser.parse_args()
    if args.trials % 4:
        parser.error("--trials must be a multiple of 4 (the smoke grid has 4 cells per seed)")

    out = Path(args.out or tempfile.mkdtemp(prefix="bench-ray-"))
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GAN_STUDY_CACHE", str(out / "cache"))
    iterations = calibrate(args.trial_seconds)
    space = make_space(out, args.trials, iterations)
    sequential = run_sequential(space, args.trials, out / "sequential")
    ideal = sequential / args.concurrency
    result: dict = {
        "trials": args.trials, "concurrency": args.concurrency, "iterations_per_trial": iterations,
        "sequential_s": round(sequential, 1), "mean_trial_s": round(sequential / args.trials, 1),
        "ideal_s": round(ideal, 1), "load_average_1min": round(os.getloadavg()[0], 2),
    }
    modes = {"no": [False], "yes": [True], "both": [False, True]}[args.reuse_workers]
    for reuse in modes:
        tag = "reused_workers" if reuse else "fresh_workers"
        total, study, trial_seconds = run_ray(space, args.trials, args.concurrency, out / f"study_{tag}", reuse)
        result[f"ray_s_{tag}"] = round(total, 1)
        result[f"overhead_ratio_{tag}"] = round(total / ideal, 3)
        result[f"overhead_ratio_{tag}_without_ray_start"] = round(study / ideal, 3)
        result[f"trial_training_s_{tag}"] = round(trial_seconds, 1)
        result[f"overhead_ratio_{tag}_vs_own_training"] = round(total / (trial_seconds / args.concurrency), 3)
    (out / "bench_ray_overhead.json").write_text(json.dumps(result, indent=2))
    for key, value in result.items():
        print(f"{key:>34}: {value}")


if __name__ == "__main__":
    main()
