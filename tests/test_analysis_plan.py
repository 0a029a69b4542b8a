"""Pre-registered analysis plans: validated before launch, recorded with a hash and a UTC time, never
changed on resume, and primary in `analyze` only when the record predates the study's first report."""
from __future__ import annotations

import json

import pytest
import yaml

from analysis.plan import AnalysisPlan, parse_plan, plan_differences, plan_hash, record_plan
from fixtures_analysis import make_study  # tests/ is on sys.path (rootdir conftest, no package)
from study.cli import main
from study.spec import check_resume_plan, new_spec, read_spec
from trainers.errors import ConfigError, UserError

PLAN = {"outcome": "log_fid", "predictor": "d_loss_mean", "controls": ["optimizer"], "direction": "negative"}


def _space_with(tmp_path, analysis: dict | None):
    raw = yaml.safe_load(open("search_spaces/smoke.yaml"))
    raw.pop("analysis", None)
    if analysis is not None:
        raw["analysis"] = analysis
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize("bad, named", [
    ({"outcome": "fid_typo"}, "outcome='fid_typo'"),
    ({"predictor": "loss_d_mean"}, "predictor='loss_d_mean'"),
    ({"controls": ["batch_size"]}, "controls names 'batch_size', which the space does not vary"),
    ({"alpha": 2}, "alpha=2"),
    ({"collapse": {"rule": "fid_ratio", "k": 0.5}}, "k > 1"),
    ({"outcom": "fid"}, "unknown key 'outcom'"),
])
def test_an_invalid_plan_is_refused_before_launch_in_one_line_naming_it(tmp_path, bad, named):
    with pytest.raises(ConfigError) as err:
        new_spec(out=str(tmp_path / "s"), space=_space_with(tmp_path, {**PLAN, **bad}))
    assert named in str(err.value) and "\n" not in str(err.value)


def test_a_plan_is_recorded_with_its_hash_and_utc_time_and_read_back(tmp_path):
    spec = new_spec(out=str(tmp_path / "s"), space=_space_with(tmp_path, PLAN))
    rec = spec.plan
    assert rec["controls"] == ["optimizer"] and rec["sha256"] == plan_hash(parse_plan(rec))
    assert rec["recorded_at"].endswith("Z") and rec["source"].startswith("space ")
    (tmp_path / "s").mkdir()
    spec.save()
    assert read_spec(tmp_path / "s").plan == rec


def test_plan_file_and_space_block_are_one_or_the_other(tmp_path):
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(yaml.safe_dump({"analysis": PLAN}))
    spec = new_spec(out=str(tmp_path / "s"), space=_space_with(tmp_path, None), plan_file=str(plan_file))
    assert spec.plan["source"] == "plan file plan.yaml" and spec.plan["outcome"] == "log_fid"
    with pytest.raises(UserError, match="declare the plan in one place"):
        new_spec(out=str(tmp_path / "s"), space=_space_with(tmp_path, PLAN), plan_file=str(plan_file))


def test_resume_refuses_a_different_plan_naming_the_keys_and_accepts_the_same(tmp_path):
    spec = new_spec(out=str(tmp_path / "s"), space=_space_with(tmp_path, PLAN))
    same, other = tmp_path / "same.yaml", tmp_path / "other.yaml"
    same.write_text(yaml.safe_dump(PLAN))
    other.write_text(yaml.safe_dump({**PLAN, "outcome": "fid", "alpha": 0.01}))
    check_resume_plan(spec, str(same))  # the recorded plan: fine
    with pytest.raises(UserError) as err:
        check_resume_plan(spec, str(other))
    assert "differs" in str(err.value) and "alpha, outcome" in str(err.value)
    spec.plan = {}
    with pytest.raises(UserError, match="post hoc"):
        check_resume_plan(spec, str(same))


def test_the_hash_changes_with_any_key_and_differences_are_named():
    a = parse_plan(PLAN)
    b = parse_plan({**PLAN, "method": "spearman"})
    assert plan_hash(a) != plan_hash(b) and plan_hash(a) == plan_hash(parse_plan(record_plan(a, source="x")))
    assert plan_differences(record_plan(a, source="x"), b) == ["method"]
    assert isinstance(a, AnalysisPlan) and a.sign == -1


def test_analyze_calls_an_edited_record_post_hoc_and_a_plan_given_later_post_hoc(tmp_path, capsys):
    study = make_study(tmp_path, plan={"outcome": "fid", "controls": "none", "direction": "negative"},
                       with_memory=False, seeds=(0,), losses=("bce",))
    spec = json.loads((study / "study.json").read_text())
    spec["plan"]["alpha"] = 0.5  # edited after the fact: the hash no longer matches
    (study / "study.json").write_text(json.dumps(spec))
    out = tmp_path / "report"
    assert main(["analyze", str(study), "-o", str(out), "--resamples", "100", "--permutations", "100",
                 "--no-reference"]) == 0
    assert "no longer matches its hash" in (out / "report.md").read_text()
    plan_file = tmp_path / "later.yaml"
    plan_file.write_text(yaml.safe_dump({"outcome": "log_fid", "controls": "none"}))
    assert main(["analyze", str(study), "-o", str(out), "--resamples", "100", "--permutations", "100",
                 "--no-reference", "--plan", str(plan_file)]) == 0
    report = (out / "report.md").read_text()
    assert report.startswith("# GAN study analysis: fabricated\n\n## The plan's test (post hoc, exploratory)")
    assert "supplied to analyze after the data" in report
