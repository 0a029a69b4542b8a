"""cluster/setup-node.sh, the install step of cluster.yaml and cluster.onprem.yaml, run for real on a small
stand-in project: it makes the checkout's virtual environment (no pip install into the system Python, which
Ubuntu 24.04 / Debian 12 refuse, PEP 668), installs the project into it, puts it on PATH once, skips pip when
nothing changed and installs again when pyproject.toml did; and refuses a Python older than the project needs
(Ray's default AWS image has 3.6) before making anything."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "toy-node"
version = "{version}"

[tool.setuptools]
py-modules = ["toy_node"]
"""


@pytest.mark.slow
def test_installs_into_the_checkouts_venv_once_and_again_when_pyproject_changes(tmp_path):
    if shutil.which("python3") is None:
        pytest.skip("no python3 on PATH")
    project, home = tmp_path / "gan-study", tmp_path / "home"
    (project / "cluster").mkdir(parents=True)
    home.mkdir()
    shutil.copy(REPO / "cluster" / "setup-node.sh", project / "cluster")
    (project / "pyproject.toml").write_text(PYPROJECT.format(version="1.0"))
    (project / "toy_node.py").write_text("VALUE = 1\n")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "GAN_STUDY_VENV", "PYTHONPATH")}
    env["HOME"] = str(home)
    venv_python = project / ".venv" / "bin" / "python"

    def setup() -> float:
        start = time.monotonic()
        out = subprocess.run(["bash", str(project / "cluster" / "setup-node.sh")], env=env, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return time.monotonic() - start

    def installed_version() -> str:
        code = "import importlib.metadata as m, toy_node; print(m.version('toy-node'))"
        return subprocess.run([str(venv_python), "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip()

    setup()
    assert installed_version() == "1.0"
    stamp = project / ".venv" / ".gan-study-setup"
    first = stamp.stat().st_mtime_ns
    path_line = f'export PATH="{project}/.venv/bin:$PATH"'
    assert (home / ".bashrc").read_text().splitlines() == [path_line]

    setup()  # nothing changed: no pip
    assert stamp.stat().st_mtime_ns == first
    assert (home / ".bashrc").read_text().splitlines() == [path_line]

    (project / "pyproject.toml").write_text(PYPROJECT.format(version="2.0"))
    setup()
    assert installed_version() == "2.0"
    assert stamp.stat().st_mtime_ns != first


def test_refuses_a_python_older_than_the_project_needs(tmp_path):
    project, home, stubs = tmp_path / "gan-study", tmp_path / "home", tmp_path / "bin"
    for d in (project / "cluster", home, stubs):
        d.mkdir(parents=True)
    shutil.copy(REPO / "cluster" / "setup-node.sh", project / "cluster")
    (project / "pyproject.toml").write_text(PYPROJECT.format(version="1.0"))
    # python3 of an Ubuntu 18.04 image, as far as the script asks it; sudo and apt-get must not be reached.
    (stubs / "python3").write_text('#!/bin/bash\ncase "$*" in *version_info*) echo 3.6 ;; *) exit 1 ;; esac\n')
    for tool in ("sudo", "apt-get"):
        (stubs / tool).write_text(f"#!/bin/bash\necho {tool} >>{tmp_path}/called\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "GAN_STUDY_VENV", "GAN_STUDY_PYTHON")}
    env.update(HOME=str(home), PATH=f"{stubs}:{env['PATH']}")
    out = subprocess.run(["bash", str(project / "cluster" / "setup-node.sh")], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1
    assert "is Python 3.6; gan-study needs 3.10 or newer" in out.stderr, out.stderr
    assert not (project / ".venv").exists() and not (tmp_path / "called").exists()
    assert not (home / ".bashrc").exists()
