"""cluster/slurm.sbatch, two ways.

On a real SLURM (slow): munged, slurmctld and slurmd (Debian's slurm-wlm and munge) started by this module as
a one-node cluster with this machine's CPUs, on free ports, with its own state, job ids and Ray temp dir, so
that two runs of this module on one machine do not meet. The smoke study submitted with sbatch finishes its 4
trials across a requeue (the one that ends a job near its time limit), Ray started both ways on the way
(symmetric-run on a node the job has to itself, the classic head/worker pattern on a shared one), and no Ray
process is left behind.

Without SLURM (fast): the script's decisions with stand-ins for scontrol, srun, ray and gan-study on PATH: run
or resume, the head's address, each node's own GPUs, and a Ray that fails to start under `ray symmetric-run`
(Ray's own symmetric-run code, which exits 0 then) failing the job and keeping its Ray logs."""
from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from local_processes import command_lines_with, free_ports  # tests/ is on sys.path
from study.tables import JOURNAL_FILE, TRIALS_FILE, read_journal
from trainers import metric_keys as K

REPO = Path(__file__).resolve().parents[1]
SBATCH = REPO / "cluster" / "slurm.sbatch"
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "scancel", "sinfo", "unshare")
CPUS = os.cpu_count() or 1
JOB_TIMEOUT_S = 900  # the smoke study takes ~40 s on 2 idle cores; a shared machine can be many times slower


def slurm_conf(root: Path, ctld_port: int, slurmd_port: int, first_job_id: int) -> str:
    host = socket.gethostname()
    return f"""\
ClusterName=ganstudy
# Job ids of their own: the script picks its Ray ports by job id, and another run of this module may be
# running its job 1 on this machine.
FirstJobId={first_job_id}
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
    conf.write_text(slurm_conf(root, *free_ports(2), first_job_id=random.randrange(1000, 10**6)))
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


@pytest.fixture
def short_dir():
    """A directory with a short path (Ray's socket paths live under a Ray temp dir), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="gs", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def ray_processes_under(ray_tmp: Path) -> list[str]:
    """Processes of a job's Ray: its temp dir is on their command lines."""
    return command_lines_with(f"{ray_tmp}/".encode())


@pytest.mark.slow
def test_smoke_study_finishes_across_a_requeue(slurm, tmp_path, short_dir):
    study, log = tmp_path / "study", tmp_path / "job.out"
    ray_tmp = short_dir / "ray"  # the job's GAN_STUDY_RAY_TMP; by default /tmp/ray-JOBID
    job_id = submit(slurm, log, "--exclusive", str(SBATCH), "--space", "smoke", "--data", "phantom",
                    "--out", str(study), extra_env={"GAN_STUDY_RAY_TMP": str(ray_tmp)})
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
    assert ray_processes_under(ray_tmp) == []
    assert not ray_tmp.exists()  # a finished job takes its Ray temp dir with it


@pytest.mark.slow
def test_sbatch_refuses_a_job_without_a_study_directory(slurm, tmp_path):
    log = tmp_path / "job.out"
    job_id = submit(slurm, log, str(SBATCH), "--space", "smoke")
    info = wait_until_done(slurm, job_id, log)
    assert info["JobState"] == "FAILED"
    lines = log.read_text().strip().splitlines()
    assert lines == ["slurm.sbatch: give the study directory: sbatch cluster/slurm.sbatch --space NAME --out DIR "
                     "(on shared storage)"]


# --- The script's decisions without SLURM: stand-ins for scontrol, srun, ray and gan-study on PATH. ---

STUBS = {
    # The allocation is $STUB_NODES, "name:gpus ...", the first node being this one.
    "scontrol": """\
case "$1 $2" in
  "show hostnames") for n in $STUB_NODES; do echo "${n%%:*}"; done ;;
  "show job") echo "JobId=$SLURM_JOB_ID OverSubscribe=OK" ;;
esac
""",
    # One task per node of $STUB_NODES, one after the other (the stand-ins return at once), with what SLURM
    # sets per node; options are skipped (the script writes them as --opt=value).
    "srun": """\
echo "srun $*" >>"$STUB_LOG"
exclude=
while [ $# -gt 0 ]; do
  case $1 in --exclude=*) exclude=${1#--exclude=}; shift ;; -*) shift ;; *) break ;; esac
done
rc=0
for n in $STUB_NODES; do
  [ "${n%%:*}" = "$exclude" ] && continue
  SLURMD_NODENAME=${n%%:*} SLURM_GPUS_ON_NODE=${n#*:} "$@" || rc=$?
done
exit $rc
""",
    # `ray symmetric-run` is Ray's own (the ray CLI of this environment); everything it and the script start
    # is this stand-in again. Ray's check for another Ray on the machine is left out: other tests' Rays may run
    # here. `ray start` fails when $STUB_RAY_START_FAILS is set, after writing a log into its temp dir as Ray's
    # head would.
    "ray": """\
echo "ray $*" >>"$STUB_LOG"
case $1 in
  symmetric-run)
    exec "$STUB_PYTHON" -c 'import sys
import ray.scripts.symmetric_run as symmetric_run
symmetric_run.check_ray_already_started = lambda: False
from ray.scripts.scripts import main
sys.argv = ["ray", *sys.argv[1:]]
main()' "$@" ;;
  start)
    if [ -n "${STUB_RAY_START_FAILS:-}" ]; then
      for a in "$@"; do
        case $a in --temp-dir=*) mkdir -p "${a#--temp-dir=}/session_1/logs" &&
          echo "raylet: could not start" >"${a#--temp-dir=}/session_1/logs/raylet.err" ;; esac
      done
      echo "stand-in: ray start failed" >&2
      exit 1
    fi ;;
esac
exit 0
""",
    # The study; it runs for as long as $STUB_RAY_STARTS Rays take to start (the other nodes' start in the
    # background), 10 s at most.
    "gan-study": """\
for _ in $(seq 100); do
  [ "$(grep -c '^ray start' "$STUB_LOG")" -ge "${STUB_RAY_STARTS:-0}" ] && break
  sleep 0.1
done
echo "gan-study $* RAY_ADDRESS=$RAY_ADDRESS" >>"$STUB_LOG"
exit "${STUB_STUDY_RC:-0}"
""",
}
PORT_BASE = 29990


def run_script(tmp: Path, *args: str, nodes: list[tuple[str, int]], **env: str):
    """slurm.sbatch ARGS as SLURM would start it on the first of `nodes` ((name, GPUs) each), with the stand-ins
    above; returns (exit status, its output, the commands the stand-ins were called with)."""
    stubs = tmp / "bin"
    stubs.mkdir(exist_ok=True)
    for name, body in STUBS.items():
        (stubs / name).write_text("#!/bin/bash\n" + body)
        (stubs / name).chmod(0o755)
    calls = tmp / "calls.log"
    calls.unlink(missing_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RAY_", "GAN_STUDY_"))}
    full_env = {
        **base, "PATH": f"{stubs}:{base['PATH']}", "STUB_LOG": str(calls), "STUB_PYTHON": sys.executable,
        "STUB_NODES": " ".join(f"{n}:{g}" for n, g in nodes), "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": ",".join(n for n, _ in nodes), "SLURM_CPUS_PER_TASK": "2",
        "SLURMD_NODENAME": nodes[0][0], "SLURM_GPUS_ON_NODE": str(nodes[0][1]),
        "GAN_STUDY_VENV": str(tmp / "no-venv"), "GAN_STUDY_PORT_BASE": str(PORT_BASE),
        "GAN_STUDY_RAY_TMP": str(tmp / "ray"), **env,
    }
    out = subprocess.run(["bash", str(SBATCH), *args], env=full_env, capture_output=True, text=True, timeout=120)
    lines = calls.read_text().splitlines() if calls.exists() else []
    return out.returncode, out.stdout + out.stderr, lines


def this_machines_address() -> str:
    """A non-loopback address of this machine (what a cluster node's name resolves to)."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    v4 = [a for a in out if ":" not in a]
    if not v4:
        pytest.skip("this machine has no non-loopback IPv4 address")
    return v4[0]


def local_head() -> str:
    """What the script takes for a one-node job's head: this machine's name, or 127.0.0.1 where the name
    resolves to another loopback address (Debian's 127.0.1.1), which symmetric-run would not know as its own."""
    host = socket.gethostname()
    ip = socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_STREAM)[0][4][0]
    return "127.0.0.1" if ip.startswith("127.") and ip != "127.0.0.1" else host


@pytest.mark.parametrize("state", ["missing", "empty", "holds a study"])
def test_run_or_resume_is_decided_by_study_json(short_dir, state):
    """An --out that does not exist, or exists but is empty (made beforehand, or left by a job killed before the
    study began), starts a new study; only one holding study.json resumes."""
    study = short_dir / "study"
    if state != "missing":
        study.mkdir()
    if state == "holds a study":
        (study / "study.json").write_text("{}")
    rc, output, calls = run_script(short_dir, "--space", "smoke", "--out", str(study),
                                   nodes=[(socket.gethostname(), 0)], GAN_STUDY_RAY_LAUNCH="classic")
    assert rc == 0, output
    studies = [c for c in calls if c.startswith("gan-study ")]
    expected = f"gan-study resume {study}" if state == "holds a study" else f"gan-study run --space smoke --out {study}"
    assert studies == [f"{expected} RAY_ADDRESS={local_head()}:{PORT_BASE}"], calls
    assert not (short_dir / "ray").exists()


def test_each_node_starts_ray_with_its_own_gpus_and_the_head_by_its_name(short_dir):
    """A 2-GPU first node and a 1-GPU second one: each Ray offers its own node's GPUs. The head is the first
    node's name in the allocation (here a name that resolves to this machine's address)."""
    head = this_machines_address()
    rc, output, calls = run_script(short_dir, "--out", str(short_dir / "study"), nodes=[(head, 2), ("node-b", 1)],
                                   GAN_STUDY_RAY_LAUNCH="classic", STUB_RAY_STARTS="2")
    assert rc == 0, output
    starts = [set(c.split()) for c in calls if c.startswith("ray start")]
    assert len(starts) == 2, calls
    assert {"--head", f"--node-ip-address={head}", f"--port={PORT_BASE}", "--num-cpus=2", "--num-gpus=2",
            "--block"} <= starts[0], calls
    assert {f"--address={head}:{PORT_BASE}", "--num-cpus=2", "--num-gpus=1", "--block"} <= starts[1], calls
    assert "--head" not in starts[1]
    assert f"gan-study node {head}: 2 CPUs, 2 GPUs" in output and "gan-study node node-b: 2 CPUs, 1 GPUs" in output
    assert [c for c in calls if c.startswith("gan-study ")] == [
        f"gan-study run --out {short_dir / 'study'} RAY_ADDRESS={head}:{PORT_BASE}"]


def test_head_address_override_and_an_unreachable_head(short_dir):
    # GAN_STUDY_HEAD_IP still wins over the first node's name (which need not even resolve then).
    head = this_machines_address()
    rc, output, calls = run_script(short_dir, "--out", str(short_dir / "study"), nodes=[("node-a", 0), ("node-b", 0)],
                                   GAN_STUDY_RAY_LAUNCH="classic", GAN_STUDY_HEAD_IP=head, STUB_RAY_STARTS="2")
    assert rc == 0, output
    assert f"--address={head}:{PORT_BASE}" in [c for c in calls if c.startswith("ray start")][1].split()
    # A name that resolves to loopback on the first node cannot be reached by the others: refused before Ray
    # starts, rather than symmetric-run waiting on every node for a head that never comes.
    rc, output, calls = run_script(short_dir, "--out", str(short_dir / "study"),
                                   nodes=[("localhost", 0), ("node-b", 0)], GAN_STUDY_RAY_LAUNCH="symmetric")
    assert rc == 2 and "a loopback address the other nodes cannot reach" in output, output
    assert "set GAN_STUDY_HEAD_IP" in output and calls == []


@pytest.mark.parametrize("case", ["ray does not start", "study fails", "study finishes"])
def test_symmetric_run_job_fails_unless_the_study_ran_and_keeps_ray_logs_of_a_failed_one(short_dir, case):
    """A requeued job (the study directory holds study.json) on an --exclusive node: when Ray's head does not
    start, Ray's symmetric-run prints "Failed to start Ray" and exits 0; the job must fail, not end COMPLETED
    without resuming, and keep the Ray temp dir with the head's logs."""
    study = short_dir / "study"
    study.mkdir()
    (study / "study.json").write_text("{}")
    env = {"GAN_STUDY_RAY_LAUNCH": "symmetric"}
    if case == "ray does not start":
        env["STUB_RAY_START_FAILS"] = "1"
    if case == "study fails":
        env["STUB_STUDY_RC"] = "3"
    rc, output, calls = run_script(short_dir, "--out", str(study), nodes=[(socket.gethostname(), 1)], **env)
    ray_tmp = short_dir / "ray"
    symmetric = [c.split() for c in calls if c.startswith("ray symmetric-run ")]
    assert len(symmetric) == 1 and {"--num-cpus=2", "--num-gpus=1"} <= set(symmetric[0]), calls
    assert symmetric[0][symmetric[0].index("--address") + 1] == f"{local_head()}:{PORT_BASE}"
    studies = [c for c in calls if c.startswith("gan-study ")]
    if case == "ray does not start":
        assert "Failed to start Ray" in output  # Ray's symmetric-run caught it...
        assert "symmetric-run exited 0" in output  # ...and exited 0 (Ray 2.60)
        assert rc == 1 and studies == [], output
        assert (ray_tmp / "session_1" / "logs" / "raylet.err").is_file()
        assert f"this run's Ray logs are kept in {ray_tmp}" in output
    elif case == "study fails":
        assert rc == 3 and studies == [f"gan-study resume {study} RAY_ADDRESS={local_head()}:{PORT_BASE}"], output
    else:
        assert rc == 0 and studies == [f"gan-study resume {study} RAY_ADDRESS={local_head()}:{PORT_BASE}"], output
        assert not ray_tmp.exists()
