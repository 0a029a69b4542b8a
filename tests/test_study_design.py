"""Configuration x seeds is the unit of a study: a design's configurations are drawn once (space-filling
within cells) and run with every seed, recorded in study.json before the first trial; a plan's `excludes`
refuses a study that would repeat an earlier study's (configuration, seed) pairs; a designed study
resumes from its results store alone (no Ray state: a committed study on a new machine)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from search_spaces.design import DESIGN_ID
from search_spaces.space import parse_space
from study.layout import STUDY_FILE, TRIALS_FILE
from study.spec import new_spec, read_spec
from trainers.errors import ConfigError, UserError

REPO = Path(__file__).resolve().parents[1]

DESIGNED = """
fixed: {name: designed, data: phantom, data_limit: 64, resolution: 32, g_features: 16, d_features: 16,
        latent_dim: 16, iterations: 6, report_every: 3, sample_grid: 4, eval_at_end: true, eval_samples: 32,
        allow_low_n: true, num_threads: 1, fid_every: 0}
scientific:
  optimizer: {grid: [adam, adas]}
  ttur: {grid: ["off", "on"]}
seeds: [5, 6]
factors:
  ttur: {"off": {}, "on": {}}
design:
  cells: [optimizer, ttur]
  per_cell: 4
  seed: 11
  draw:
    lr_g: {loguniform: [1.0e-4, 1.0e-3]}
    beta1: {uniform: [0.3, 0.7]}
    batch_size: {choice: [8, 16]}
  by_level:
    ttur:
      "off": {lr_d: {same_as: lr_g}}
      "on": {lr_d: {loguniform: [1.5, 6.0], times: lr_g}}
analysis:
  outcome: log_fid
  predictor: d_loss_mean
  controls: cells
  cells: [optimizer, ttur]
  direction: negative
  smallest_effect: 0.3
"""


def designed(tmp_path: Path, text: str = DESIGNED, name: str = "designed") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_design_draws_each_configuration_once_and_space_filling() -> None:
    space = parse_space(yaml.safe_load(DESIGNED), name="designed")
    space.validate()
    rows = space.design_rows()
    assert len(rows) == 16 and space.grid_size() == 32
    # Every seed of a configuration gets the same values: the drawn keys come from the design row, not the seed.
    for row in rows:
        a, b = (space.resolve({DESIGN_ID: row[DESIGN_ID], "seed": s}) for s in (5, 6))
        assert (a.lr_g, a.lr_d, a.beta1, a.batch_size) == (b.lr_g, b.lr_d, b.beta1, b.batch_size)
        assert (a.seed, b.seed) == (5, 6)
        assert a.optimizer == row["cell"]["optimizer"]
        if row["cell"]["ttur"] == "off":
            assert a.lr_d == a.lr_g
        else:
            assert 1.5 * a.lr_g * 0.999 <= a.lr_d <= 6.0 * a.lr_g * 1.001
    # Latin hypercube within each cell: each quarter of the log lr range holds exactly one of the 4 draws,
    # and the categorical batch size takes each value equally often.
    for c in range(4):
        cell = rows[4 * c: 4 * c + 4]
        u = sorted((np.log(r["values"]["lr_g"]) - np.log(1e-4)) / (np.log(1e-3) - np.log(1e-4)) for r in cell)
        assert [int(x * 4) for x in u] == [0, 1, 2, 3]
        assert sorted(r["values"]["batch_size"] for r in cell) == [8, 8, 16, 16]
    # Drawn once: the same file gives the same design (a resume re-reads the same configurations).
    again = parse_space(yaml.safe_load(DESIGNED), name="designed")
    assert again.design_rows() == rows


def test_a_range_crossed_with_seeds_is_drawn_once_per_configuration(tmp_path: Path) -> None:
    """Before: Ray sampled lr_g afresh for every (grid point, seed), so the seeds of one 'configuration'
    trained different models. Now a range under grid search is drawn num_samples times per grid cell."""
    text = """
fixed: {name: ranged, data: phantom, data_limit: 64, resolution: 32, iterations: 4, report_every: 2}
scientific: {optimizer: {grid: [adam, adas]}}
nuisance: {lr_g: {loguniform: [1.0e-4, 1.0e-3]}}
seeds: [0, 1, 2]
"""
    spec = new_spec(out=str(tmp_path / "s"), space=str(designed(tmp_path, text, "ranged")), num_samples=3)
    space = spec.load_space()
    assert space.design is not None and spec.trial_samples == 1 and space.grid_size() == 2 * 3 * 3
    record = spec.design["configurations"]
    assert len(record) == 6 and all(r["seeds"] == [0, 1, 2] for r in record)
    by_config: dict = {}
    for point in space.combinations():
        cfg = space.resolve(point)
        by_config.setdefault(point[DESIGN_ID], set()).add(cfg.lr_g)
    assert all(len(v) == 1 for v in by_config.values())  # one lr_g per configuration, whatever the seed
    assert len({next(iter(v)) for v in by_config.values()}) == 6


def test_design_errors_name_the_key(tmp_path: Path) -> None:
    bad = DESIGNED.replace("cells: [optimizer, ttur]\n  per_cell", "cells: [optimizer, ttur, nope]\n  per_cell")
    with pytest.raises(ConfigError, match="design cell 'nope' must be a scientific grid key"):
        parse_space(yaml.safe_load(bad), name="bad").validate()
    bad = DESIGNED.replace("{same_as: lr_g}", "{same_as: lr_x}")
    with pytest.raises(ConfigError, match="refers to 'lr_x'"):
        parse_space(yaml.safe_load(bad), name="bad").validate()
    bad = DESIGNED.replace("method: lhs", "").replace("per_cell: 4", "per_cell: 4\n  method: grid")
    with pytest.raises(ConfigError, match="method='grid' is not allowed; allowed values: lhs, sobol"):
        parse_space(yaml.safe_load(bad), name="bad")
    plan_without_cells = DESIGNED.replace("  cells: [optimizer, ttur]\n  direction", "  direction")
    with pytest.raises(ConfigError, match="controls: cells needs the cells named before the data"):
        new_spec(out=str(tmp_path / "s"), space=str(designed(tmp_path, plan_without_cells, "nocells")))


def test_study_json_records_every_configuration_and_seed(tmp_path: Path) -> None:
    spec = new_spec(out=str(tmp_path / "s"), space=str(designed(tmp_path)))
    spec.study_dir = str(tmp_path / "s")
    Path(spec.study_dir).mkdir()
    spec.save()
    doc = json.loads((tmp_path / "s" / STUDY_FILE).read_text())
    confs = doc["design"]["configurations"]
    assert doc["design"]["trials"] == 32 and len(confs) == 16
    assert confs[5]["config"]["lr_g"] == spec.load_space().design_rows()[5]["values"]["lr_g"]
    assert confs[5]["seeds"] == [5, 6] and "seed" not in confs[5]["config"]
    assert doc["design"]["recorded_at"] == doc["plan"]["recorded_at"]
    assert doc["plan"]["cells"] == ["optimizer", "ttur"] and doc["plan"]["smallest_effect"] == 0.3
    # A plain grid records its configurations too (seeds grouped under each).
    grid = new_spec(out=str(tmp_path / "g"), space="belmekki2022_cpu")
    assert grid.design["trials"] == 48 and len(grid.design["configurations"]) == 16


def test_plan_excludes_refuses_a_repeat_of_the_pilot(tmp_path: Path) -> None:
    """Re-running the pilot's space with the pilot excluded is refused, naming the overlap; the confirmatory
    space is accepted and records what it was compared with."""
    raw = yaml.safe_load((REPO / "search_spaces" / "belmekki2022_cpu.yaml").read_text())
    raw["analysis"]["excludes"] = ["results/belmekki2022_cpu"]
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=r"excludes results/belmekki2022_cpu, but 48 \(configuration, seed\) pairs"):
        new_spec(out=str(tmp_path / "a"), space=str(path), data="pneumoniamnist")
    # New seeds alone are not enough to be refused, but the reuse of every configuration is counted.
    raw["seeds"] = [7, 8, 9]
    path.write_text(yaml.safe_dump(raw))
    spec = new_spec(out=str(tmp_path / "b"), space=str(path), data="pneumoniamnist")
    other_data = new_spec(out=str(tmp_path / "e"), space=str(path), data="phantom")  # other data: nothing reused
    assert other_data.design["excludes"][0]["configurations_reused"] == 0
    assert spec.design["excludes"] == [{"study": "results/belmekki2022_cpu", "trials": 48, "repeated_pairs": 0,
                                        "configurations_reused": 16}]
    confirm = new_spec(out=str(tmp_path / "c"), space="dloss_fid_confirm_cpu", data="pneumoniamnist")
    assert confirm.design["trials"] == 264
    assert confirm.design["excludes"][0]["configurations_reused"] == 0
    missing = yaml.safe_load(DESIGNED)
    missing["analysis"]["excludes"] = ["results/no_such_study"]
    with pytest.raises(UserError, match="plan excludes results/no_such_study, which is not a study directory"):
        new_spec(out=str(tmp_path / "d"), space=str(designed(tmp_path, yaml.safe_dump(missing), "missing")))


@pytest.mark.slow
def test_designed_study_runs_and_resumes_from_its_results_store(tmp_path: Path, local_ray) -> None:
    """Real Ray, real training: the trials carry their design id and cell; after the Ray state and two trials'
    records are deleted (a committed results store on a new machine), resume runs exactly the missing pairs."""
    from study.runner import resume_study, run_study

    text = DESIGNED.replace("per_cell: 4", "per_cell: 1").replace("seeds: [5, 6]", "seeds: [5]")
    out = tmp_path / "study"
    spec = new_spec(out=str(out), space=str(designed(tmp_path, text)), max_concurrent=2)
    assert run_study(spec, progress=False).counts == {"finished": 4}
    trials = pd.read_parquet(out / TRIALS_FILE)
    assert sorted(trials["config/design_id"]) == [0, 1, 2, 3]
    assert set(trials["cell/ttur"]) == {"off", "on"} and set(trials["cell/optimizer"]) == {"adam", "adas"}
    first = trials.set_index("config/design_id")["fid"]

    # A new machine: no Ray experiment, and the journal lost two finished trials (as if never run).
    shutil.rmtree(out / "ray")
    journal = out / "history.jsonl"
    keep_out = set(trials[trials["config/design_id"].isin([1, 3])]["trial_id"])
    lines = [ln for ln in journal.read_text().splitlines() if json.loads(ln).get("trial_id") not in keep_out]
    journal.write_text("\n".join(lines) + "\n")
    outcome = resume_study(read_spec(out), progress=False)
    assert outcome.counts == {"finished": 4} and not outcome.interrupted
    again = pd.read_parquet(out / TRIALS_FILE)
    assert sorted(again["config/design_id"]) == [0, 1, 2, 3]
    # Training is exact: the re-run configurations reproduce their first FIDs.
    np.testing.assert_allclose(again.set_index("config/design_id")["fid"].sort_index(), first.sort_index())
    # Nothing left: a second resume runs nothing.
    assert resume_study(read_spec(out), progress=False).counts == {"finished": 4}
    # The exported (committable) copy carries its journal gzipped and resumes from it on another machine.
    from study.export_results import export_results

    exported = export_results(out, tmp_path / "exported")
    assert (exported / "history.jsonl.gz").is_file() and not (exported / "history.jsonl").exists()
    assert resume_study(read_spec(exported), progress=False).counts == {"finished": 4}
    assert len(pd.read_parquet(exported / TRIALS_FILE)) == 4
