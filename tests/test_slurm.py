"""cluster/slurm.sbatch on a real SLURM: munged, slurmctld and slurmd (Debian's slurm-wlm and munge) started
by this module as a one-node cluster with this machine's CPUs. The smoke study submitted with sbatch finishes
its 4 trials across a requeue (the one that ends a job near its time limit), Ray started both ways on the
way (symmetric-run on a node the job has to itself, the classic head/worker pattern on a shared one), and no
Ray process is left behind."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from local_processes import command_lines_with, free_ports  # tests/ is on sys.path
from study.tables import JOURNAL_FILE, TRIALS_FILE, read_journal
from trainers import metric_keys as K

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SBATCH = REPO / "cluster" / "slurm.sbatch"
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "scancel", "sinfo", "unshare")
CPUS = os.cpu_count() or 1
JOB_TIMEOUT_S = 900  # the smoke study takes ~40 s on 2 idle cores; a shared machine can be many times slower


def slurm_conf(root: Path, ctld_port: int, slurmd_port: int) -> str:
    host = socket.gethostname()
    return f"""\
ClusterName=ganstudy
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket={root}/munge-run/socket,cred_expire=5
# No cgroups here: processes are tracked by their parents, and tasks are not bound to CPUs.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=10
MinJobAge=3600
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName={host} NodeAddr=127.0.0.1 CPUs={CPUS} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm():
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(f"no SLURM here ({', '.join(missing)} missing): apt-get install slurm-wlm munge, as .ci/run does")
    if os.geteuid() != 0:
        pytest.skip("starting slurmd and a PID namespace needs root")
    # Short: munge's socket path lives under it.
    root = Path(tempfile.mkdtemp(prefix="sl", dir="/tmp"))
    for sub in ("munge-key", "munge-run", "state", "spool"):
        (root / sub).mkdir()
    (root / "munge-key").chmod(0o700)
    key = root / "munge-key" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = root / "slurm.conf"
    conf.write_text(slurm_conf(root, *free_ports(2)))
    daemons = (
        f"munged -F -f --socket={root}/munge-run/socket --key-file={key} --pid-file={root}/munged.pid "
        f"--seed-file={root}/munged.seed --log-file={root}/munged.log & "
        f"for i in $(seq 100); do [ -S {root}/munge-run/socket ] && break; sleep 0.1; done; "
        f"slurmctld -D -i -f {conf} & slurmd -D -f {conf} & wait"
    )
    # A PID namespace: `ray stop` (symmetric-run's last step) stops every Ray process it can see, and here it
    # sees only this SLURM's jobs, not another test's or session's Ray on this machine. Killing unshare kills
    # the namespace's first process (--kill-child), and with it whatever the jobs left running.
    log = open(root / "daemons.log", "w")
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "bash", "-c", daemons],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    env.pop("RAY_ADDRESS", None)
    try:
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline and proc.poll() is None:
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout
            if state.strip() == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"SLURM did not come up (node state {state.strip()!r}):\n" + daemon_logs(root))
        yield env
    finally:
        proc.kill()
        proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def daemon_logs(root: Path) -> str:
    return "\n".join(f"--- {p.name}\n" + p.read_text()[-3000:] for p in sorted(root.glob("*.log")))


def submit(env: dict, log: Path, *args: str, extra_env: dict | None = None) -> str:
    cmd = ["sbatch", "--parsable", f"--cpus-per-task={CPUS}", f"--output={log}", *args]
    out = subprocess.run(cmd, cwd=REPO, env={**env, **(extra_env or {})}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def job(env: dict, job_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], env=env, capture_output=True, text=True).stdout
    return dict(field.split("=", 1) for field in out.split() if "=" in field)


def wait_until_done(env: dict, job_id: str, log: Path) -> dict[str, str]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        info = job(env, job_id)
        if info.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
            return info
        time.sleep(1)
    pytest.fail(f"job {job_id} still {job(env, job_id).get('JobState')} after {JOB_TIMEOUT_S} s:\n{tail(log)}")


def tail(log: Path) -> str:
    return log.read_text()[-6000:] if log.exists() else "(no job log)"


def reports(study: Path) -> list[tuple[str, int]]:
    """(trial id, iteration) of every report in the journal, in order."""
    return [(r["trial_id"], r["metrics"][K.ITERATION]) for r in read_journal(study / JOURNAL_FILE)
            if r["event"] == "report"]


def ray_processes_of(job_id: str) -> list[str]:
    """Processes of this job's Ray: its temp dir /tmp/ray-JOBID is on their command lines."""
    return command_lines_with(f"/tmp/ray-{job_id}/".encode())


def test_smoke_study_finishes_across_a_requeue(slurm, tmp_path):
    study, log = tmp_path / "study", tmp_path / "job.out"
    job_id = submit(slurm, log, "--exclusive", str(SBATCH), "--space", "smoke", "--data", "phantom",
                    "--out", str(study))
    # Requeued once a trial has a checkpoint past its first report (one checkpoint per report).
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not any(it >= 20 for _, it in reports(study)):
        assert job(slurm, job_id).get("JobState") in ("PENDING", "RUNNING"), tail(log)
        assert time.monotonic() < deadline, f"no trial got to iteration 20 in {JOB_TIMEOUT_S} s:\n{tail(log)}"
        time.sleep(0.5)
    # What SLURM sends the batch shell 5 minutes before the time limit (#SBATCH --signal=B:USR1@300): the
    # script requeues its own job, which SLURM then ends like a preempted one.
    subprocess.run(["scancel", "--signal=USR1", "--batch", job_id], env=slurm, check=True)
    deadline = time.monotonic() + 120
    while job(slurm, job_id).get("Restarts", "0") == "0":
        assert time.monotonic() < deadline, f"job {job_id} was not requeued:\n{tail(log)}"
        time.sleep(0.5)
    before = reports(study)  # the first run is gone once the job counts a restart
    # The requeued job may share its node now, as if resubmitted without --exclusive: the next run must
    # start Ray the classic way (symmetric-run would end with `ray stop` of every Ray of the user there).
    for args in (["hold", job_id], ["update", f"JobId={job_id}", "OverSubscribe=YES"], ["release", job_id]):
        subprocess.run(["scontrol", *args], env=slurm, check=True)

    info = wait_until_done(slurm, job_id, log)
    text = log.read_text()  # --open-mode=append: both runs
    assert info["JobState"] == "COMPLETED", tail(log)
    assert info["Restarts"] == "1"
    runs = [line for line in text.splitlines() if line.startswith(f"gan-study job {job_id} ")]
    assert len(runs) == 2, runs
    assert "(restart 0)" in runs[0] and "Ray symmetric at" in runs[0]  # --exclusive: the node is the job's
    assert "(restart 1)" in runs[1] and "Ray classic at" in runs[1] and runs[1].endswith(f"gan-study resume {study}")
    assert "time limit near: requeueing job" in text

    trials = pd.read_parquet(study / TRIALS_FILE)
    assert len(trials) == 4 and set(trials["status"]) == {"finished"}, trials[["trial_id", "status"]]
    assert trials["fid"].notna().all()
    # A trial that had reported iteration 20 continued from a checkpoint (if it ran again), not from the start.
    after = reports(study)[len(before):]
    for trial_id in {t for t, it in before if it >= 20}:
        assert min((it for t, it in after if t == trial_id), default=40) > 10, trial_id
    assert ray_processes_of(job_id) == []
    assert not Path(f"/tmp/ray-{job_id}").exists()  # a finished job takes its Ray temp dir with it


def test_sbatch_refuses_a_job_without_a_study_directory(slurm, tmp_path):
    log = tmp_path / "job.out"
    job_id = submit(slurm, log, str(SBATCH), "--space", "smoke")
    info = wait_until_done(slurm, job_id, log)
    assert info["JobState"] == "FAILED"
    lines = log.read_text().strip().splitlines()
    assert lines == ["slurm.sbatch: give the study directory: sbatch cluster/slurm.sbatch --space NAME --out DIR "
                     "(on shared storage)"]
