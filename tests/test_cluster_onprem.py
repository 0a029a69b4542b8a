"""cluster.onprem.yaml: the cluster launcher's local provider on machines reachable over SSH. Checked against
Ray's schema, and run for real: `ray up`, `ray exec ... gan-study run --space smoke` and `ray down` against an
sshd (Debian's openssh-server) that this module starts with a key it makes, on port 22 (the only one the
launcher connects to) of a loopback address of its own, with free ports and temp dirs of its own, so that two
runs of this module on one machine do not meet."""
from __future__ import annotations

import getpass
import hashlib
import importlib.util
import json
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from local_processes import command_lines_with, free_ports  # tests/ is on sys.path

REPO = Path(__file__).resolve().parents[1]
ONPREM = REPO / "cluster.onprem.yaml"
BIN = Path(sys.executable).parent  # this checkout's .venv/bin: ray, gan-study


@pytest.fixture(scope="module")
def onprem() -> dict:
    return yaml.safe_load(ONPREM.read_text())


@pytest.fixture(scope="module")
def aws() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_validates_against_the_autoscaler_schema_shipped_with_ray(onprem):
    import jsonschema
    import ray
    from ray.autoscaler._private.util import prepare_config, validate_config

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(onprem, schema)
    validate_config(prepare_config(onprem))  # the launcher's own check after the local provider's defaults
    assert onprem["provider"]["type"] == "local"
    assert onprem["provider"]["head_ip"] and isinstance(onprem["provider"]["worker_ips"], list)
    assert set(onprem["auth"]) == {"ssh_user", "ssh_private_key"}


def test_same_install_and_start_commands_as_the_aws_cluster(onprem, aws):
    import ray

    for key in ("head_start_ray_commands", "worker_start_ray_commands", "head_setup_commands", "rsync_exclude",
                "file_mounts"):
        assert onprem[key] == aws[key], key
    for cluster in (onprem, aws):
        install = cluster["setup_commands"][0]
        assert install.startswith("bash ~/gan-study/cluster/setup-node.sh ")
        assert f'"ray[default,tune]=={ray.__version__}"' in install
    # Only the storage differs: a path every machine mounts here, a bucket there.
    assert "GAN_STUDY_STORAGE=/" in onprem["setup_commands"][1]
    assert "GAN_STUDY_STORAGE=s3://" in aws["setup_commands"][1]
    assert onprem["setup_commands"][2] == aws["setup_commands"][2]


def free_loopback_address() -> str:
    """An address in 127.0.0.0/8, all of which is this machine's loopback on Linux, where port 22 is free: the
    launcher's local provider only connects to port 22, and another run of this test may hold it elsewhere."""
    for _ in range(20):
        address = f"127.{random.randrange(1, 255)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        with socket.socket() as s:
            try:
                s.bind((address, 22))
            except OSError:
                continue
        return address
    pytest.skip("no loopback address with a free port 22 here")


@pytest.fixture(scope="module")
def sshd():
    missing = [b for b in ("sshd", "ssh", "ssh-keygen", "rsync", "unshare")
               if not (shutil.which(b) or shutil.which(b, path="/usr/sbin"))]
    if missing:
        pytest.skip(f"no SSH server here ({', '.join(missing)} missing): apt-get install openssh-server rsync, "
                    "as .ci/run does")
    if os.geteuid() != 0:
        pytest.skip("an sshd on port 22 and a PID namespace need root")
    address = free_loopback_address()
    root = Path(tempfile.mkdtemp(prefix="op", dir="/tmp"))  # short: Ray's socket paths live under rt/
    home = root / "home"
    home.mkdir()
    (home / ".bashrc").touch()  # every real account has one; the launcher's shells source it
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
    (root / "authorized_keys").chmod(0o600)
    # The "machine" is this one, as root, but with a home, a Ray temp dir and a Ray that are the test's own:
    # HOME keeps ~/.bashrc, ~/gan-study and ~/studies out of root's real home; RAY_TMPDIR keeps the head's
    # address away from other Ray instances here; the project's environment is this checkout's .venv. The
    # autoscaler's and the dashboard's Prometheus endpoints would otherwise take fixed ports (44217, 44227).
    autoscaler_metrics, dashboard_metrics = free_ports(2)
    (root / "sshd_config").write_text(f"""\
ListenAddress {address}:22
HostKey {root}/host_key
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
SetEnv HOME={home} RAY_TMPDIR={root}/rt GAN_STUDY_VENV={REPO}/.venv AUTOSCALER_METRIC_PORT={autoscaler_metrics} \
DASHBOARD_METRIC_PORT={dashboard_metrics}
""")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    log = open(root / "sshd.log", "w")
    # A PID namespace: `ray stop` (the first start command, and `ray down`) stops every Ray process it can
    # see; started through this sshd it sees only the ones started through it.
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "/usr/sbin/sshd", "-D",
                             "-e", "-f", str(root / "sshd_config")], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    ssh = ["ssh", "-i", str(root / "user_key"), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
           "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", f"root@{address}"]
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([*ssh, "true"], capture_output=True).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, (root / "sshd.log").read_text()
            time.sleep(0.3)
        yield {"root": root, "home": home, "key": root / "user_key", "address": address}
    finally:
        proc.kill()
        proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def launcher_config(onprem: dict, root: Path, key: Path, address: str) -> dict:
    """cluster.onprem.yaml with this machine (at `address`) as the only one; what else differs is said below."""
    cfg = json.loads(json.dumps(onprem))
    cfg["cluster_name"] = f"gan-study-test-{os.getpid()}-{root.name}"
    cfg["provider"].update(head_ip=address, worker_ips=[])
    cfg["auth"] = {"ssh_user": "root", "ssh_private_key": str(key)}
    cfg["setup_commands"] = [c.replace("/mnt/shared/gan-study", str(root / "storage")) for c in cfg["setup_commands"]]
    # Other Ray instances may run on this machine: the head takes free ports instead of Ray's defaults.
    gcs, objects, dashboard, agent, client = free_ports(5)
    more = f" --dashboard-port={dashboard} --dashboard-agent-listen-port={agent}"
    if importlib.util.find_spec("grpc"):  # the Ray Client server (port 10001) starts only with ray[client]
        more += f" --ray-client-server-port={client}"
    cfg["head_start_ray_commands"] = [
        c.replace("--port=6379", f"--port={gcs}").replace("--object-manager-port=8076",
                                                         f"--object-manager-port={objects}")
        + (more if "ray start" in c else "")
        for c in cfg["head_start_ray_commands"]]
    assert any(f"--port={gcs}" in c for c in cfg["head_start_ray_commands"])
    return cfg


def setup_stamp(install_command: str) -> str:
    """What cluster/setup-node.sh records in the environment after installing (its skip-pip check)."""
    requirements = shlex.split(install_command)[2:]
    return hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest() + " " + " ".join(requirements)


def ray_processes_under(path: Path) -> list[str]:
    return command_lines_with(str(path).encode(), b"ray")


@pytest.mark.slow
def test_ray_up_exec_smoke_study_down(onprem, sshd):
    root, home = sshd["root"], sshd["home"]
    cfg = launcher_config(onprem, root, sshd["key"], sshd["address"])
    cfg_file = root / "cluster.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    # TMPDIR: the launcher's config cache and SSH control sockets go with the test's temp dir.
    (root / "tmp").mkdir()
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_TMPDIR": str(root / "rt"),
           "TMPDIR": str(root / "tmp")}
    env.pop("RAY_ADDRESS", None)

    # This checkout's .venv was installed by the README's command (CI runs it first): setup-node.sh finds it
    # up to date instead of re-running pip over SSH, which would take minutes and rewrite the environment this
    # very test runs in. The stamp is put back as it was afterwards.
    stamp_file = REPO / ".venv" / ".gan-study-setup"
    old_stamp = stamp_file.read_text() if stamp_file.exists() else None
    stamp_file.write_text(setup_stamp(cfg["setup_commands"][0]) + "\n")

    def ray(*args: str, timeout: int) -> subprocess.CompletedProcess:
        out = subprocess.run([str(BIN / "ray"), *args], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=timeout)
        assert out.returncode == 0, f"ray {' '.join(args[:1])} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
        return out

    try:
        ray("up", "-y", "--no-config-cache", str(cfg_file), timeout=300)
        assert (home / "gan-study" / "cluster" / "setup-node.sh").is_file()  # file_mounts, through rsync
        assert not (home / "gan-study" / ".venv").exists() and not (home / "gan-study" / ".git").exists()
        bashrc = (home / ".bashrc").read_text()
        assert f'export PATH="{REPO}/.venv/bin:$PATH"' in bashrc
        assert "export RAY_ADDRESS=auto" in bashrc and f"GAN_STUDY_STORAGE={root}/storage" in bashrc

        study = "gan-study run --space smoke --data phantom --out ~/studies/smoke"
        ray("exec", "--no-config-cache", str(cfg_file), study, timeout=900)
        trials = pd.read_parquet(home / "studies" / "smoke" / "trials.parquet")
        assert len(trials) == 4 and set(trials["status"]) == {"finished"}, trials[["trial_id", "status"]]
        assert (root / "storage" / "smoke").is_dir()  # Ray's experiment state went to GAN_STUDY_STORAGE
        assert stamp_file.read_text() == setup_stamp(cfg["setup_commands"][0]) + "\n"  # pip did not run

        ray("down", "-y", str(cfg_file), timeout=120)
        deadline = time.monotonic() + 30
        while ray_processes_under(root / "rt"):
            assert time.monotonic() < deadline, ray_processes_under(root / "rt")
            time.sleep(0.5)
    finally:
        if old_stamp is None:
            stamp_file.unlink(missing_ok=True)
        else:
            stamp_file.write_text(old_stamp)
        # The launcher's SSH control sockets sit at a fixed place in /tmp, named by user and cluster.
        user = hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10]
        shutil.rmtree(f"/tmp/ray_ssh_{user}/{hashlib.sha256(cfg['cluster_name'].encode()).hexdigest()[:10]}",
                      ignore_errors=True)
