"""The Python API: run, resume and load studies from a notebook or script (`gan-study run/resume/status`
are thin layers over it).

    from study import run_study, resume_study, load_study

    study = run_study("smoke", data="phantom", out="runs/smoke")   # blocks; same progress lines as the CLI
    study.trials, study.history                                    # pandas DataFrames (docs/RESULTS_SCHEMA.md)
    study.best("fid")                                              # the best trial's row
    study.generate(study.best("fid")["trial_id"], 16)              # images as a float tensor (N, 1, R, R)
    study.analyze("runs/smoke/report")                             # dashboard.html, report.md, csv/

User errors raise `trainers.errors.UserError` (or a subclass) with the one-line message the CLI prints after
"gan-study run: error: ". Ctrl-C (a notebook's "interrupt") stops the study as in the CLI: the first one lets
Ray Tune stop the trials and save their state, and `run_study` returns a Study whose `.interrupted` is True;
`resume_study(dir)` continues it. A second Ctrl-C skips that clean-up and raises KeyboardInterrupt after
stopping the Ray this call started; results written so far are kept either way.

Every example below runs in the tests (tests/test_api.py) on the phantom at toy size, in order:
`run_study`'s first, in a scratch working directory; the others read the study it wrote.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from analysis.load import DEFAULT_STATUSES
from study.layout import STUDY_FILE, TRIALS_DIRNAME, TRIALS_FILE
from study.live import DEFAULT_EVERY_S, DEFAULT_HOST, DEFAULT_PORT, LiveOptions
from study.spec import StudySpec, check_resume_plan, new_spec, read_spec
from study.status_table import status_table
from study.tables import load_tables
from study.trackers import Tracker
from trainers.errors import UserError

if TYPE_CHECKING:
    import torch

    from analysis.pipeline import Analysis
    from study.runner import StudyOutcome

# The values of search_spaces.space.SEARCHES / SCHEDULERS (a test keeps them equal), spelled out for type checkers.
Search = Literal["grid", "random", "optuna"]
Scheduler = Literal["fifo", "asha", "pbt"]
Mode = Literal["min", "max"]


@dataclass(frozen=True)
class Study:
    """A study directory on disk. Every property reads the files afresh, so it is current while the study
    runs elsewhere (as `gan-study status` is).

    >>> study = load_study("runs/smoke")
    >>> study.name, study.counts, study.interrupted
    ('smoke', {'finished': 4}, False)
    >>> len(study.trials), len(study.history)   # one row per trial; one per report (20 iterations / 10)
    (4, 8)
    >>> sorted(study.trials["config/optimizer"])
    ['adam', 'adam', 'adas', 'adas']
    """

    dir: Path
    spec: StudySpec = field(repr=False)

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial: status, reason, config/<key>, final and best metrics (= trials.parquet)."""
        return load_tables(self.dir).trials_frame()

    @property
    def history(self) -> pd.DataFrame:
        """One row per report of every trial (= history.parquet)."""
        return load_tables(self.dir).history_frame()

    @property
    def counts(self) -> dict[str, int]:
        """Trials per status, e.g. {'finished': 4}."""
        return _outcome(self.spec).counts

    @property
    def interrupted(self) -> bool:
        """True while trials are unfinished (Ctrl-C, a crash): `resume_study(dir)` continues them."""
        return _outcome(self.spec).interrupted

    def status(self) -> pd.DataFrame:
        """The table `gan-study status` prints: trial id, searched keys, status, iteration, d_loss_mean, fid.

        >>> load_study("runs/smoke").status()["status"].tolist()
        ['finished', 'finished', 'finished', 'finished']
        """
        return status_table(self.dir)

    def best(self, metric: str | None = None, *, mode: Mode | None = None) -> pd.Series:
        """The trials row with the best value of `metric` (default: the metric the study optimised).

        `mode` defaults to the study's for its own metric; any other metric needs it, because only the
        study declares which way is better.

        >>> study = load_study("runs/smoke")
        >>> best = study.best("fid")
        >>> best["trial_id"] == study.trials.sort_values("fid").iloc[0]["trial_id"]
        True
        >>> study.best("ms_ssim_diversity")  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        trainers.errors.UserError: best('ms_ssim_diversity') needs mode='min' or mode='max':
        the study optimised fid (min)
        """
        metric = metric or self.spec.metric
        if mode is None:
            if metric != self.spec.metric:
                raise UserError(f"best({metric!r}) needs mode='min' or mode='max': the study optimised "
                                f"{self.spec.metric} ({self.spec.mode})")
            mode = self.spec.mode  # type: ignore[assignment]
        if mode not in ("min", "max"):
            raise UserError(f"--mode {mode!r} is not allowed; allowed: min, max")
        trials = self.trials
        if metric not in trials:
            raise UserError(f"{metric!r} is not a column of {self.name}'s trials table (see Study.trials.columns)")
        values = pd.to_numeric(trials[metric], errors="coerce")
        if values.isna().all():
            raise UserError(f"no trial of {self.name} has a {metric} value yet")
        return trials.loc[values.idxmin() if mode == "min" else values.idxmax()]

    def generate(self, trial_id: str, n: int, *, per_class: bool = False, seed: int = 0,
                 device: str = "cpu") -> torch.Tensor:
        """`n` images (n per class with `per_class`) from a trial's last checkpoint, as float32 (N, 1, R, R)
        in [0, 1] (torchvision's convention): the pixels `gan-study generate` writes, divided by 255.

        >>> study = load_study("runs/smoke")
        >>> images = study.generate(study.best()["trial_id"], 8)
        >>> tuple(images.shape), images.dtype, 0 <= float(images.min()) <= float(images.max()) <= 1
        ((8, 1, 32, 32), torch.float32, True)
        >>> study.generate(study.best()["trial_id"], 0)
        Traceback (most recent call last):
        ...
        trainers.errors.UserError: --n 0 must be >= 1
        """
        import torch

        from study.generate_command import generate

        trial_dir = self.dir / TRIALS_DIRNAME / str(trial_id)
        if not trial_dir.is_dir():
            known = ", ".join(sorted(p.name for p in (self.dir / TRIALS_DIRNAME).glob("*"))) or "none yet"
            raise UserError(f"no trial {trial_id!r} in {self.dir}; trials: {known}")
        images, _, _ = generate(trial_dir, n, per_class=per_class, seed=seed, device=device)
        return torch.from_numpy(images).unsqueeze(1).float() / 255.0

    def analyze(self, out: str | Path, *, statuses: Iterable[str] = DEFAULT_STATUSES, resamples: int = 2000,
                permutations: int = 2000, seed: int = 0, color_by: str | None = None,
                reference: bool = True) -> Analysis:
        """`gan-study analyze DIR -o OUT`: writes OUT/dashboard.html, report.md and csv/, returns the statistics.

        >>> result = load_study("runs/smoke").analyze("runs/smoke/report", resamples=200, permutations=200)
        >>> sorted(p.name for p in Path("runs/smoke/report").iterdir())
        ['csv', 'dashboard.html', 'report.md']
        >>> len(result.analysed)
        4
        """
        from analysis.analyze_command import analyze_into

        return analyze_into([self.dir], Path(out).expanduser(), statuses=tuple(statuses), n_resamples=resamples,
                            n_permutations=permutations, seed=seed, color_by=color_by,
                            include_reference=reference).result


def load_study(dir: str | Path) -> Study:
    """The study in `dir` (finished, interrupted or still running).

    >>> load_study("runs/smoke").name
    'smoke'
    >>> load_study("runs/nowhere")
    Traceback (most recent call last):
    ...
    trainers.errors.UserError: runs/nowhere is not a study directory (no study.json); start one with gan-study run
    """
    spec = read_spec(dir)
    return Study(Path(spec.study_dir), spec)


def run_study(space: str | Path, *, out: str | Path, data: str | Path | None = None, search: Search | None = None,
              scheduler: Scheduler | None = None, overrides: Mapping[str, Any] | None = None,
              num_samples: int | None = None, max_concurrent: int | None = None, cpus_per_trial: float = 1.0,
              gpus_per_trial: float = 0.0, storage: str | None = None, metric: str | None = None,
              mode: Mode | None = None, max_failures: int = 1, seed: int = 0, reuse_workers: bool = False,
              address: str | None = None, dashboard: bool = False, progress: bool = True,
              log_to: Iterable[Tracker] | Tracker = (), mlflow_uri: str | None = None, live: bool = False,
              host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, live_every_s: float = DEFAULT_EVERY_S,
              plan_file: str | Path | None = None) -> Study:
    """Run a new study to its end (or to Ctrl-C) and return it; `gan-study run` with the same options.

    `space` is a name in search_spaces/ or a YAML path; `overrides` fix config keys or factors for every
    trial (`--set`); None means the space's default. `storage` defaults to $GAN_STUDY_STORAGE, else
    OUT/ray. `progress=False` leaves out the progress lines (`--quiet`), not the first and last lines nor
    Ray Tune's own few (its configuration box and where it keeps the experiment). `log_to` names experiment
    trackers ("tensorboard", "mlflow", "wandb"; study/trackers.py), `mlflow_uri` MLflow's tracking URI.
    `live=True` serves a live dashboard of the study on http://HOST:PORT/ while it runs (study/live.py).
    `plan_file` is a pre-registered analysis plan (analysis/plan.py; or the space's `analysis:` block),
    recorded in study.json before the first trial starts.

    >>> study = run_study("smoke", data="phantom", out="runs/smoke", overrides={"iterations": 20},
    ...                   progress=False)  # doctest: +ELLIPSIS
    study smoke: space smoke, search grid, scheduler fifo, metric fid (min) -> .../runs/smoke
    ...
    done: 4 finished; results in .../runs/smoke/trials.parquet (gan-study status .../runs/smoke)
    >>> study.counts
    {'finished': 4}
    >>> run_study("smoke", out="runs/smoke")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    trainers.errors.UserError: runs/smoke already holds a study; continue it with `gan-study resume runs/smoke`
    or choose another --out
    """
    out = Path(out).expanduser()
    if (out / STUDY_FILE).exists():
        raise UserError(f"{out} already holds a study; continue it with `gan-study resume {out}` "
                        "or choose another --out")
    spec = new_spec(
        out=str(out), space=str(space), data=None if data is None else str(data), overrides=dict(overrides or {}),
        search=search, scheduler=scheduler, num_samples=num_samples, max_concurrent=max_concurrent,
        cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
        storage=os.environ.get("GAN_STUDY_STORAGE", "") if storage is None else storage, metric=metric, mode=mode,
        max_failures=max_failures, search_seed=seed, reuse_workers=reuse_workers,
        log_to=[log_to] if isinstance(log_to, str) else list(log_to), mlflow_uri=mlflow_uri or "",
        plan_file=None if plan_file is None else str(plan_file),
    )
    options = _live_options(live, host, port, live_every_s)
    print(f"study {spec.name}: space {spec.space}, search {spec.search}, scheduler {spec.scheduler}, "
          f"metric {spec.metric} ({spec.mode}) -> {spec.study_dir}", flush=True)

    def call() -> StudyOutcome:
        from study import runner

        return runner.run_study(spec, progress=progress, address=address, dashboard=dashboard, live=options)

    return _finish(spec, _with_own_ray(call))


def resume_study(dir: str | Path, *, address: str | None = None, progress: bool = True, live: bool = False,
                 host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 live_every_s: float = DEFAULT_EVERY_S, retry_errored: bool = False,
                 plan_file: str | Path | None = None, max_concurrent: int | None = None) -> Study:
    """Finish an interrupted study (`gan-study resume DIR`): unfinished trials continue from their
    checkpoints; finished, diverged, stopped and errored ones are kept (errored ones continue from their
    last checkpoint with `retry_errored`, e.g. after more spot reclaims than --max-failures). A finished
    study stays as it is.
    The study's trackers (`log_to` at launch) go on logging; `live` as in `run_study`.

    >>> study = resume_study("runs/smoke")  # doctest: +ELLIPSIS
    resuming study smoke from .../runs/smoke/ray/smoke
    ...
    done: 4 finished; results in .../runs/smoke/trials.parquet (gan-study status .../runs/smoke)
    >>> study.interrupted
    False
    """
    spec = read_spec(dir)
    check_resume_plan(spec, None if plan_file is None else str(plan_file))
    if max_concurrent is not None:
        if max_concurrent < 0:
            raise UserError(f"--max-concurrent {max_concurrent} must be >= 0 (0 = no limit)")
        spec.max_concurrent = int(max_concurrent)  # not saved: study.json keeps what the study started with
    options = _live_options(live, host, port, live_every_s)
    print(f"resuming study {spec.name} from {spec.experiment_path}", flush=True)

    def call() -> StudyOutcome:
        from study import runner

        return runner.resume_study(spec, progress=progress, address=address, live=options,
                                   retry_errored=retry_errored)

    return _finish(spec, _with_own_ray(call))


def report_outcome(outcome: StudyOutcome) -> int:
    """Print the CLI's last line(s) of a run (done, or interrupted and how to continue); returns the exit code."""
    counts = ", ".join(f"{n} {s}" for s, n in outcome.counts.items()) or "no trials"
    if outcome.interrupted:
        print(f"interrupted ({counts}); results so far are in {outcome.study_dir}/{TRIALS_FILE}.\n"
              f"Continue with: gan-study resume {outcome.study_dir}", file=sys.stderr, flush=True)
    else:
        print(f"done: {counts}; results in {outcome.study_dir}/{TRIALS_FILE} "
              f"(gan-study status {outcome.study_dir})", flush=True)
    return outcome.exit_code


def _live_options(live: bool, host: str, port: int, every_s: float) -> LiveOptions | None:
    """The live dashboard's options, checked (a port in use is refused before the study launches)."""
    if not live:
        return None
    options = LiveOptions(host, int(port), float(every_s))
    options.check()
    return options


def _finish(spec: StudySpec, outcome: StudyOutcome) -> Study:
    report_outcome(outcome)
    return Study(Path(spec.study_dir), spec)


def _with_own_ray(call: Callable[[], StudyOutcome]) -> StudyOutcome:
    """Run `call`, then stop the local Ray (or cluster connection) it started, if it started one.

    A CLI process ends anyway; a notebook would keep idle Ray processes, and after a second Ctrl-C (which
    skips Ray Tune's own clean-up) running trials too. A Ray the caller started is the caller's: left alone.
    """
    import ray

    started_here = not ray.is_initialized()
    try:
        return call()
    finally:
        if started_here and ray.is_initialized():
            ray.shutdown()


def _outcome(spec: StudySpec) -> StudyOutcome:
    from study.runner import outcome  # imports Ray: only when asked

    return outcome(spec)
