"""cluster.yaml is a valid Ray cluster launcher config with a GPU-free head, autoscaling GPU workers,
the project installed on every node, shared result storage, and only SSH open from outside."""
from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_validates_against_the_autoscaler_schema_shipped_with_ray(cluster):
    import ray

    schema_path = Path(os.path.dirname(ray.__file__)) / "autoscaler" / "ray-schema.json"
    jsonschema.validate(cluster, json.loads(schema_path.read_text()))


def test_ray_fills_defaults_and_accepts_it(cluster):
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(cluster))  # the launcher's own check after filling provider defaults


def test_head_has_no_gpu_and_runs_no_trials(cluster):
    head = cluster["available_node_types"][cluster["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    assert head["resources"].get("CPU", 1) == 0  # trials need CPU, so none is placed beside the driver
    assert not head["node_config"]["InstanceType"].startswith(("g", "p"))  # g*/p* are GPU instances


def test_gpu_workers_autoscale_from_zero(cluster):
    workers = {k: v for k, v in cluster["available_node_types"].items() if k != cluster["head_node_type"]}
    gpu = [v for v in workers.values() if v["resources"].get("GPU", 0) >= 1]
    assert gpu, "a worker type with a GPU"
    for node in gpu:
        assert node["min_workers"] == 0
        assert node["max_workers"] >= 1
    assert cluster["max_workers"] >= max(v["max_workers"] for v in gpu)


def test_only_ssh_is_opened(cluster):
    rules = cluster["provider"]["security_group"]["IpPermissions"]
    for rule in rules:
        assert (rule["FromPort"], rule["ToPort"], rule["IpProtocol"]) == (22, 22, "tcp")
    start = " ".join(cluster["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start  # dashboard only through an SSH tunnel


def test_every_node_gets_the_packages_but_not_the_checkouts_venv(cluster):
    import tomllib

    mounts = cluster["file_mounts"]
    # The launcher hashes every file under a mounted directory on each `ray up`: never the checkout itself,
    # which holds .venv (gigabytes) and runs/.
    assert "." not in mounts.values() and "./" not in mounts.values()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    needed = [pyproject["project"]["readme"], "pyproject.toml", "cluster", *packages]
    for name in needed:
        assert mounts.get(f"~/gan-study/{name}") == f"./{name}", name
        assert (REPO / name).exists(), name


def test_every_node_installs_the_project_and_knows_the_storage(cluster):
    setup = "\n".join(cluster["setup_commands"])
    # Into the project's virtual environment: Ubuntu 24.04 / Debian 12 images refuse pip install (PEP 668).
    assert cluster["setup_commands"][0].startswith("bash ~/gan-study/cluster/setup-node.sh ")
    assert "GAN_STUDY_STORAGE=s3://" in setup
    import ray

    assert f"ray[default,tune]=={ray.__version__}" in setup  # the same Ray as the submitting machine
    assert "pip install" not in setup  # never into the system Python


def test_every_node_type_names_an_ubuntu_24_04_image_and_how_to_find_it_per_region(cluster):
    """Without an ImageId, Ray substitutes its default AMI, a Deep Learning AMI (Ubuntu 18.04) whose python3 is
    3.6, too old for gan-study. Every node type names its own, which Ray keeps; the file says where the current
    id for another region comes from (a public SSM parameter for Ubuntu 24.04)."""
    import ast
    import re

    import ray

    # Ray's AWS config module imports boto3, which only the machine that runs `ray up` needs: read it instead.
    source = ast.parse((Path(ray.__file__).parent / "autoscaler" / "_private" / "aws" / "config.py").read_text())
    default_ami = next(ast.literal_eval(n.value) for n in ast.walk(source) if isinstance(n, ast.Assign)
                       and any(isinstance(t, ast.Name) and t.id == "DEFAULT_AMI" for t in n.targets))
    check_ami = next(n for n in ast.walk(source) if isinstance(n, ast.FunctionDef) and n.name == "_check_ami")
    # _check_ami, run by `ray up`, puts DEFAULT_AMI in place of an ImageId that is one of these ("", "latest_dlami").
    replaced = {c.value for n in ast.walk(check_ami) if isinstance(n, ast.Compare)
                for c in ast.walk(n) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    assert "" in replaced and default_ami[cluster["provider"]["region"]].startswith("ami-")
    for name, node in cluster["available_node_types"].items():
        image = node["node_config"].get("ImageId", "")
        assert re.fullmatch(r"ami-[0-9a-f]{17}", image), (name, image)
        assert image.lower() not in replaced and image not in default_ami.values(), (name, image)
    text = (REPO / "cluster.yaml").read_text()
    docs = (REPO / "docs" / "CLUSTER.md").read_text()
    for parameter in ("/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
                      "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"):
        assert parameter in text and parameter in docs, parameter
    assert cluster["auth"]["ssh_user"] == "ubuntu"  # the login of both Ubuntu images


def test_setup_makes_a_venv_with_the_python_the_project_requires(cluster):
    """The install step (cluster/setup-node.sh, tested in tests/test_cluster_setup_node.py) makes the project's
    virtual environment and refuses a Python older than pyproject.toml's requires-python."""
    import re
    import tomllib

    assert cluster["setup_commands"][0].startswith("bash ~/gan-study/cluster/setup-node.sh ")
    script = (REPO / "cluster" / "setup-node.sh").read_text()
    assert '"$python" -m venv "$venv"' in script
    minimum = re.search(r"^min_python=(\S+)$", script, re.M).group(1)
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={minimum}"
    assert tuple(map(int, minimum.split("."))) >= (3, 10)
