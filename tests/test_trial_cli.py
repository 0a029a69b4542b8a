"""`gan-study trial` end to end on the embedded phantom data, and its one-line user errors."""
from __future__ import annotations

import json

import pandas as pd

from study.cli import main
from trainers import metric_keys as K


def test_trial_command_trains_and_writes_results(tmp_path, capsys):
    out = tmp_path / "trial"
    rc = main(["trial", "--preset", "smoke", "--data", "phantom", "--out", str(out),
               "--set", "iterations=20", "--set", "report_every=10", "--set", "eval_at_end=false"])
    assert rc == 0
    table = pd.read_parquet(out / "metrics.parquet")
    assert list(table[K.ITERATION]) == [10, 20]
    assert table[K.STATUS].iloc[-1] == K.STATUS_FINISHED
    assert json.loads((out / "config.json").read_text())["iterations"] == 20
    assert (out / "checkpoint" / "checkpoint.pt").is_file()
    assert "finished" in capsys.readouterr().out
    # Running it again resumes: the finished run is not retrained.
    assert main(["trial", "--preset", "smoke", "--out", str(out), "--set", "iterations=20",
                 "--set", "report_every=10", "--set", "eval_at_end=false"]) == 0
    assert len(pd.read_parquet(out / "metrics.parquet")) == 2


def test_user_errors_are_one_line_without_traceback(tmp_path, capsys):
    assert main(["trial", "--preset", "smoke", "--out", str(tmp_path), "--set", "kernel_size=7"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "kernel_size=7" in err and "allowed values: 4, 5" in err
    assert main(["trial", "--preset", "no_such_preset", "--out", str(tmp_path)]) == 2
    assert "no_such_preset" in capsys.readouterr().err
    assert main(["trial", "--preset", "smoke", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert "nowhere" in capsys.readouterr().err
