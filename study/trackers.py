"""Experiment trackers (`gan-study run --log-to tensorboard|mlflow|wandb`): Ray Tune's own logger callbacks,
pointed at places inside the study directory.

- tensorboard: event files in STUDY_DIR/tensorboard/<trial_id>/ (`tensorboard --logdir STUDY_DIR/tensorboard`).
- mlflow: one run per trial in the experiment named after the study, at --mlflow-uri, else $MLFLOW_TRACKING_URI
  at launch, else the file store STUDY_DIR/mlruns.
- wandb: project and group = the study's name; offline in STUDY_DIR/wandb/ unless WANDB_API_KEY (or WANDB_MODE)
  says otherwise (`wandb sync STUDY_DIR/wandb/offline-run-*`).

Each tracker's package is an optional extra of the project (`pip install -e '.[mlflow]'`); a missing one is
refused before the study launches. The trackers are stored in study.json, so `gan-study resume` keeps logging.
"""
from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, Protocol

from trainers.errors import UserError


class TrackedStudy(Protocol):
    """What the trackers read of a study's spec (`study.spec.StudySpec` has it). A protocol, not an import:
    study.spec imports this module to check the trackers, so this one must not import it back."""

    study_dir: str
    log_to: list
    mlflow_uri: str

    @property
    def name(self) -> str: ...

Tracker = Literal["tensorboard", "mlflow", "wandb"]
TRACKERS: tuple[str, ...] = ("tensorboard", "mlflow", "wandb")
# tracker -> (module that must import, the pyproject extra that installs it)
REQUIREMENTS = {"tensorboard": ("tensorboardX", "tensorboard"), "mlflow": ("mlflow", "mlflow"),
                "wandb": ("wandb", "wandb")}
TENSORBOARD_DIRNAME = "tensorboard"
MLRUNS_DIRNAME = "mlruns"


def check_trackers(names: Iterable[str]) -> list[str]:
    """The trackers without repeats, in the order given; a name not known or whose package is missing is a
    one-line UserError naming the extra to install."""
    out: list[str] = []
    for name in names:
        if name not in TRACKERS:
            raise UserError(f"--log-to {name!r} is not a tracker; allowed: {', '.join(TRACKERS)}")
        module, extra = REQUIREMENTS[name]
        if importlib.util.find_spec(module) is None:
            raise UserError(f"--log-to {name} needs the {extra} extra: pip install -e '.[{extra}]'")
        if name not in out:
            out.append(name)
    return out


def mlflow_tracking_uri(spec: TrackedStudy) -> str:
    """The MLflow tracking URI of a study: as given at launch (--mlflow-uri or $MLFLOW_TRACKING_URI then),
    else the file store STUDY_DIR/mlruns (resolved now, so a moved study directory still works)."""
    return spec.mlflow_uri or (Path(spec.study_dir) / MLRUNS_DIRNAME).as_uri()


def normalise_mlflow_uri(uri: str) -> str:
    """A URI as MLflow takes it: a plain local path becomes an absolute file: URI (trials run elsewhere)."""
    if not uri or "://" in uri or uri.startswith(("file:", "sqlite:", "databricks")):
        return uri
    return Path(uri).expanduser().resolve().as_uri()


def tracker_callbacks(spec: TrackedStudy) -> list[Any]:
    """Ray Tune logger callbacks for the spec's trackers (run in the driver, like the results store)."""
    return [_BUILDERS[name](spec) for name in check_trackers(spec.log_to)]


def _tensorboard(spec: TrackedStudy) -> Any:
    from study.tensorboard_logger import StudyTBXLogger

    return StudyTBXLogger(str(Path(spec.study_dir) / TENSORBOARD_DIRNAME))


def _mlflow(spec: TrackedStudy) -> Any:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    uri = mlflow_tracking_uri(spec)
    if uri.startswith("file:"):
        # MLflow 3 refuses its file store (maintenance mode) unless told otherwise; it is still the simplest
        # store that needs no server or database, and a tracking URI is one option away.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=spec.name, tags={"study": spec.name})


def _wandb(spec: TrackedStudy) -> Any:
    from ray.air.integrations.wandb import WandbLoggerCallback

    # Offline unless the user can sync: Ray's callback itself checks WANDB_MODE in the driver, and the
    # per-trial logging actors (started by a Ray that may predate this setting) get it as `mode`.
    if not os.environ.get("WANDB_API_KEY"):
        os.environ.setdefault("WANDB_MODE", "offline")
    mode = os.environ.get("WANDB_MODE", "online")
    return WandbLoggerCallback(project=spec.name, group=spec.name, mode=mode, dir=spec.study_dir)


_BUILDERS = {"tensorboard": _tensorboard, "mlflow": _mlflow, "wandb": _wandb}
