"""A study on a two-node Ray cluster (head + worker, one logical GPU each, on this machine): trials are
spread over both nodes under fractional GPU requests, train on CPU when torch sees no CUDA, and a
trial whose node is killed mid-run continues from its checkpoint elsewhere, exactly."""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time

import pandas as pd
import pytest

from study.runner import run_study
from study.spec import new_spec
from study.tables import JOURNAL_FILE, TRIALS_FILE, read_journal
from trainers import metric_keys as K

pytestmark = pytest.mark.slow

SETTINGS = {"eval_at_end": False, "iterations": 80, "optimizer": "adam"}  # smoke space: 2 trials (TTUR off/on)


@pytest.fixture(scope="module")
def two_nodes():
    import ray
    from ray.cluster_utils import Cluster

    # A private Ray temp dir: Cluster writes its address there, so no other ray.init() on this machine
    # attaches to it (short path: Ray's socket names have a length limit).
    tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    old = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = tmp
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster, worker
    finally:
        ray.shutdown()
        cluster.shutdown()
        if old is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = old
        shutil.rmtree(tmp, ignore_errors=True)


def reports_by_trial(study) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in read_journal(study / JOURNAL_FILE):
        if r["event"] == "report":
            out.setdefault(r["trial_id"], []).append(r["metrics"][K.ITERATION])
    return out


def test_trials_spread_over_two_nodes_survive_losing_one(two_nodes, tmp_path):
    import ray

    cluster, worker = two_nodes
    assert ray.cluster_resources()["GPU"] == 2
    study = tmp_path / "study"
    spec = new_spec(out=str(study), space="smoke", overrides=SETTINGS, gpus_per_trial=0.5, cpus_per_trial=1,
                    max_failures=2)
    killed: dict[str, float] = {}

    def kill_worker_mid_trial() -> None:
        # One CPU per node and one per trial: two trials running at once are on different nodes.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            seen = reports_by_trial(study) if (study / JOURNAL_FILE).exists() else {}
            if len(seen) == 2 and all(0 < max(its) < SETTINGS["iterations"] for its in seen.values()):
                cluster.remove_node(worker, allow_graceful=False)
                killed["at"] = time.monotonic()
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_worker_mid_trial)
    killer.start()
    outcome = run_study(spec, progress=False)
    killer.join()
    assert "at" in killed, "both trials never ran at the same time"
    assert outcome.counts == {"finished": 2}

    trials = pd.read_parquet(study / TRIALS_FILE)
    assert set(trials["iterations_done"]) == {80} and set(trials["reports"]) == {8}
    recovered = [r for r in read_journal(study / JOURNAL_FILE)
                 if r["event"] == "trial" and r["reason"].startswith("restarting from the last checkpoint")]
    assert len(recovered) == 1
    trial_id = recovered[0]["trial_id"]
    # It continued from a checkpoint: the first report after the restart is past the first report.
    after = [r["metrics"][K.ITERATION] for r in read_journal(study / JOURNAL_FILE)
             if r["event"] == "report" and r["trial_id"] == trial_id
             and r["timestamp"] > recovered[0]["timestamp"]]
    assert after and min(after) > 10

    # ...and exactly: the same numbers as the same config trained in one go, in this process.
    from study.trainable import load_train_set
    from trainers.checkpoint import load_checkpoint
    from trainers.config import TrialConfig
    from trainers.loop import train

    ck = load_checkpoint(study / "trials" / trial_id / "checkpoint" / "checkpoint.pt")
    assert ck["config"]["device"] == "cpu"  # Ray assigned half a logical GPU; torch has no CUDA here
    cfg = TrialConfig.from_dict(ck["config"])
    expected = train(cfg, tmp_path / "reference", train_set=load_train_set(cfg))
    row = trials.set_index("trial_id").loc[trial_id]
    for key in (K.D_LOSS_MEAN, K.D_LOSS_VAR, K.G_LOSS_MEAN, K.LOSS_D):
        assert row[key] == expected[key], key
