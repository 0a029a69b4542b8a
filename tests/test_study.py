"""Study plumbing without running Ray trials: specs are checked before launch, the results store
journals and tables follow docs/RESULTS_SCHEMA.md, status and generate work from files on disk."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from search_spaces.space import load_space
from study import generate_command, status_command
from study.cli import main as cli_main
from study.results_store import ResultsStore
from study.spec import new_spec, read_spec
from study.tables import HISTORY_FILE, JOURNAL_FILE, TRIALS_FILE, load_tables, read_journal
from trainers import metric_keys as K
from trainers.config import TrialConfig
from trainers.errors import UserError


# ---------------------------------------------------------------------- spec checks
def test_pbt_with_a_searcher_is_rejected(tmp_path):
    with pytest.raises(UserError, match=r"pbt cannot be combined with --search optuna"):
        new_spec(out=str(tmp_path / "s"), space="smoke", search="optuna", scheduler="pbt", metric="d_loss_mean")


def test_asha_on_fid_needs_intermediate_fid(tmp_path):
    with pytest.raises(UserError, match=r"fid_every=-1 evaluates only at the end on CPU trials \(auto\); add --set fid_every=1"):
        new_spec(out=str(tmp_path / "s"), space="smoke", scheduler="asha")
    spec = new_spec(out=str(tmp_path / "s"), space="smoke", scheduler="asha", overrides={"fid_every": 1})
    assert spec.scheduler == "asha"
    # On GPU trials the automatic cadence evaluates every 5 reports: part-way only in trials of more than 5.
    with pytest.raises(UserError, match=r"fid_every=-1 evaluates every 5 reports on CUDA trials \(auto\) and a trial "
                                        r"makes only 4 \(iterations=40, report_every=10\); set fid_every below 4"):
        new_spec(out=str(tmp_path / "g"), space="smoke", scheduler="asha", gpus_per_trial=0.5)
    assert new_spec(out=str(tmp_path / "g"), space="smoke", scheduler="asha", gpus_per_trial=0.5,
                    overrides={"iterations": 60}).scheduler == "asha"


def test_downstream_metric_cannot_drive_asha(tmp_path):
    with pytest.raises(UserError, match=r"measured once at the end"):
        new_spec(out=str(tmp_path / "s"), space="acgan_tstr", scheduler="asha")


def test_unknown_metric_and_bad_override_fail_early(tmp_path):
    with pytest.raises(UserError, match=r"metric 'fidd' is not reported"):
        new_spec(out=str(tmp_path / "s"), space="smoke", metric="fidd")
    with pytest.raises(UserError, match=r"batch_size=0 is out of range"):
        new_spec(out=str(tmp_path / "s"), space="smoke", overrides={"batch_size": 0})
    with pytest.raises(UserError, match=r"neither phantom, pneumoniamnist nor an existing path"):
        new_spec(out=str(tmp_path / "s"), space="smoke", data="no/such/file.npz")


def test_spec_round_trips_and_records_roles(tmp_path):
    spec = new_spec(out=str(tmp_path / "study"), space="belmekki2022", overrides={"iterations": 20})
    assert (spec.search, spec.metric, spec.mode) == ("grid", "fid", "min")  # the space's defaults
    (tmp_path / "study").mkdir()
    spec.save()
    data = json.loads((tmp_path / "study" / "study.json").read_text())
    assert "optimizer" in data["space_resolved"]["roles"]["scientific"]
    assert data["experiment_path"].endswith("study/ray/study")
    back = read_spec(tmp_path / "study")
    assert back.load_space().resolve({"optimizer": "adam", "activation": "elu", "ttur": "on", "seed": 0}).iterations == 20


def test_cli_rejects_an_existing_study_directory(tmp_path, capsys):
    spec = new_spec(out=str(tmp_path / "s"), space="smoke")
    Path(spec.study_dir).mkdir()
    spec.save()
    assert cli_main(["run", "--space", "smoke", "--out", str(tmp_path / "s")]) == 2
    assert "already holds a study" in capsys.readouterr().err


def test_gpus_per_trial_beyond_every_node_is_refused_on_a_local_ray(monkeypatch, caplog):
    import ray

    from study.runner import check_gpus

    nodes = [{"Alive": True, "Resources": {"CPU": 16.0, "GPU": 2.0}}, {"Alive": False, "Resources": {"GPU": 8.0}}]
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    check_gpus(2, local=True)  # fits the largest live node
    with pytest.raises(UserError, match=r"^--gpus-per-trial 4 but this machine has 2 GPUs .*use --gpus-per-trial 2 "
                                        r"or less"):
        check_gpus(4, local=True)
    check_gpus(4, local=False)  # a cluster's autoscaler may still add such a node: a warning, not an error
    assert "--gpus-per-trial 4 but no node of the cluster has more than 2 GPUs" in caplog.text


@pytest.mark.slow
def test_cli_refuses_more_gpus_than_the_machine_has_before_launching(tmp_path):
    out = tmp_path / "s"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-m", "study.cli", "run", "--space", "smoke", "--out", str(out),
                           "--gpus-per-trial", "64", "--quiet"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("gan-study run: error: --gpus-per-trial 64 but this machine has ") and "GPUs" in last
    assert not (out / "study.json").exists()  # nothing launched: the same --out can be used again


# ---------------------------------------------------------------------- results store
def fake_trial(tid: str, config: dict, last_result: dict | None = None, status: str = "RUNNING"):
    return SimpleNamespace(trial_id=tid, config=config, last_result=last_result or {}, status=status,
                           get_pickled_error=lambda: RuntimeError("boom\nsecond line"), get_error=lambda: None,
                           error_file=None)


def report(iteration: int, status: str = "running", **extra) -> dict:
    # What Ray hands the callback: trainer metrics plus Ray's own keys.
    return {K.ITERATION: iteration, K.D_LOSS_MEAN: 0.5 + iteration / 100, K.LOSS_D: 0.6, K.STATUS: status,
            K.REASON: "", K.FID: math.nan, "training_iteration": iteration // 10, "time_total_s": 1.0,
            "config": {"seed": 0}, "hostname": "h", "done": False, **extra}


@pytest.fixture
def store(tmp_path):
    space = load_space("smoke")
    s = ResultsStore(str(tmp_path), space, scheduler="asha", min_write_interval_s=0.0)
    s.setup()
    return s


def test_store_journals_every_report_and_writes_the_schema(store, tmp_path):
    point = {"optimizer": "adas", "ttur": "on", "seed": 0}
    a, b = fake_trial("a_00000", point, status="PENDING"), fake_trial("b_00001", {**point, "optimizer": "adam"}, status="PENDING")
    store.on_step_begin(0, [a, b])
    store.on_trial_start(0, [a, b], a)
    sample = str(tmp_path / "trials" / "a_00000" / "samples" / "step_0000010.png")
    store.on_trial_result(0, [a, b], a, report(10, sample_path=sample))
    store.on_trial_result(0, [a, b], a, report(20, K.STATUS_FINISHED, fid=12.5))
    a.last_result = report(20, K.STATUS_FINISHED)
    store.on_trial_complete(0, [a, b], a)

    journal = read_journal(tmp_path / JOURNAL_FILE)
    assert [r["event"] for r in journal].count("report") == 2
    history = pd.read_parquet(tmp_path / HISTORY_FILE)
    assert list(history[K.ITERATION]) == [10, 20]
    assert history[K.SAMPLE_PATH].iloc[0] == "trials/a_00000/samples/step_0000010.png"
    assert "training_iteration" not in history and "hostname" not in history  # Ray's keys are not metrics
    assert history["config/lr_d"].iloc[0] == 4e-4 and bool(history["config/ttur"].iloc[0])
    assert {c for c in history if c.startswith("config/")} >= {f"config/{k}" for k in TrialConfig().to_dict()}

    trials = pd.read_parquet(tmp_path / TRIALS_FILE).set_index("trial_id")
    assert trials.loc["a_00000", "status"] == "finished"
    assert trials.loc["b_00001", "status"] == "pending"
    assert trials.loc["a_00000", "best_fid"] == 12.5 and trials.loc["a_00000", "best_fid_iteration"] == 20
    assert trials.loc["a_00000", "iterations_done"] == 20 and trials.loc["a_00000", "reports"] == 2
    assert trials.loc["a_00000", "trial_dir"] == "trials/a_00000"
    assert math.isnan(trials.loc["b_00001", "best_fid"])


def test_store_statuses_stopped_errored_diverged_and_interrupted(store, tmp_path):
    t = [fake_trial(f"t{i}", {"optimizer": "adam", "ttur": "off", "seed": 0}) for i in range(4)]
    for trial in t:
        store.on_trial_start(0, t, trial)
        store.on_trial_result(0, t, trial, report(10))
    t[0].last_result = report(10)  # last report still running: the scheduler stopped it
    store.on_trial_complete(0, t, t[0])
    store.on_trial_error(0, t, t[1])
    store.on_trial_result(0, t, t[2], report(20, K.STATUS_DIVERGED, reason="losses rose 20x"))
    t[2].last_result = report(20, K.STATUS_DIVERGED, reason="losses rose 20x")
    store.on_trial_complete(0, t, t[2])
    store.on_experiment_end(t)  # t3 never ended: Ctrl-C

    trials = pd.read_parquet(tmp_path / TRIALS_FILE).set_index("trial_id")
    assert trials.loc["t0", "status"] == "stopped" and "asha" in trials.loc["t0", "reason"]
    assert trials.loc["t1", "status"] == "errored" and trials.loc["t1", "reason"] == "RuntimeError: boom"
    assert trials.loc["t2", "status"] == "diverged" and trials.loc["t2", "reason"] == "losses rose 20x"
    assert trials.loc["t3", "status"] == "pending" and "resume" in trials.loc["t3", "reason"]


def test_repeated_reports_replace_and_a_torn_line_is_ignored(store, tmp_path):
    trial = fake_trial("x", {"optimizer": "adam", "ttur": "off", "seed": 0})
    store.on_trial_start(0, [trial], trial)
    for it in (10, 20, 10, 20, 30):  # a re-run after a driver crash repeats 10 and 20
        store.on_trial_result(0, [trial], trial, report(it))
    with open(tmp_path / JOURNAL_FILE, "a") as f:
        f.write('{"event": "report", "trial_id": "x", "metr')  # kill -9 mid-write
    tables = load_tables(tmp_path)
    history = tables.history_frame()
    assert list(history[K.ITERATION]) == [10, 20, 30]
    assert tables.trials_frame()["reports"].iloc[0] == 3


def test_a_restored_store_replays_the_journal(store, tmp_path):
    trial = fake_trial("x", {"optimizer": "adam", "ttur": "off", "seed": 0})
    store.on_trial_start(0, [trial], trial)
    store.on_trial_result(0, [trial], trial, report(10))
    import pickle

    again = pickle.loads(pickle.dumps(store))  # how Tuner.restore hands callbacks back
    again.setup()
    again.on_trial_result(0, [trial], trial, report(20))
    assert list(again.tables.history_frame()[K.ITERATION]) == [10, 20]


def test_status_command_prints_the_progress_table(store, tmp_path, capsys):
    spec = new_spec(out=str(tmp_path), space="smoke")
    spec.save()
    trial = fake_trial("abc_00000", {"optimizer": "adas", "ttur": "on", "seed": 0})
    store.on_trial_start(0, [trial], trial)
    store.on_trial_result(0, [trial], trial, report(10))
    table = status_command.status_table(tmp_path)
    assert list(table.columns[:1]) == ["trial_id"] and "optimizer" in table and "fid" in table
    assert cli_main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "abc_00000" in out and "running" in out and "adas" in out


# ---------------------------------------------------------------------- generate
@pytest.fixture
def checkpoint(tmp_path) -> Path:
    import torch

    from trainers.models import build_generator

    cfg = TrialConfig(resolution=32, g_features=16, d_features=16, latent_dim=8, conditioning="acgan")
    path = tmp_path / "trial" / "checkpoint" / "checkpoint.pt"
    path.parent.mkdir(parents=True)
    torch.save({"config": cfg.to_dict(), "generator": build_generator(cfg).state_dict()}, path)
    return path


def test_generate_npz_per_class(checkpoint, tmp_path):
    out = tmp_path / "synth.npz"
    assert cli_main(["generate", "--trial", str(checkpoint.parents[1]), "--n", "3", "--per-class",
                     "--format", "npz", "--out", str(out)]) == 0
    data = np.load(out)
    assert data["images"].shape == (6, 32, 32) and data["images"].dtype == np.uint8
    assert list(data["labels"]) == [0, 0, 0, 1, 1, 1]
    assert list(data["class_names"]) == ["NORMAL", "PNEUMONIA"]


def test_generate_png_is_deterministic_per_seed(checkpoint, tmp_path):
    a, b = generate_command.generate(checkpoint, 4, seed=1), generate_command.generate(checkpoint, 4, seed=1)
    assert np.array_equal(a[0], b[0])
    assert cli_main(["generate", "--trial", str(checkpoint), "--n", "4", "--format", "png",
                     "--out", str(tmp_path / "png")]) == 0
    assert len(list((tmp_path / "png").glob("*.png"))) == 4


def test_generate_rejects_per_class_for_an_unconditional_trial(tmp_path, capsys):
    import torch

    from trainers.models import build_generator

    cfg = TrialConfig(resolution=32, g_features=16, d_features=16, latent_dim=8)
    torch.save({"config": cfg.to_dict(), "generator": build_generator(cfg).state_dict()}, tmp_path / "c.pt")
    assert cli_main(["generate", "--trial", str(tmp_path / "c.pt"), "--n", "2", "--per-class",
                     "--out", str(tmp_path / "o")]) == 2
    assert "needs a conditional generator" in capsys.readouterr().err


# ---------------------------------------------------------------------- algorithms and restores
def test_schedulers_and_searchers_come_from_the_space():
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, PopulationBasedTraining
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    from study.algorithms import build_scheduler, build_search, explore_ttur_ratio, pbt_space

    space = load_space("smoke").with_overrides({"fid_every": 1})
    assert isinstance(build_scheduler(space, "fifo"), FIFOScheduler)
    asha = build_scheduler(space, "asha")
    assert isinstance(asha, AsyncHyperBandScheduler) and asha._time_attr == K.ITERATION  # fixed report cadence
    with pytest.raises(UserError, match=r"searched factor 'ttur' sets them"):
        pbt_space(space)
    pbt_sp, initial = pbt_space(space.with_overrides({"ttur": "off"}))
    assert initial == {"lr_g": 2e-4, "lr_d": 2e-4}
    assert pbt_sp.resolve({"optimizer": "adam", "seed": 0, "lr_g": 1e-3, "lr_d": 3e-3}).lr_d == 3e-3  # mutated wins
    pbt = build_scheduler(pbt_sp, "pbt")
    assert isinstance(pbt, PopulationBasedTraining) and set(pbt._hyperparam_mutations) == {"lr_g", "lr_d"}
    ratios = {explore_ttur_ratio({"lr_g": 1e-4, "lr_d": 1e-4})["lr_d"] / 1e-4 for _ in range(200)}
    assert {round(r) for r in ratios} == {1, 2, 4}

    grid, params = build_search(space, "grid", max_concurrent=2, seed=0, metric="fid", mode="min")
    assert isinstance(grid, BasicVariantGenerator) and params["optimizer"] == {"grid_search": ["adam", "adas"]}
    optuna, params = build_search(space, "optuna", max_concurrent=2, seed=0, metric="fid", mode="min")
    assert isinstance(optuna, ConcurrencyLimiter) and "optimizer" not in params


class _RayCheckpoint:
    """Stands in for ray.tune.Checkpoint: a directory holding checkpoint.pt."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def as_directory(self):
        import contextlib

        return contextlib.nullcontext(str(self.path))


def test_restores_prefer_the_newest_checkpoint_and_retarget_pbt_exploits(tmp_path):
    import torch

    from study.trainable import replay_reports, restore_checkpoint
    from trainers.checkpoint import load_checkpoint
    from trainers.loop import train

    cfg = TrialConfig(data="phantom", data_limit=64, resolution=32, g_features=16, d_features=16, latent_dim=8,
                      batch_size=8, iterations=20, report_every=10, eval_at_end=False, num_threads=1, device="cpu")
    train(cfg.replace(iterations=10), tmp_path / "donor")
    donor = _RayCheckpoint(tmp_path / "donor" / "checkpoint")

    # PBT: another config's checkpoint -> its weights, with the mutated learning rates in the optimisers.
    mutated = cfg.replace(lr_g=1e-3, lr_d=3e-3)
    restore_checkpoint(donor, tmp_path / "exploit", mutated)
    ck = load_checkpoint(tmp_path / "exploit" / "checkpoint" / "checkpoint.pt")
    assert [g["lr"] for g in ck["opt_g"]["param_groups"]] == [1e-3]
    assert [g["lr"] for g in ck["opt_d"]["param_groups"]] == [3e-3]
    donor_ck = load_checkpoint(tmp_path / "donor" / "checkpoint" / "checkpoint.pt")
    assert all(torch.equal(ck["generator"][k], v) for k, v in donor_ck["generator"].items())

    # Own trial: a newer local checkpoint (driver killed after the trial wrote it) is kept.
    train(cfg, tmp_path / "own")  # step 20
    assert restore_checkpoint(donor, tmp_path / "own", cfg) == 10  # Ray only knew step 10
    assert load_checkpoint(tmp_path / "own" / "checkpoint" / "checkpoint.pt")["loop"]["step"] == 20
    # The report of step 20 may never have reached the driver: it is sent again before training goes on;
    # the run had ended there, so its final report is sent even when Ray knew that checkpoint.
    assert [r["iteration"] for r in replay_reports(tmp_path / "own", 10)] == [20]
    assert [r["iteration"] for r in replay_reports(tmp_path / "own", 20)] == [20]
    # A run still going: only the reports past Ray's checkpoint, up to the local one.
    def stop_at_20(metrics, _):
        if metrics["iteration"] == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg.replace(iterations=40), tmp_path / "going", reporter=stop_at_20)
    assert [r["iteration"] for r in replay_reports(tmp_path / "going", 10)] == [20]
    assert replay_reports(tmp_path / "going", 20) == []
    # No Ray checkpoint and a leftover of another config: start fresh.
    restore_checkpoint(None, tmp_path / "own", cfg.replace(seed=1))
    assert not (tmp_path / "own" / "checkpoint" / "checkpoint.pt").exists()
