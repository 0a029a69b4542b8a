"""Studies through Ray Tune with the real training loop on tiny configs (2 CPU cores):
a smoke study runs end to end into the results schema; a study whose driver is killed with -9 and then
resumed ends with the same results as the uninterrupted one; errored and diverged trials are recorded
and the study goes on."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from study.runner import run_study
from study.spec import new_spec
from study.tables import HISTORY_FILE, JOURNAL_FILE, TRIALS_FILE, read_journal
from trainers import metric_keys as K

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# The smoke space at 20 iterations (4 trials, FID at the end): the study study.api's docstring example makes,
# run once per session by the `api_examples` fixture (tests/conftest.py) and read here. (Kill -9 of a driver
# and resume: tests/test_chaos.py.)
ITERATIONS, REPORTS = 20, 2


@pytest.fixture(scope="module")
def ray_session():
    import ray

    repo = str(REPO)

    def inject_failure() -> None:
        # Fault injection for the errored-trial test: a trial named "fail-me" raises inside the worker.
        # (The hook runs before Ray puts the driver's sys.path in place, hence the explicit path.)
        if repo not in sys.path:
            sys.path.insert(0, repo)
        from pathlib import Path

        from trainers import loop

        real_train = loop.train

        def train(cfg, out_dir, **kwargs):
            # "fail-me" always fails; "fail-while-marked" while STUDY_DIR/FAIL exists (a node that keeps dying).
            marked = cfg.name == "fail-while-marked" and (Path(out_dir).parents[1] / "FAIL").exists()
            if cfg.name == "fail-me" or marked:
                raise RuntimeError("injected failure for the test")
            return real_train(cfg, out_dir, **kwargs)

        loop.train = train

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": inject_failure})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def smoke_study(api_examples):
    """(study dir, its Study) of the session's one smoke study (the API examples' runs/smoke)."""
    from study.api import load_study

    (failed, _), report, work = api_examples
    out = work / "runs" / "smoke"
    assert failed == 0 and (out / TRIALS_FILE).is_file(), report
    return out, load_study(out)


def test_smoke_study_fills_the_results_schema(smoke_study):
    out, study = smoke_study
    assert study.counts == {"finished": 4} and not study.interrupted
    trials = pd.read_parquet(out / TRIALS_FILE)
    history = pd.read_parquet(out / HISTORY_FILE)
    assert len(trials) == 4 and len(history) == 4 * REPORTS  # every report, not only the last
    assert set(trials["status"]) == {"finished"} and set(trials["iterations_done"]) == {ITERATIONS}
    assert trials[K.FID].notna().all() and (trials["best_fid"] == trials[K.FID]).all()  # FID at the end
    assert history[K.FID].isna().sum() == 4 * (REPORTS - 1)  # not measured before the end
    # Downstream at the end: TSTR per trial, one TRTR baseline shared by all (trained once, cached).
    assert trials[K.TSTR_PREFIX + K.ACCURACY].between(0, 1).all()
    assert trials[K.TRTR_PREFIX + K.ACCURACY].nunique() == 1 and (trials[K.TRTR_PREFIX + "n_test"] == 400).all()
    assert set(trials["config/optimizer"]) == {"adam", "adas"}
    assert sorted(trials["config/ttur"]) == [False, False, True, True]
    for col in ("study", "trial_id", "reason", "reports", "wall_s", "peak_memory_mb", "best_fid", "trial_dir",
                K.D_LOSS_MEAN, K.D_LOSS_VAR, K.T0, K.FID):
        assert col in trials, col
    for col in ("timestamp", K.ITERATION, K.LOSS_D, K.D_X, K.D_G_Z, K.STATUS, K.SAMPLE_PATH):
        assert col in history, col
    for rel in history[K.SAMPLE_PATH]:
        assert not os.path.isabs(rel) and (out / rel).is_file()
    for rel in trials["trial_dir"]:
        assert (out / rel / "checkpoint" / "checkpoint.pt").is_file()
    assert json.loads((out / "study.json").read_text())["space"] == "smoke"


def test_the_smoke_plan_is_recorded_before_the_first_report_and_analyze_calls_it_primary(smoke_study):
    from datetime import datetime, timezone

    from analysis.pipeline import analyze
    from analysis.plan import parse_plan, plan_hash

    out, _ = smoke_study
    plan = json.loads((out / "study.json").read_text())["plan"]
    assert plan["source"] == "space smoke" and plan["sha256"] == plan_hash(parse_plan(plan))
    recorded = datetime.strptime(plan["recorded_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    first = datetime.fromtimestamp(pd.read_parquet(out / HISTORY_FILE)["timestamp"].min(), tz=timezone.utc)
    assert recorded <= first.replace(microsecond=0)
    result = analyze([out], n_resamples=100, n_permutations=100, include_reference=False)
    assert result.plan.primary and "before the first report" in result.plan.why
    assert len(result.planned) == 1 and result.planned["n_configs"].iloc[0] == 4
    assert result.tests["primary"].iloc[0] and result.tests["primary"].sum() == 1
    floor = result.yardstick[0].floor  # the smoke study's own extractor, floor computed here
    assert floor is not None and floor.rows and all(r.fid_mean >= 0 for r in floor.rows if not r.skipped)


def run_cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"] = "0"
    return subprocess.Popen([sys.executable, "-m", "study.cli", *args], cwd=REPO, env=env,
                            start_new_session=True, **kwargs)


def test_ctrl_c_stops_cleanly_keeps_results_and_says_how_to_resume(tmp_path):
    study = tmp_path / "interrupted"
    proc = run_cli("run", "--space", "smoke", "--out", str(study), "--quiet", "--set", "eval_at_end=false",
                   "--set", "iterations=400", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not any(
            r["event"] == "report" for r in read_journal(study / JOURNAL_FILE)):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"gan-study resume {study}" in err
    trials = pd.read_parquet(study / TRIALS_FILE)
    assert set(trials["status"]) == {"pending"}
    assert trials["reason"].str.startswith("interrupted").all() and trials["reports"].sum() >= 1


def test_errored_and_diverged_trials_are_recorded_and_the_study_goes_on(ray_session, tmp_path):
    space = tmp_path / "outcomes.yaml"
    space.write_text(textwrap.dedent("""
        description: one trial of each outcome
        fixed: {data: phantom, data_limit: 128, resolution: 32, g_features: 16, d_features: 16, latent_dim: 16,
                batch_size: 16, iterations: 40, report_every: 10, eval_at_end: false, num_threads: 1}
        scientific:
          outcome: {grid: [ok, fail, diverge]}
        factors:
          outcome:
            ok: {name: ok}
            fail: {name: fail-me}
            # A gradient-penalty weight beyond float32 makes D's loss infinite at the first step.
            diverge: {name: diverge, loss: wgan_gp, d_norm: layer, gp_weight: 1.0e+39}
    """))
    spec = new_spec(out=str(tmp_path / "study"), space=str(space), max_failures=0, max_concurrent=2,
                    metric=K.D_LOSS_MEAN, mode="max")
    outcome = run_study(spec, progress=False)
    assert outcome.counts == {"diverged": 1, "errored": 1, "finished": 1}
    trials = pd.read_parquet(tmp_path / "study" / TRIALS_FILE).set_index("config/name")
    assert trials.loc["fail-me", "status"] == "errored"
    assert trials.loc["fail-me", "reason"] == "RuntimeError: injected failure for the test"
    assert trials.loc["diverge", "status"] == "diverged" and "non-finite" in trials.loc["diverge", "reason"]
    assert trials.loc["diverge", "iterations_done"] < 40
    assert trials.loc["ok", "status"] == "finished" and trials.loc["ok", "reason"] == ""
    assert not math.isnan(trials.loc["ok", K.D_LOSS_MEAN])


def test_resume_retry_errored_continues_errored_trials_and_keeps_the_rest(ray_session, tmp_path):
    """A trial that ran out of --max-failures (here: failing while a marker exists) stays errored on a plain
    resume and finishes with --retry-errored; the finished trial is not trained again."""
    from study.runner import resume_study

    space = tmp_path / "retry.yaml"
    space.write_text(textwrap.dedent("""
        description: one trial that fails while STUDY_DIR/FAIL exists
        fixed: {data: phantom, data_limit: 128, resolution: 32, g_features: 16, d_features: 16, latent_dim: 16,
                batch_size: 16, iterations: 20, report_every: 10, eval_at_end: false, num_threads: 1}
        scientific:
          outcome: {grid: [ok, flaky]}
        factors:
          outcome:
            ok: {name: ok}
            flaky: {name: fail-while-marked}
    """))
    study = tmp_path / "study"
    study.mkdir()
    (study / "FAIL").touch()
    spec = new_spec(out=str(study), space=str(space), max_failures=0, max_concurrent=2, metric=K.D_LOSS_MEAN,
                    mode="max")
    assert run_study(spec, progress=False).counts == {"errored": 1, "finished": 1}
    ok_ckpt = next((study / "trials").glob("*/checkpoint/checkpoint.pt"))
    mtime = ok_ckpt.stat().st_mtime_ns

    assert resume_study(spec, progress=False).counts == {"errored": 1, "finished": 1}  # kept by default
    (study / "FAIL").unlink()  # the node problem is gone
    assert resume_study(spec, progress=False, retry_errored=True).counts == {"finished": 2}
    trials = pd.read_parquet(study / TRIALS_FILE).set_index("config/name")
    assert trials.loc["fail-while-marked", "reason"] == "" and trials.loc["fail-while-marked", "iterations_done"] == 20
    assert ok_ckpt.stat().st_mtime_ns == mtime
