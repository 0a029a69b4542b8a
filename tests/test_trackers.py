"""Experiment trackers (`--log-to`, study/trackers.py): names and missing extras are refused before a study
launches with a one-line error naming the extra; the trackers are kept in study.json (old files still load);
and after a real toy study the TensorBoard event files, the MLflow runs with their params and the FID/D-loss
metrics, and the offline W&B runs are there. The MLflow and W&B parts skip without their packages (CI installs
only `.[test]`: mlflow alone pulls dozens of packages); tensorboardX comes with ray[tune] and is always tested."""
from __future__ import annotations

import importlib.util
import json
import struct
import typing
from pathlib import Path

import pytest

from study import api
from study.cli import main
from study.layout import STUDY_FILE
from study.run_command import TRACKERS as CLI_TRACKERS
from study.runner import build_callbacks, prepared_space, run_study
from study.spec import new_spec, read_spec
from study.trackers import MLRUNS_DIRNAME, TENSORBOARD_DIRNAME, TRACKERS, Tracker, check_trackers
from trainers import metric_keys as K
from trainers.errors import UserError

HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None
HAS_WANDB = importlib.util.find_spec("wandb") is not None
INSTALLED = ["tensorboard"] + ["mlflow"] * HAS_MLFLOW + ["wandb"] * HAS_WANDB
# A toy smoke study: 2 trials (adam, TTUR off/on), 2 reports each, FID at the end, no downstream classifier.
TOY = {"iterations": 20, "report_every": 10, "data_limit": 128, "downstream": "", "eval_samples": 32,
       "optimizer": "adam"}


def _hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make `modules` look uninstalled to the tracker check."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in modules else real(name, *a))


# ---------------------------------------------------------------------- without Ray
def test_tracker_names_agree_everywhere():
    assert typing.get_args(Tracker) == TRACKERS == CLI_TRACKERS
    assert "log_to" in api.run_study.__kwdefaults__ and "mlflow_uri" in api.run_study.__kwdefaults__


def test_unknown_and_missing_trackers_are_one_line_errors(monkeypatch):
    assert check_trackers(["tensorboard", "tensorboard"]) == ["tensorboard"]
    with pytest.raises(UserError, match=r"^--log-to 'neptune' is not a tracker; allowed: tensorboard, mlflow, wandb$"):
        check_trackers(["neptune"])
    _hide(monkeypatch, "mlflow", "wandb", "tensorboardX")
    for name, extra in (("mlflow", "mlflow"), ("wandb", "wandb"), ("tensorboard", "tensorboard")):
        with pytest.raises(UserError) as info:
            check_trackers([name])
        assert str(info.value) == f"--log-to {name} needs the {extra} extra: pip install -e '.[{extra}]'"


def test_a_missing_extra_stops_the_cli_before_anything_is_written(monkeypatch, tmp_path, capsys):
    _hide(monkeypatch, "mlflow")
    out = tmp_path / "s"
    assert main(["run", "--space", "smoke", "--out", str(out), "--log-to", "tensorboard", "--log-to", "mlflow"]) == 2
    assert capsys.readouterr().err == ("gan-study run: error: --log-to mlflow needs the mlflow extra: "
                                       "pip install -e '.[mlflow]'\n")
    assert not out.exists()
    with pytest.raises(SystemExit):  # argparse's own message for a name that is no tracker
        main(["run", "--space", "smoke", "--out", str(out), "--log-to", "neptune"])


def test_the_trackers_are_stored_with_the_study_and_old_studies_still_load(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.invalid:5000")
    spec = new_spec(out=str(tmp_path / "a"), space="smoke", log_to=("tensorboard",))
    assert spec.mlflow_uri == ""  # MLflow is not a tracker here: its variable is not recorded
    if HAS_MLFLOW:
        spec = new_spec(out=str(tmp_path / "a"), space="smoke", log_to=("tensorboard", "mlflow"))
        assert spec.mlflow_uri == "http://tracking.invalid:5000"  # the launch's environment, kept for resume
        assert new_spec(out=str(tmp_path / "b"), space="smoke", log_to=["mlflow"],
                        mlflow_uri="rel/mlruns").mlflow_uri == (Path.cwd() / "rel/mlruns").resolve().as_uri()
    Path(spec.study_dir).mkdir()
    spec.save()
    assert read_spec(spec.study_dir).log_to == spec.log_to
    with pytest.raises(UserError, match=r"^--mlflow-uri is set but MLflow is not a tracker of this study; add "):
        new_spec(out=str(tmp_path / "c"), space="smoke", mlflow_uri="sqlite:///x.db")

    old = json.loads((Path(spec.study_dir) / STUDY_FILE).read_text())  # a study.json from before the trackers
    del old["log_to"], old["mlflow_uri"]
    (Path(spec.study_dir) / STUDY_FILE).write_text(json.dumps(old))
    assert (read_spec(spec.study_dir).log_to, read_spec(spec.study_dir).mlflow_uri) == ([], "")


def test_callbacks_are_ray_tunes_own_loggers_and_pickle(tmp_path, monkeypatch):
    from ray.tune.logger import TBXLoggerCallback

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    spec = new_spec(out=str(tmp_path / "s"), space="smoke", log_to=INSTALLED)
    callbacks = build_callbacks(spec, prepared_space(spec)[0], progress=False)[1:]
    assert [type(c).__name__ for c in callbacks] == [
        {"tensorboard": "StudyTBXLogger", "mlflow": "MLflowLoggerCallback", "wandb": "WandbLoggerCallback"}[n]
        for n in INSTALLED]
    assert isinstance(callbacks[0], TBXLoggerCallback)  # so Ray adds no second TensorBoard logger of its own
    assert callbacks[0].logdir == str(tmp_path / "s" / TENSORBOARD_DIRNAME)
    if HAS_MLFLOW:
        assert callbacks[1].tracking_uri == (tmp_path / "s" / MLRUNS_DIRNAME).as_uri()
        assert callbacks[1].experiment_name == "s"
    if HAS_WANDB:
        assert callbacks[-1].project == "s" and callbacks[-1].kwargs["mode"] == "offline"
    from ray import cloudpickle

    cloudpickle.loads(cloudpickle.dumps(callbacks))  # the Tuner pickles its callbacks into tuner.pkl


# ---------------------------------------------------------------------- a real study
def _tensorboard_tags(trial_dir: Path) -> set[str]:
    """Scalar tags in a trial's TensorBoard event files (TFRecord: length, crc, Event proto, crc)."""
    from tensorboardX.proto.event_pb2 import Event

    tags = set()
    for path in trial_dir.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = Event.FromString(data[pos + 12:pos + 12 + length])
            tags.update(v.tag for v in event.summary.value)
            pos += 12 + length + 4
    return tags


@pytest.fixture(scope="module")
def toy_study(local_ray, tmp_path_factory) -> Path:
    """One toy study logging to every installed tracker (one Ray study for the three tests below)."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("WANDB_API_KEY", "WANDB_MODE", "MLFLOW_TRACKING_URI"):
            mp.delenv(var, raising=False)
        spec = new_spec(out=str(tmp_path_factory.mktemp("trackers") / "toy"), space="smoke", overrides=TOY,
                        log_to=INSTALLED)
        assert run_study(spec, progress=False).counts == {"finished": 2}
    assert read_spec(spec.study_dir).log_to == INSTALLED  # `gan-study resume` builds the same trackers
    return Path(spec.study_dir)


def _trial_ids(study: Path) -> list[str]:
    return sorted(p.name for p in (study / "trials").iterdir())


@pytest.mark.slow
def test_tensorboard_event_files_hold_every_trials_metrics(toy_study):
    assert sorted(p.name for p in (toy_study / TENSORBOARD_DIRNAME).iterdir()) == _trial_ids(toy_study)
    for tid in _trial_ids(toy_study):
        tags = _tensorboard_tags(toy_study / TENSORBOARD_DIRNAME / tid)
        assert {f"ray/tune/{K.FID}", f"ray/tune/{K.D_LOSS_MEAN}", f"ray/tune/{K.LOSS_D}"} <= tags, sorted(tags)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MLFLOW, reason="mlflow is not installed (pip install -e '.[mlflow]')")
def test_mlflow_file_store_holds_a_run_per_trial_with_params_and_metrics(toy_study, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(toy_study / MLRUNS_DIRNAME).as_uri())
    runs = client.search_runs([client.get_experiment_by_name("toy").experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        assert run.data.params["ttur"] in ("off", "on") and run.data.params["optimizer"] == "adam", run.data.params
        assert run.data.metrics[K.FID] > 0 and run.data.metrics[K.D_LOSS_MEAN] > 0, run.data.metrics
        assert len(client.get_metric_history(run.info.run_id, K.D_LOSS_MEAN)) == 2  # one per report
        assert run.data.tags["study"] == "toy"


@pytest.mark.slow
@pytest.mark.skipif(not HAS_WANDB, reason="wandb is not installed (pip install -e '.[wandb]')")
def test_wandb_runs_are_offline_in_the_study_directory(toy_study):
    runs = sorted((toy_study / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(any(r.glob("*.wandb")) for r in runs), runs
