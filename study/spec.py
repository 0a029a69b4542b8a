"""The study spec: everything needed to run (and later resume) a study, saved as STUDY_DIR/study.json.

The space is stored by content, not only by name, so editing a YAML file after a study started does
not change what `gan-study resume` runs.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from search_spaces.space import SCHEDULERS, SEARCHES, SearchSpace, check_metric, load_space, parse_space
from study.layout import RAY_DIRNAME, STUDY_FILE
from study.trackers import check_trackers, normalise_mlflow_uri
from trainers import metric_keys as K
from trainers.atomic import atomic_path
from trainers.errors import UserError

REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "abfs://", "hdfs://")


@dataclass
class StudySpec:
    study_dir: str  # absolute path of STUDY_DIR on the driver
    space: str  # name or path as given
    space_raw: dict = field(default_factory=dict)  # the YAML content at launch
    overrides: dict = field(default_factory=dict)  # --set and --data, applied as fixed keys
    search: str = "grid"
    scheduler: str = "fifo"
    num_samples: int = 1
    max_concurrent: int = 0  # 0 = as many as resources allow
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    storage: str = ""  # "" = STUDY_DIR/ray; else a URI (s3://bucket/prefix) or shared path
    metric: str = K.DEFAULT_METRIC
    mode: str = K.DEFAULT_MODE
    max_failures: int = 1
    search_seed: int = 0  # seeds the random/Optuna sampler (grid needs none)
    # Run later trials in the worker processes of finished ones (saves process start + torch import per
    # trial). Off by default: on CPU, peak_memory_mb is the process's peak RSS and would carry over.
    reuse_workers: bool = False
    # Experiment trackers (study/trackers.py) and MLflow's tracking URI ("" = $MLFLOW_TRACKING_URI at launch,
    # else STUDY_DIR/mlruns). Stored so `gan-study resume` keeps logging; older study.json files lack them.
    log_to: list = field(default_factory=list)
    mlflow_uri: str = ""
    created: str = ""
    # The pre-registered analysis plan (analysis/plan.py) with its SHA-256 and UTC recording time: written
    # with the spec before the first trial starts, never changed afterwards ({} = no plan).
    plan: dict = field(default_factory=dict)
    # Every configuration (full config) with its seeds, and what the plan's excludes were checked against:
    # recorded with the plan before the first trial (study/design_record.py; {} in older study.json files).
    design: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.study_dir).name

    @property
    def storage_path(self) -> str:
        """Where Ray Tune keeps its experiment: a URI, or an absolute local path."""
        if not self.storage:
            return str(Path(self.study_dir) / RAY_DIRNAME)
        if is_remote(self.storage):
            return self.storage.rstrip("/")
        return str(Path(self.storage).expanduser().resolve())

    @property
    def experiment_path(self) -> str:
        return f"{self.storage_path}/{self.name}"

    def load_space(self) -> SearchSpace:
        """The stored space with the overrides applied (validated)."""
        space = parse_space(self.space_raw, name=Path(self.space).stem, source=self.space)
        space.validate()
        space = space.with_overrides(self.overrides) if self.overrides else space
        # Ranges crossed with a seed grid are drawn once per configuration (search_spaces/design.py).
        return space.materialised(self.search, self.num_samples, self.search_seed)

    @property
    def trial_samples(self) -> int:
        """Tune's num_samples: 1 with a design (its grid of design_id x seed holds every trial)."""
        return 1 if self.load_space().design is not None else self.num_samples

    def save(self) -> Path:
        path = Path(self.study_dir) / STUDY_FILE
        data = dataclasses.asdict(self)
        data["experiment_path"] = self.experiment_path
        data["space_resolved"] = self.load_space().to_dict()  # roles per config field, for analysis
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
        return path


def is_remote(uri: str) -> bool:
    return uri.startswith(REMOTE_SCHEMES)


def new_spec(*, out: str, space: str, data: str | None = None, overrides: dict | None = None,
             search: str | None = None, scheduler: str | None = None, num_samples: int | None = None,
             max_concurrent: int | None = None, cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
             storage: str = "", metric: str | None = None, mode: str | None = None, max_failures: int = 1,
             search_seed: int = 0, reuse_workers: bool = False, log_to: list[str] | tuple[str, ...] = (),
             mlflow_uri: str = "", plan_file: str | None = None) -> StudySpec:
    """Build and check a spec from CLI-style arguments; the space's `defaults:` fill what is not given.

    The analysis plan comes from the space's `analysis:` block or `plan_file` (not both) and is recorded
    (hash, UTC time) in the spec, which `run_study` saves before the first trial starts.
    """
    loaded = load_space(space)
    import yaml

    raw = yaml.safe_load(Path(loaded.source).read_text()) or {}
    plan = declared_plan(loaded, raw.get("analysis"), plan_file)
    d = loaded.defaults
    overrides = dict(overrides or {})
    if data:
        overrides["data"] = _absolute_data(data)
    spec = StudySpec(
        study_dir=str(Path(out).expanduser().resolve()), space=str(space), space_raw=raw, overrides=overrides,
        search=search or d.get("search", "grid"), scheduler=scheduler or d.get("scheduler", "fifo"),
        num_samples=int(num_samples if num_samples is not None else d.get("num_samples", 1)),
        max_concurrent=int(max_concurrent if max_concurrent is not None else d.get("max_concurrent", 0)),
        cpus_per_trial=float(cpus_per_trial), gpus_per_trial=float(gpus_per_trial),
        storage=storage if not storage or is_remote(storage) else str(Path(storage).expanduser().resolve()),
        metric=metric or d.get("metric", K.DEFAULT_METRIC), mode=mode or d.get("mode", K.DEFAULT_MODE),
        max_failures=int(max_failures), search_seed=int(search_seed), reuse_workers=bool(reuse_workers),
        log_to=list(log_to), mlflow_uri=_mlflow_uri(list(log_to), mlflow_uri),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), plan=plan,
    )
    space = check_spec(spec)
    from study.design_record import check_excludes, design_record

    record = design_record(space, search=spec.search)
    record["excludes"] = check_excludes(record, plan.get("excludes") or [])
    record["recorded_at"] = plan.get("recorded_at") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    spec.design = record
    return spec


def declared_plan(space: SearchSpace, block, plan_file: str | None) -> dict:
    """The recorded plan ({} without one); validated against the keys the space varies."""
    from analysis.plan import load_plan_file, parse_plan, record_plan

    if block is not None and plan_file:
        raise UserError(f"space {space.name} has an analysis: block and --plan-file {plan_file} was given; "
                        "declare the plan in one place")
    if block is None and not plan_file:
        return {}
    if plan_file:
        return record_plan(load_plan_file(plan_file, factors=plan_factors(space)),
                           source=f"plan file {Path(plan_file).name}")
    return record_plan(parse_plan(block, factors=plan_factors(space), where=f"space {space.name}: analysis"),
                       source=f"space {space.name}")


def plan_factors(space: SearchSpace) -> dict[str, list[str]]:
    """Keys a plan may control for: every key the space varies (seed excluded), with the fields each sets."""
    return {k: space.fields_of(k) for k in space.dims if k != "seed"}


def check_resume_plan(spec: StudySpec, plan_file: str | None) -> None:
    """A plan given on resume must be the recorded one: a study's plan never changes once it has started."""
    if not plan_file:
        return
    from analysis.plan import load_plan_file, plan_differences

    plan = load_plan_file(plan_file, factors=plan_factors(spec.load_space()))
    if not spec.plan:
        raise UserError(f"study {spec.name} recorded no analysis plan before it started; a plan added now is "
                        f"post hoc: give it to `gan-study analyze --plan {plan_file}` instead")
    diff = plan_differences(spec.plan, plan)
    if diff:
        raise UserError(f"--plan-file {plan_file} differs from the plan study {spec.name} recorded at "
                        f"{spec.plan.get('recorded_at', '?')} in {', '.join(diff)}; a study's plan cannot change "
                        "once it has started")


def check_spec(spec: StudySpec) -> SearchSpace:
    """Reject impossible studies before anything launches; returns the resolved space."""
    if spec.search not in SEARCHES:
        raise UserError(f"--search {spec.search!r} is not allowed; allowed: {', '.join(SEARCHES)}")
    if spec.scheduler not in SCHEDULERS:
        raise UserError(f"--scheduler {spec.scheduler!r} is not allowed; allowed: {', '.join(SCHEDULERS)}")
    if spec.mode not in ("min", "max"):
        raise UserError(f"--mode {spec.mode!r} is not allowed; allowed: min, max")
    check_metric(spec.metric)
    if spec.num_samples < 1:
        raise UserError(f"--num-samples {spec.num_samples} must be >= 1")
    if spec.max_concurrent < 0:
        raise UserError(f"--max-concurrent {spec.max_concurrent} must be >= 0 (0 = no limit)")
    if spec.cpus_per_trial <= 0 or spec.gpus_per_trial < 0:
        raise UserError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
    if spec.gpus_per_trial > 1 and not float(spec.gpus_per_trial).is_integer():
        raise UserError(f"--gpus-per-trial {spec.gpus_per_trial}: fractions are allowed below 1 only (e.g. 0.5)")
    if spec.max_failures < -1:
        raise UserError(f"--max-failures {spec.max_failures} must be >= 0 (or -1 = retry forever)")
    if spec.scheduler == "pbt" and spec.search == "optuna":
        raise UserError("--scheduler pbt cannot be combined with --search optuna: PBT chooses the configs itself "
                        "(it exploits and mutates running trials); use --search grid or random with pbt")
    _check_trackers(spec)
    space = spec.load_space()
    if space.design is not None and spec.search == "optuna":
        raise UserError(f"space {space.name} draws its configurations in a design:, so --search optuna has nothing "
                        "to choose; use --search grid")
    if space.design is not None and "design" in spec.space_raw and spec.num_samples != 1:
        raise UserError(f"--num-samples {spec.num_samples} with space {space.name}'s design would run each "
                        "configuration and seed more than once; set design: per_cell instead")
    if spec.search == "optuna" and not space.dims:
        raise UserError(f"--search optuna needs searched keys, but space {space.name} fixes every key")
    if spec.gpus_per_trial == 0 and space.fixed.get("device") == "cuda":
        raise UserError("the space sets device=cuda but --gpus-per-trial is 0; give each trial a GPU "
                        "(e.g. --gpus-per-trial 0.5) or use device=auto")
    if spec.scheduler in ("asha", "pbt"):
        _check_intermediate_metric(spec, space)
    return space


def _check_intermediate_metric(spec: StudySpec, space: SearchSpace) -> None:
    """ASHA and PBT compare trials part-way: the metric must be reported before the end."""
    downstream = (K.TSTR_PREFIX, K.AUGMENT_PREFIX, K.TRTR_PREFIX)
    if spec.metric.startswith(downstream) or spec.metric == K.AUGMENT_GAIN:
        raise UserError(f"--scheduler {spec.scheduler} needs a metric reported during training, but "
                        f"{spec.metric!r} is measured once at the end; use fifo or another --metric")
    if spec.metric in K.EVALUATED_METRICS or spec.metric.startswith(K.FID_PER_CLASS_PREFIX):
        if {"fid_every", "iterations", "report_every"} & set(space.dims):
            return  # searched per trial: trials without a part-way value are simply never stopped early
        cfg = space.resolve(next(space.combinations(), {}))
        device = "cuda" if spec.gpus_per_trial > 0 else "cpu"
        cadence, reports = cfg.fid_cadence(device), -(-cfg.iterations // cfg.report_every)
        where = f" on {device.upper()} trials (auto)" if cfg.fid_every == -1 else ""
        if not cadence:
            raise UserError(f"--scheduler {spec.scheduler} compares {spec.metric!r} part-way, but "
                            f"fid_every={cfg.fid_every} evaluates only at the end{where}; add --set fid_every=1 "
                            "(every report) or choose another --metric such as d_loss_mean")
        if cadence >= reports:  # the first evaluation is the last report: the scheduler would never decide
            raise UserError(f"--scheduler {spec.scheduler} compares {spec.metric!r} part-way, but "
                            f"fid_every={cfg.fid_every} evaluates every {cadence} reports{where} and a trial makes "
                            f"only {reports} (iterations={cfg.iterations}, report_every={cfg.report_every}); "
                            f"set fid_every below {reports} or report more often")


def read_spec(study_dir: str | Path) -> StudySpec:
    path = Path(study_dir).expanduser() / STUDY_FILE
    if not path.is_file():
        raise UserError(f"{path.parent} is not a study directory (no {STUDY_FILE}); start one with gan-study run")
    data = json.loads(path.read_text())
    known = {f.name for f in dataclasses.fields(StudySpec)}
    # The directory may have been moved or copied since (exported results drop it): trust where it is now.
    data["study_dir"] = str(path.parent.resolve())
    data["overrides"] = _located_data(dict(data.get("overrides") or {}))
    return StudySpec(**{k: v for k, v in data.items() if k in known})


def _located_data(overrides: dict) -> dict:
    """An exported study.json names its data relative to the repository root (study.export_results): make it
    absolute again when it exists there, so a committed study resumes from any working directory."""
    data = overrides.get("data")
    if isinstance(data, str) and data and not os.path.isabs(data) and data not in ("phantom", "pneumoniamnist"):
        repo = Path(__file__).resolve().parents[1]
        if ":" not in data and (repo / data).exists():
            overrides["data"] = str((repo / data).resolve())
    return overrides


def _check_trackers(spec: StudySpec) -> None:
    spec.log_to = check_trackers(spec.log_to)
    if spec.mlflow_uri and "mlflow" not in spec.log_to:
        raise UserError("--mlflow-uri is set but MLflow is not a tracker of this study; add --log-to mlflow")


def _mlflow_uri(log_to: list[str], uri: str) -> str:
    """--mlflow-uri as given, else $MLFLOW_TRACKING_URI when MLflow is a tracker: recorded at launch, so a
    resume logs to the same place whatever its environment."""
    if not uri and "mlflow" in log_to:
        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    return normalise_mlflow_uri(uri)


def _absolute_data(data: str) -> str:
    # Named sources stay names; a path is made absolute because trials run in other working directories.
    if data in ("phantom", "pneumoniamnist") or is_remote(data):
        return data
    from trainers.data.sheets.detect import split_prefix  # `nih:ROOT`: keep the forced format

    prefix, rest = split_prefix(data)
    path = Path(rest).expanduser()
    if not path.exists():
        raise UserError(f"--data {data!r} is neither phantom, pneumoniamnist nor an existing path")
    return prefix + str(path.resolve())
