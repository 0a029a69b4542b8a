"""cluster/rayjob.yaml, the KubeRay RayJob: its entrypoint is a valid `gan-study run` (checked with the CLI's
own parser) that writes to the volume every pod mounts, resumes when the job is retried, and asks for no more
GPU per trial than a worker has; the cluster goes away when the study ends."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from study.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all((REPO / "cluster" / "rayjob.yaml").read_text()) if d]
    return {d["kind"]: d for d in docs}


@pytest.fixture(scope="module")
def job(manifests) -> dict:
    job = manifests["RayJob"]
    assert job["apiVersion"] == "ray.io/v1"
    return job["spec"]


def run_args(entrypoint: str) -> list[str]:
    match = re.search(r"gan-study run (.*?)(;|$)", entrypoint)
    assert match, entrypoint
    return shlex.split(match.group(1))


def mounts(pod_spec: dict) -> dict[str, str]:
    """mountPath -> PVC claim name for the pod's first container."""
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod_spec.get("volumes", [])
              if "persistentVolumeClaim" in v}
    return {m["mountPath"]: claims[m["name"]] for m in pod_spec["containers"][0].get("volumeMounts", [])
            if m["name"] in claims}


def test_entrypoint_is_a_study_on_the_shared_volume_resumed_on_retry(job, manifests):
    args = build_parser().parse_args(["run", *run_args(job["entrypoint"])])  # exits on an unknown option
    out = Path(args.out)
    assert f"gan-study resume {out}" in job["entrypoint"] and f"{out}/study.json" in job["entrypoint"]
    assert job["backoffLimit"] >= 1  # a retried job, which the resume branch is for

    cluster = job["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"]
                                                              for g in cluster["workerGroupSpecs"]]
    claim = manifests["PersistentVolumeClaim"]
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    for pod in pods:
        on = [path for path, name in mounts(pod).items()
              if name == claim["metadata"]["name"] and out.is_relative_to(path)]
        assert on, f"{out} is not on the shared volume in every pod"
    assert args.max_failures >= 1  # a lost worker pod's trial continues elsewhere


def test_gpu_workers_and_a_head_without_trials(job):
    import ray

    cluster = job["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # trials need CPU, so none is placed beside the driver
    assert "nvidia.com/gpu" not in head["template"]["spec"]["containers"][0]["resources"].get("limits", {})

    args = build_parser().parse_args(["run", *run_args(job["entrypoint"])])
    gpu_groups = [g for g in cluster["workerGroupSpecs"]
                  if float(g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", 0)) > 0]
    assert gpu_groups, "a worker group with a GPU"
    for group in gpu_groups:
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert 0 < args.gpus_per_trial <= float(limits["nvidia.com/gpu"])
        assert args.cpus_per_trial <= float(limits["cpu"])
        assert group["maxReplicas"] >= 1 and group["minReplicas"] == 0
    assert cluster["enableInTreeAutoscaling"] is True


def test_the_cluster_goes_when_the_study_ends(job):
    assert job["shutdownAfterJobFinishes"] is True
    assert job["ttlSecondsAfterFinished"] >= 0


def test_every_image_is_the_one_cluster_dockerfile_builds(job):
    cluster = job["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"]
                                                              for g in cluster["workerGroupSpecs"]]
    images = {c["image"] for pod in pods for c in pod["containers"]}
    assert len(images) == 1  # one Ray version and one gan-study everywhere
    dockerfile = (REPO / "cluster" / "Dockerfile").read_text()
    import ray

    assert f"FROM rayproject/ray:{ray.__version__}-" in dockerfile
