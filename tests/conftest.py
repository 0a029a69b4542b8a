"""Shared fixtures. Real data lives in ../shared/data beside the repo; tests that need it skip without it."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GAN_STUDY_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _seed_everything():
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    # A trial run in-process sets torch's thread count from its config (num_threads); restored so that no test's
    # numbers depend on which tests ran before it in the same process (pytest-xdist orders them differently).
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (pyproject's addopts): two workers per core, at most 4 (each may start a Ray of 2 CPUs). Two per
    core because the suite's workers spend much of their time waiting on processes (Ray, SLURM, sshd, Chromium):
    with one per core, 2 cores were 48% busy."""
    return max(1, min(4, 2 * (os.cpu_count() or 1)))


def pytest_configure(config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # One thread per worker: two workers each spinning 2 OpenMP threads on 2 cores ran the torch-heavy tests
        # 4-5x slower than serially. The environment variables reach the subprocesses (CLI runs, Ray) too.
        import torch

        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = "1"
        torch.set_num_threads(1)


def _shared_root(tmp_path_factory) -> Path:
    """The session's temp root, shared by pytest-xdist's workers (each has its own base temp dir under it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Each test session gets its own cache dir so tests never read a stale developer cache.

    Session-scoped so it is in place before module fixtures start Ray: workers inherit it. pytest-xdist's
    workers share one (the parent of their base temp dirs): entries are built under a file lock and written
    atomically, as on a cluster's shared storage, so the domain extractor, the TRTR baseline and the yardstick
    floor are built once per run, not once per worker.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GAN_STUDY_CACHE", str(_shared_root(tmp_path_factory) / "gan-study-cache"))
        yield


@pytest.fixture
def pneumoniamnist_npz() -> Path:
    path = SHARED_DATA / "pneumoniamnist.npz"
    if not path.is_file():
        pytest.skip(f"real data not available: {path}")
    return path


@pytest.fixture
def chest_xray_dir() -> Path:
    path = SHARED_DATA / "chest_xray"
    if not (path / "train").is_dir():
        pytest.skip(f"real data not available: {path}")
    return path


@pytest.fixture(scope="module")
def local_ray():
    """A local 2-CPU Ray for one test module's studies (shut down after the module)."""
    import ray

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _api_examples_in_order(tests: list) -> list:
    # run_study's example makes the study every other example reads
    return sorted(tests, key=lambda t: (not t.name.endswith(".run_study"), t.name))


@pytest.fixture(scope="session")
def api_examples(tmp_path_factory):
    """Every docstring example of study.api, run once per test run in a scratch working directory: returns
    ((failed, attempted), report, dir). Its `runs/smoke` (the smoke space at 20 iterations on the phantom) is
    the one smoke study that tests which only read one share (tests/test_api.py, tests/test_study_ray.py).
    Under pytest-xdist the first worker to ask runs it (under a file lock) and the others read its outcome."""
    import doctest
    import json

    from filelock import FileLock

    root = _shared_root(tmp_path_factory)
    work, outcome = root / "api", root / "api-outcome.json"
    with FileLock(str(root / "api.lock")):
        if not outcome.is_file():
            import ray

            from study import api

            os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
            # Started here (not by the API) so that worker logs stay out of the examples' expected output.
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            work.mkdir()
            cwd = os.getcwd()
            os.chdir(work)
            report: list[str] = []
            try:
                runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
                for test in _api_examples_in_order(doctest.DocTestFinder().find(api, "study.api")):
                    runner.run(test, out=report.append)
            finally:
                os.chdir(cwd)
                ray.shutdown()
            failed, attempted = runner.summarize(verbose=False)
            outcome.write_text(json.dumps({"failed": failed, "attempted": attempted, "report": "".join(report)}))
    result = json.loads(outcome.read_text())
    return (result["failed"], result["attempted"]), result["report"], work
