"""`gan-study trial` on a directory holding another config's run: it stops with one line naming the
differing keys (old -> new) and leaves the run as it was; `--fresh` starts over; config.json always
describes the checkpoint beside it."""
from __future__ import annotations

import json

import pandas as pd

from study.cli import main
from trainers.checkpoint import config_changes, load_checkpoint

TINY = ["--preset", "smoke", "--set", "iterations=10", "--set", "report_every=10", "--set", "num_threads=1",
        "--set", "latent_dim=8"]


def _trial(out, *extra: str) -> int:
    return main(["trial", *TINY, "--out", str(out), *extra])


def _saved(out) -> tuple[dict, dict]:
    """(config.json, the checkpoint's config)."""
    ck = load_checkpoint(out / "checkpoint" / "checkpoint.pt")
    return json.loads((out / "config.json").read_text()), ck["config"]


def test_another_config_is_refused_in_one_line_naming_the_keys(tmp_path, capsys):
    out = tmp_path / "trial"
    assert _trial(out) == 0
    ckpt = out / "checkpoint" / "checkpoint.pt"
    before = ckpt.read_bytes(), (out / "config.json").read_text()
    capsys.readouterr()

    assert _trial(out, "--set", "lr_g=0.001", "--set", "batch_size=8") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "batch_size: 16 -> 8" in err and "lr_g: 0.0002 -> 0.001" in err and "--fresh" in err
    assert (ckpt.read_bytes(), (out / "config.json").read_text()) == before  # nothing touched
    # How a run executes may change on resume: more threads is the same run.
    assert _trial(out, "--set", "num_threads=2") == 0
    config_json, ck_config = _saved(out)
    assert not config_changes(ck_config, config_json) and config_json["lr_g"] == 2e-4


def test_fresh_deletes_the_old_run_and_starts_over(tmp_path):
    out = tmp_path / "trial"
    assert _trial(out, "--set", "iterations=20") == 0
    (out / "samples" / "step_9999999.png").write_bytes(b"stale")  # something only the old run wrote
    (out / "notes.txt").write_text("mine")  # not written by a run: kept
    assert _trial(out, "--set", "lr_g=0.001", "--fresh") == 0
    config_json, ck_config = _saved(out)
    assert config_json["lr_g"] == ck_config["lr_g"] == 0.001 and config_json == ck_config
    assert list(pd.read_parquet(out / "metrics.parquet")["iteration"]) == [10]  # only the new run's reports
    assert not (out / "samples" / "step_9999999.png").exists() and (out / "notes.txt").read_text() == "mine"


def test_config_changes_ignores_only_how_a_run_executes():
    old = {"lr_g": 2e-4, "device": "cpu", "num_threads": 1}
    assert config_changes(old, {"lr_g": 2e-4, "device": "cuda", "num_threads": 8}) == {}
    assert config_changes(old, {"lr_g": 1e-3, "device": "cpu", "num_threads": 1, "amp": True}) == {
        "amp": ("<unset>", True), "lr_g": (2e-4, 1e-3)}
