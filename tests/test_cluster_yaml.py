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
