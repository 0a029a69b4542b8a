"""Import structure: each module imports alone in a fresh interpreter, without cycles or heavy baggage."""
from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded_after_import(module: str) -> set[str]:
    """The modules a fresh interpreter holds after `import module` (fails the test if the import fails)."""
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


@pytest.mark.parametrize("module", ["trainers.evaluation.protocols", "trainers.evaluation.sampling"])
def test_protocols_and_sampling_do_not_import_the_evaluator(module):
    assert "trainers.evaluation.evaluator" not in _loaded_after_import(module)


def test_the_evaluator_does_not_import_the_protocols():
    loaded = _loaded_after_import("trainers.evaluation.evaluator")
    assert "trainers.evaluation.protocols" not in loaded and "trainers.evaluation.sampling" in loaded


def test_the_package_still_exports_the_sampler():
    proc = subprocess.run([sys.executable, "-c", "from trainers.evaluation import Evaluator, check_images, sample_images; "
                           "from trainers.evaluation.sampling import sample_images as s; assert s is sample_images"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("module", ["trainers.layout", "study.layout", "trainers.metric_keys", "trainers.config"])
def test_name_homes_stay_light(module):
    """Ray workers, the study driver and the analysis import these for a few names: never torch or Ray."""
    loaded = _loaded_after_import(module)
    assert not {"torch", "ray", "pandas"} & loaded
