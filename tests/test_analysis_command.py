"""`gan-study analyze` end to end on fabricated study dirs in the RESULTS_SCHEMA layout."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from fixtures_analysis import make_study  # tests/ is on sys.path (rootdir conftest, no package)

from analysis.dashboard import FIGURE_COUNT_META
from study.cli import main

FAST = ["--resamples", "200", "--permutations", "200"]


def _figures(page: str) -> int:
    return int(re.search(rf'<meta name="{FIGURE_COUNT_META}" content="(\d+)"', page).group(1))


def test_analyze_full_study_with_default_resampling(tmp_path, capsys):
    study = make_study(tmp_path / "runs")
    out = tmp_path / "out"
    # The statistics at default resampling (how long that takes: benchmarks/bench_analyze.py); the yardstick's
    # one-off floor is computed elsewhere.
    assert main(["analyze", str(study), "-o", str(out), "--no-yardstick"]) == 0
    assert "analysed 64 trials" in capsys.readouterr().out

    page = (out / "dashboard.html").read_text()
    assert page.count("Plotly.newPlot(") == _figures(page) >= 12  # every figure present
    assert len(re.findall(r"plotly\.js v\d", page)) == 1  # the bundle is embedded exactly once
    assert "<script src=" not in page and 'src="http' not in page  # offline: nothing fetched
    grids = re.findall(r'<img alt="(best|worst)[^"]*" src="data:image/png;base64,', page)
    assert sorted(grids) == ["best"] * 3 + ["worst"] * 3  # sample grids embedded, not linked

    report = (out / "report.md").read_text()
    for needle in ("| finished | 64 |", "| running | 1 |", "| errored | 1 |", "loss=bce", "loss=hinge",
                   "all losses (z-scored within loss)", "Partial correlations", "Table I layout",
                   "| Optimizer | Activation | TTUR |", "Factor effects", "Budget curves", "TRTR baseline",
                   "| NORMAL |", "weighted avg", "Augmentation gain", "seed 001: +3.37",
                   "Pearson r = -0.9016", "Pearson r = +0.0333", "Removing BatchNorm saves 1.2-7.0%"):
        assert needle in report, needle
    csvs = {p.name for p in (out / "csv").glob("*.csv")}
    assert {"correlations.csv", "table1.csv", "factor_effects.csv", "budget.csv", "trials.csv",
            "within_trial.csv", "augment_gain.csv", "bn_saving.csv", "reference_table1.csv"} <= csvs
    corr = pd.read_csv(out / "csv" / "correlations.csv")
    assert {"level", "group", "target", "predictor", "method", "n", "r", "ci_low", "ci_high", "p_perm"} <= set(corr)
    assert len(pd.read_csv(out / "csv" / "trials.csv")) == 68  # every trial, whatever its status


def test_analyze_without_fid_or_downstream_says_so(tmp_path):
    study = make_study(tmp_path, with_fid=False, with_downstream=False, with_memory=False)
    out = tmp_path / "out"
    assert main(["analyze", str(study), "-o", str(out), *FAST, "--no-reference"]) == 0
    report = (out / "report.md").read_text()
    assert "no FID was measured" in report and "no TSTR accuracy" in report and "no memory.parquet" in report
    assert "Seed 002 reference rows" not in report
    page = (out / "dashboard.html").read_text()
    assert "Skipped" in page and page.count("Plotly.newPlot(") == _figures(page) >= 1  # learning curves remain
    assert "first finished trials (no FID measured)" in page


def test_analyze_study_still_running_and_several_dirs(tmp_path):
    running = make_study(tmp_path, "running", seeds=(0,), extra_trials=False, with_memory=False)
    trials = pd.read_parquet(running / "trials.parquet")
    trials["status"] = "running"
    trials.to_parquet(running / "trials.parquet", index=False)
    out = tmp_path / "out"
    assert main(["analyze", str(running), "-o", str(out), *FAST]) == 0
    assert "no trial has status finished" in (out / "report.md").read_text()
    other = make_study(tmp_path, "other", seeds=(1,), with_memory=False)
    assert main(["analyze", str(running), str(other), "-o", str(out), *FAST,
                 "--statuses", "finished,diverged"]) == 0
    report = (out / "report.md").read_text()
    assert "running, other" in report or "other, running" in report
    assert "Analysed trials (status finished, diverged): **33**" in report


def test_analyze_user_errors_exit_2(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "missing"), "-o", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    study = make_study(tmp_path, seeds=(0,), extra_trials=False, with_memory=False)
    assert main(["analyze", str(study), "-o", str(tmp_path / "out"), "--statuses", "done"]) == 2
    assert "allowed" in capsys.readouterr().err


def test_analyze_reads_what_the_real_results_writer_writes(tmp_path):
    pytest.importorskip("study.tables")
    from fixtures_analysis import replay_through_store

    src = make_study(tmp_path, "src", seeds=(0,), with_memory=False)
    live = replay_through_store(src, tmp_path / "live")
    out = tmp_path / "out"
    assert main(["analyze", str(live), "-o", str(out), *FAST, "--no-reference"]) == 0
    report = (out / "report.md").read_text()
    assert "| finished | 32 |" in report and "| errored | 1 |" in report and "| pending | 1 |" in report
    mine = pd.read_csv(out / "csv" / "table1.csv")
    assert main(["analyze", str(src), "-o", str(tmp_path / "ref"), *FAST, "--no-reference"]) == 0
    pd.testing.assert_frame_equal(mine, pd.read_csv(tmp_path / "ref" / "csv" / "table1.csv"))
    assert page_has_samples(out / "dashboard.html")


def page_has_samples(page: Path) -> bool:
    return len(re.findall(r'<img alt="(?:best|worst)[^"]*" src="data:image/png;base64,', page.read_text())) == 6
