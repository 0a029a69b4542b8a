"""The yardstick (issue 16, section 6): FID between real samples (the floor) and its bias with N, relative
FID, the extractor-seed robustness check with its pre-fixed threshold, ICC, and `gan-study yardstick`."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from analysis import yardstick as Y
from trainers import metric_keys as K
from trainers.config import TrialConfig
from trainers.data import load_reference_split, load_split
from trainers.evaluation import defaults as D
from trainers.evaluation.yardstick import FLOOR_REPEATS, HALVES, TRAIN_VS_TEST, Setting, Yardstick, rescore_images

PILOT_EXTRACTOR = "domain-32px-39b5275931-128d"  # what results/belmekki2022_cpu recorded


@pytest.fixture(scope="module", autouse=True)
def _one_epoch_extractors():
    """Extractors train 1 epoch here (not DOMAIN_EPOCHS): the tests check the yardstick, not the extractor."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(D, "DOMAIN_EPOCHS", 1)
        yield


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    cache = tmp_path_factory.mktemp("ys-cache")
    ref = load_split("phantom", "train", 32, limit=400, cache_dir=cache)
    test = load_split("phantom", "test", 32, cache_dir=cache)  # 400 images
    return Yardstick(Setting("phantom", 32, 96), reference=ref, test=test, cache_dir=cache), ref, test, cache


def _noisy(images: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (images + sigma * torch.randn(images.shape, generator=g)).clamp(-1, 1)


def test_phantom_floor_shrinks_with_n_and_sits_far_below_a_different_distribution(phantom):
    ys, ref, _, _ = phantom
    floor = ys.floor()
    halves = {r.n_label: r for r in floor.rows if r.comparison == HALVES}
    assert [halves[k].n for k in ("N/2", "N", "2N")] == [48, 96, 192]
    assert all(r.repeats == FLOOR_REPEATS == 50 and not r.skipped for r in floor.rows)
    # FID's known positive bias: two samples of one distribution score higher the fewer images they hold.
    assert halves["N/2"].fid_mean > halves["N"].fid_mean > halves["2N"].fid_mean > 0
    assert all("below the feature dimension 128" in halves[k].note for k in ("N/2", "N")) and not halves["2N"].note
    tt = floor.at(96, TRAIN_VS_TEST)
    assert tt is not None and tt.fid_mean > 0 and tt.n_label == "N"
    # Images of a clearly different distribution (real phantoms under heavy noise) score far above the floor.
    bad = ys.score(_noisy(ref.to_tensor()[:96], 0.6, 1))
    assert bad["fid"] > 20 * halves["N"].fid_mean and bad["fid"] > 20 * tt.fid_mean
    assert Y.relative_fid(bad["fid"], halves["N"].fid_mean) > 20
    assert Y.relative_fid(halves["N"].fid_mean, halves["N"].fid_mean) == pytest.approx(1.0)
    assert math.isnan(Y.relative_fid(3.0, math.nan)) and np.isnan(Y.relative_fid(np.array([1.0]), 0.0)).all()
    assert floor.extractor_name == ys.extractor(0).name and floor.reference_fingerprint == ref.fingerprint
    from trainers.evaluation.yardstick import Floor

    assert Floor.from_dict(json.loads(json.dumps(floor.to_dict()))) == floor  # the cached/committed form


def test_too_small_splits_are_skipped_with_the_reason_never_shrunk(phantom):
    ys, ref, test, cache = phantom
    big = Yardstick(Setting("phantom", 32, 300), reference=ref, test=test, cache_dir=cache).floor(repeats=3)
    rows = {(r.comparison, r.n_label): r for r in big.rows}
    assert not rows[(HALVES, "N/2")].skipped and rows[(HALVES, "N/2")].n == 150
    for label in ("N", "2N"):
        r = rows[(HALVES, label)]
        assert math.isnan(r.fid_mean) and r.repeats == 0 and "400 images < 2n" in r.skipped
    # A test split smaller than N: measured at its size, said so, with a halves row at that same n beside it.
    small_test = test.select(np.arange(80), "first80")
    f = Yardstick(Setting("phantom", 32, 96), reference=ref, test=small_test, cache_dir=cache).floor(repeats=3)
    tt = f.at(80, TRAIN_VS_TEST)
    assert tt is not None and tt.n_label == "test size" and "holds 80 < N = 96" in tt.note
    assert f.at(80, HALVES) is not None and f.at(96, TRAIN_VS_TEST) is None


def test_the_default_seed_is_the_trials_extractor_and_other_seeds_are_new_ones(phantom):
    from trainers.evaluation import Evaluator

    ys, ref, _, cache = phantom
    cfg = TrialConfig.from_dict({"data": "phantom", "resolution": 32, "eval_samples": 96, "allow_low_n": True})
    ev = Evaluator(cfg, ref, cache_dir=cache)
    assert ev.extractor.name == ys.extractor(0).name  # same cache entry and key as every trial's
    probe = ref.to_tensor()[:16]
    np.testing.assert_array_equal(ev.extractor(probe), ys.extractor(0)(probe))
    assert ys.extractor(1).name != ys.extractor(0).name
    # Seed 0 re-scores what the evaluator measures for the same images.
    images = _noisy(ref.to_tensor()[:96], 0.3, 2)
    real, _ = ev.real_features()
    from trainers.evaluation.fid import fid_from_features

    assert ys.score(images)["fid"] == pytest.approx(fid_from_features(real, ev.extractor(images)), rel=1e-4)


def test_extractor_seeds_agree_on_configurations_that_degrade_real_images(phantom):
    ys, ref, _, _ = phantom
    base = ref.to_tensor()[200:296]
    images = {f"sigma={s}": _noisy(base, s, i) for i, s in enumerate((0.1, 0.3, 0.6, 1.0))}
    scores = rescore_images(ys, images, (0, 1, 2))
    rob = Y.robustness(scores, {k: k for k in images})
    assert rob.passed is True and rob.min_spearman == pytest.approx(1.0) and set(rob.spearman) == {"0-1", "0-2", "1-2"}
    assert rob.verdict.startswith("PASS") and "threshold fixed before computing" in rob.verdict
    assert rob.icc_kind == "ICC(2,1)" and math.isfinite(rob.icc) and rob.icc_log > 0.5
    worst = np.asarray(rob.fid)[rob.configurations.index("sigma=1.0")]
    best = np.asarray(rob.fid)[rob.configurations.index("sigma=0.1")]
    assert (worst > best).all()
    assert len(rob.fid_test) == 4 and rob.spearman_test_vs_train == pytest.approx(1.0)


def _scores(table: dict[str, list[float]]) -> dict:
    return {c: {s: {"fid": v, "fid_test": v, "fid_train_at_test_n": v} for s, v in enumerate(vals)}
            for c, vals in table.items()}


def test_robustness_fails_when_extractor_seeds_disagree_and_says_so():
    reversed_ = _scores({"a": [1, 5], "b": [2, 4], "c": [3, 3], "d": [4, 2], "e": [5, 1]})
    rob = Y.robustness(reversed_, {c: c for c in "abcde"})
    assert rob.passed is False and rob.min_spearman == pytest.approx(-1.0) and rob.verdict.startswith("FAIL")
    one_swap = _scores({"a": [1, 1], "b": [2, 3], "c": [3, 2], "d": [4, 4], "e": [5, 5]})
    rob = Y.robustness(one_swap, {c: c for c in "abcde"})
    assert rob.min_spearman == pytest.approx(0.9) and rob.passed is True  # the threshold is inclusive
    two_swaps = _scores({"a": [1, 2], "b": [2, 1], "c": [3, 3], "d": [4, 5], "e": [5, 4]})
    assert Y.robustness(two_swaps, {c: c for c in "abcde"}).passed is False  # rho = 0.8 < 0.9
    flat = Y.robustness(_scores({"a": [1, 2], "b": [2, 2], "c": [3, 2]}), {c: c for c in "abc"})
    assert flat.passed is None and "same FID" in flat.verdict
    few = Y.robustness(_scores({"a": [1, 2], "b": [2, 1]}), {"a": "a", "b": "b"})
    assert few.passed is None and "needs >= 3" in few.verdict
    # Trials of one configuration are averaged before ranking (the configuration level).
    seeds = _scores({"t1": [1, 9], "t2": [3, -5], "t3": [5, 5], "t4": [7, 7]})
    rob = Y.robustness(seeds, {"t1": "x", "t2": "x", "t3": "y", "t4": "z"})
    assert rob.configurations == ["x", "y", "z"] and rob.fid[0] == [2.0, 2.0] and rob.trials == 4


def test_icc_matches_shrout_and_fleiss_1979():
    # Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; ICC(1,1) = .17, ICC(2,1) = .29.
    x = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)
    assert Y.icc_1(x) == pytest.approx(0.166, abs=0.002)
    assert Y.icc_2_1(x) == pytest.approx(0.290, abs=0.002)
    same = np.repeat(np.arange(5.0)[:, None], 3, axis=1)
    assert Y.icc_2_1(same) == pytest.approx(1.0)
    # Absolute agreement: a rater shifted by a constant lowers ICC(2,1) although the ranking is identical.
    assert Y.icc_2_1(same + np.array([0.0, 0.0, 3.0])) < 0.8


def _npz_from_phantom(path, n_train=200, n_test=60):
    arrays = {}
    for split, n in (("train", n_train), ("val", 40), ("test", n_test)):
        ds = load_split("phantom", split, 32, cache_dir=path.parent / "c")
        arrays[f"{split}_images"] = np.asarray(ds.images[:n])
        arrays[f"{split}_labels"] = ds.labels[:n, None].astype(np.uint8)
    np.savez(path, **arrays)
    return path


def test_cli_end_to_end_on_a_tiny_phantom_study(tmp_path, monkeypatch, capsys):
    """A fabricated study of 3 tiny trials (real checkpoints), then `gan-study yardstick --study`."""
    from study.cli import main
    from trainers.loop import train

    monkeypatch.setenv("GAN_STUDY_CACHE", str(tmp_path / "cache"))
    data = _npz_from_phantom(tmp_path / "phantom.npz")
    study = tmp_path / "study"
    rows = []
    for i, (iterations, lr) in enumerate([(1, 2e-4), (1, 1e-3), (2, 1e-3)]):
        cfg = TrialConfig.from_dict(dict(
            data=str(data), resolution=32, g_features=16, d_features=16, latent_dim=16, batch_size=32,
            iterations=iterations, report_every=iterations, fid_every=0, eval_at_end=True, eval_samples=48,
            allow_low_n=True, sample_grid=4, downstream="", lr_g=lr, lr_d=lr, seed=0))
        tid = f"t{i}"
        summary = train(cfg, study / "trials" / tid)
        rows.append({"trial_id": tid, "trial_dir": f"trials/{tid}", K.STATUS: summary[K.STATUS], K.FID: summary[K.FID],
                     K.EVAL_EXTRACTOR: summary[K.EVAL_EXTRACTOR], K.EVAL_N: summary[K.EVAL_N],
                     **{f"config/{k}": v for k, v in cfg.to_dict().items()}})
    pd.DataFrame(rows).to_parquet(study / "trials.parquet")
    out = study / "yardstick.json"
    assert main(["yardstick", "--study", str(study), "--seeds", "0,1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for text in ("floor: train halves", "floor: train vs test", "Spearman, extractor seeds 0-1", "ICC(2,1)", "verdict"):
        assert text in printed, text
    doc = json.loads(out.read_text())
    entry = doc["settings"][0]
    assert doc["spearman_pass"] == Y.SPEARMAN_PASS == 0.9 and entry["study_extractor"] == rows[0][K.EVAL_EXTRACTOR]
    assert [r["n"] for r in entry["floor"]["rows"][:3]] == [24, 48, 96]
    rob = entry["robustness"]
    assert rob["trials"] == 3 and len(rob["configurations"]) == 3 and set(rob["spearman"]) == {"0-1"}
    assert rob["passed"] == (rob["min_spearman"] >= 0.9) and rob["verdict"].startswith(("PASS", "FAIL"))
    assert rob["rescore_max_rel_diff"] < 1e-3  # seed 0 re-scores each trial's own FID from its final generator
    robust = Y.study_robustness([study])[rows[0][K.EVAL_EXTRACTOR]]
    assert robust.passed == rob["passed"] and robust.spearman == rob["spearman"]
    # export_results keeps yardstick.json beside the tables (the checkpoints stay behind).
    from study.export_results import export_results

    pd.DataFrame(rows).to_parquet(study / "history.parquet")
    (study / "study.json").write_text("{}")
    exported = export_results(study, tmp_path / "exported", root=tmp_path)
    assert (exported / "yardstick.json").is_file() and not (exported / "trials").exists()
    # The report section for the lead's analyze/findings, from the same results.
    trials = pd.read_parquet(study / "trials.parquet")
    floors = Y.yardstick_for_trials(trials, compute=False)
    assert floors[0][0] is not None  # cached by the command: analyze trains nothing again
    text = Y.render_yardstick_markdown(floors, trials, robustness={})
    assert "| train halves | 48 (N) |" in text and "relative FID" in text and "not computed" in text
    text = Y.render_yardstick_markdown(floors, trials, robustness=Y.study_robustness([study]))
    assert "Extractor-seed robustness (3 configurations, 3 trials, extractor seeds 0, 1)" in text
    # User errors are one line.
    assert main(["yardstick", "--study", str(tmp_path / "nope")]) == 2
    assert main(["yardstick", "--study", str(study), "--n", "99"]) == 2
    assert main(["yardstick", "--data", "phantom", "--n", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("gan-study yardstick: error: ") for line in err)


def test_pneumoniamnist_floor(pneumoniamnist_npz, tmp_path, monkeypatch):
    """Real X-rays: a 600-image reference (two halves of 2N = 288 fit), the 624-image test split."""
    monkeypatch.setattr(D, "DOMAIN_EPOCHS", 2)
    ref_all = load_reference_split(str(pneumoniamnist_npz), 32, cache_dir=tmp_path)
    ref = ref_all.select(np.sort(np.random.default_rng(0).permutation(len(ref_all))[:600]), "600")
    test = load_split(str(pneumoniamnist_npz), "test", 32, cache_dir=tmp_path)
    ys = Yardstick(Setting(str(pneumoniamnist_npz), 32, 144), reference=ref, test=test, cache_dir=tmp_path)
    floor = ys.floor()
    h = {r.n_label: r.fid_mean for r in floor.rows if r.comparison == HALVES}
    assert h["N/2"] > h["N"] > h["2N"] > 0
    tt = floor.at(144, TRAIN_VS_TEST)
    assert tt is not None and 0 < tt.fid_mean < 10 * h["N"]
    bad = ys.score(_noisy(ref.to_tensor()[:144], 0.5, 3))["fid"]
    assert Y.relative_fid(bad, h["N"]) > 20


def test_the_committed_pilot_yardstick_is_found_for_the_pilot_without_computing():
    trials = pd.read_parquet(Y.RESULTS / "belmekki2022_cpu" / "trials.parquet")
    floors = Y.yardstick_for_trials(trials, compute=False, cached=False)
    assert len(floors) == 1 and floors[0][1] == PILOT_EXTRACTOR and floors[0][0] is not None
    floor = floors[0][0]
    measured = {(r.comparison, r.n): r.fid_mean for r in floor.rows if not r.skipped}
    assert set(measured) >= {(HALVES, 512), (HALVES, 1024), (HALVES, 2048), (TRAIN_VS_TEST, 624), (HALVES, 624)}
    assert measured[(HALVES, 512)] > measured[(HALVES, 1024)] > measured[(HALVES, 2048)] > 0
    assert floor.reference_size == 4708 and floor.test_size == 624
    text = Y.render_yardstick_markdown(floors, trials)
    assert f"recorded by the study as `{PILOT_EXTRACTOR}`" in text
    # Elsewhere (data absent, nothing committed): no floor, the reason in one line, no crash.
    moved = trials.assign(**{"config/data": "/nowhere/pneumoniamnist.npz", K.EVAL_EXTRACTOR: "domain-32px-x-128d"})
    entry = Y.yardstick_for_trials(moved, results=None, cached=False)[0]
    assert entry.floor is None and "/nowhere/pneumoniamnist.npz" in entry.reason
    assert "no yardstick for this setting (data file /nowhere" in Y.render_yardstick_markdown([entry])
    assert text.count("optimizer=ada") == 16  # relative FID of every configuration
