"""The Python API (study/api.py): its docstring examples run as written on the phantom at toy size (one Ray
study, shared by every example), the notebook-style example in docs/ runs on that study, and errors are the
CLI's one-liners as exceptions. Also: the README's two commands are what .ci/run runs."""
from __future__ import annotations

import inspect
import os
import re
import runpy
import typing
from pathlib import Path

import pytest

from search_spaces.space import SCHEDULERS, SEARCHES
from study import api
from study.cli import main as cli_main
from study.spec import new_spec
from trainers.errors import UserError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "api_example.py"


# ---------------------------------------------------------------------- no Ray
def test_the_package_exports_the_api_and_the_runner_keeps_its_own_run_study():
    from study import Study, load_study, resume_study, run_study
    from study.runner import run_study as run_spec

    assert (run_study, resume_study, load_study, Study) == (api.run_study, api.resume_study, api.load_study, api.Study)
    assert run_spec.__module__ == "study.runner"


def test_options_are_keyword_only_and_typed_like_the_cli():
    for fn, positional in ((api.run_study, ["space"]), (api.resume_study, ["dir"]), (api.load_study, ["dir"])):
        params = inspect.signature(fn).parameters.values()
        assert [p.name for p in params if p.kind != p.KEYWORD_ONLY] == positional, fn.__name__
        assert all(p.annotation is not inspect.Parameter.empty for p in params), fn.__name__
    assert typing.get_args(api.Search) == SEARCHES and typing.get_args(api.Scheduler) == SCHEDULERS


def test_errors_are_the_cli_messages(tmp_path, capsys):
    spec = new_spec(out=str(tmp_path / "s"), space="smoke")
    Path(spec.study_dir).mkdir()
    spec.save()
    assert cli_main(["run", "--space", "smoke", "--out", str(tmp_path / "s")]) == 2
    cli_line = capsys.readouterr().err.strip()
    with pytest.raises(UserError) as info:
        api.run_study("smoke", out=tmp_path / "s")
    assert cli_line == f"gan-study run: error: {info.value}"
    with pytest.raises(UserError, match=r"--search 'bayes' is not allowed; allowed: grid, random, optuna"):
        api.run_study("smoke", out=tmp_path / "t", search="bayes")  # type: ignore[arg-type]
    assert not (tmp_path / "t").exists()  # refused before anything is written
    with pytest.raises(UserError, match=r"is not a study directory \(no study.json\)"):
        api.load_study(tmp_path / "nothing")
    assert cli_main(["status", str(tmp_path / "nothing")]) == 2
    assert "is not a study directory (no study.json)" in capsys.readouterr().err


def test_keyboard_interrupt_stops_the_ray_the_call_started_and_propagates(tmp_path, monkeypatch):
    """A second Ctrl-C skips Ray Tune's clean-up: the API stops its own Ray (no trial left running in a
    notebook) and re-raises; a Ray the caller started is left alone."""
    import ray

    from study import runner

    state = {"up": False, "shutdowns": 0}

    def fake_run(spec, **kwargs):
        state["up"] = True  # as ensure_ray would
        raise KeyboardInterrupt

    monkeypatch.setattr(ray, "is_initialized", lambda: state["up"])
    monkeypatch.setattr(ray, "shutdown", lambda: state.update(up=False, shutdowns=state["shutdowns"] + 1))
    monkeypatch.setattr(runner, "run_study", fake_run)
    with pytest.raises(KeyboardInterrupt):
        api.run_study("smoke", out=tmp_path / "a")
    assert state == {"up": False, "shutdowns": 1}
    state["up"] = True  # the caller's own Ray
    with pytest.raises(KeyboardInterrupt):
        api.run_study("smoke", out=tmp_path / "b")
    assert state == {"up": True, "shutdowns": 1}


def test_the_readme_commands_are_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2, commands
    setup, tests = commands
    assert setup.startswith("python3 -m venv .venv && ") and "gan-study run --space smoke" in setup
    assert tests.startswith(".venv/bin/python -m pytest")
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert setup in ci and tests in ci
    assert ci.index(setup) < ci.index(tests)


# ---------------------------------------------------------------------- one toy study through Ray
# `api_examples` (tests/conftest.py) runs every docstring example once per session; its study is also the
# reference smoke study of tests/test_study_ray.py.
@pytest.fixture
def doctested(api_examples):
    return api_examples


@pytest.mark.slow
def test_docstring_examples_run(doctested):
    (failed, attempted), report, _ = doctested
    assert attempted >= 20 and failed == 0, report


@pytest.mark.slow
def test_the_notebook_example_runs_on_the_study(doctested, monkeypatch):
    _, _, work = doctested
    monkeypatch.chdir(work)
    runpy.run_path(str(EXAMPLE), run_name="__main__")  # loads runs/smoke (made above): no second study
    assert (work / "runs" / "smoke" / "fid_vs_d_loss_mean.html").is_file()
