"""`gan-study rescore` on an exported study (issue 23): kept generators re-scored with the domain extractor at
other seeds, columns written beside the old, `analyze` reporting the extractors' agreement, held-out FID,
memorisation and the nearest pairs, which the dashboard shows as pictures (checked in headless Chromium)."""
from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from fast_eval import one_epoch_extractors

from study.cli import main
from trainers import metric_keys as K
from trainers.config import TrialConfig
from trainers.data import load_split
from trainers.evaluation import defaults as D
from trainers.evaluation.kept_generators import keep_generators
from trainers.evaluation.outputs import GENERATORS_DIRNAME, PAIRS_DIRNAME, RESCORE_FILE

CONFIGS = [(1, 2e-4), (1, 1e-3), (2, 3e-3)]  # (iterations, learning rate): three configurations


@pytest.fixture(scope="module", autouse=True)
def _one_epoch_extractors():
    with one_epoch_extractors():
        yield


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Four tiny trials trained for real, then exported as results/ holds them: tables, study.json and the kept
    generators (float16), no trial directory."""
    from trainers.loop import train

    root = tmp_path_factory.mktemp("rescore")
    arrays = {}
    for split, n in (("train", 200), ("val", 40), ("test", 120)):
        ds = load_split("phantom", split, 32, cache_dir=root / "c")
        arrays[f"{split}_images"] = np.asarray(ds.images[:n])
        arrays[f"{split}_labels"] = ds.labels[:n, None].astype(np.uint8)
    np.savez(root / "phantom.npz", **arrays)
    study = root / "run"
    rows = []
    for i, (iterations, lr) in enumerate(CONFIGS):
        cfg = TrialConfig.from_dict(dict(
            data=str(root / "phantom.npz"), resolution=32, g_features=16, d_features=16, latent_dim=16, batch_size=32,
            iterations=iterations, report_every=iterations, fid_every=0, eval_at_end=True, eval_samples=48,
            allow_low_n=True, sample_grid=4, downstream="", lr_g=lr, lr_d=lr, seed=0))
        summary = train(cfg, study / "trials" / f"t{i}")
        rows.append({"trial_id": f"t{i}", "trial_dir": f"trials/t{i}", "study": "run", **summary,
                     **{f"config/{k}": v for k, v in cfg.to_dict().items()}})
    trials = pd.DataFrame(rows).drop(columns=[K.SAMPLE_PATH])
    trials.to_parquet(study / "trials.parquet")
    trials.to_parquet(study / "history.parquet")
    (study / "study.json").write_text(json.dumps({"space": "tiny"}))
    dest = root / "exported"
    dest.mkdir()
    for name in ("trials.parquet", "history.parquet", "study.json"):
        shutil.copyfile(study / name, dest / name)
    written = keep_generators(study, dest)
    assert sorted(p.name for p in written) == ["t0.pt", "t1.pt", "t2.pt"]
    return dest, trials, study


def test_rescore_writes_every_extractor_seed_beside_the_recorded_columns(exported, capsys):
    dest, recorded, _ = exported
    assert not (dest / "trials").exists() and (dest / GENERATORS_DIRNAME / "t0.pt").is_file()
    assert main(["rescore", str(dest), "--extractor", "domain", "--extractor-seed", "0,1"]) == 0
    printed = capsys.readouterr().out
    assert "FID domain-seed1" in printed and "rescore.parquet" in printed
    assert "note: domain: re-scores the recorded FIDs of 3 trial(s) within" in printed  # same weights (hash)
    trials = pd.read_parquet(dest / "trials.parquet")
    assert len(trials) == 3 and set(recorded.columns) <= set(trials.columns)  # the old columns stay
    for tag in ("domain", "domain-seed1"):
        for key in (K.FID, K.FID_TEST, K.FID_TRAIN_AT_TEST_N, K.DENSITY, K.COVERAGE, K.MEMORISATION_SHARE_P1,
                    K.EVAL_EXTRACTOR_SHA256):
            assert trials[f"{key}{K.RESCORE_SEP}{tag}"].notna().all(), (key, tag)
    shas = {trials[f"{K.EVAL_EXTRACTOR_SHA256}@{t}"].iloc[0] for t in ("domain", "domain-seed1")}
    assert len(shas) == 2 and trials["eval_extractor_sha256@domain"].iloc[0] == trials[K.EVAL_EXTRACTOR_SHA256].iloc[0]
    # Seed 0 is the trials' own extractor: the kept float16 generators re-score their recorded FIDs closely.
    assert (trials["eval_extractor@domain"] == trials[K.EVAL_EXTRACTOR]).all()
    np.testing.assert_allclose(trials["fid@domain"], trials[K.FID], rtol=2e-2)
    np.testing.assert_allclose(trials["eval_test_n@domain"], 48)
    assert trials[K.MEMORISATION_PIXEL_FLAGGED].notna().all() and (trials[K.MEMORISATION_PIXEL_FLAGGED] == 0).all()
    assert sorted(p.name for p in (dest / PAIRS_DIRNAME).iterdir()) == ["t0.npz", "t1.npz", "t2.npz"]
    # Re-running one seed replaces its columns; nothing is duplicated and the other seeds stay.
    before = pd.read_parquet(dest / RESCORE_FILE)
    assert main(["rescore", str(dest), "--extractor", "domain", "--extractor-seed", "1", "--no-pixels"]) == 0
    after = pd.read_parquet(dest / RESCORE_FILE)
    assert set(after.columns) == set(before.columns)
    assert len(after) == 3 and not any(c.endswith(("_x", "_y")) for c in after.columns)
    np.testing.assert_allclose(after.sort_values("trial_id")["fid@domain-seed1"],
                               before.sort_values("trial_id")["fid@domain-seed1"], rtol=1e-9)


def test_analyze_reports_agreement_held_out_fid_and_memorisation_and_shows_the_pairs(exported, tmp_path):
    dest, _, _ = exported
    if not (dest / RESCORE_FILE).is_file():
        assert main(["rescore", str(dest), "--extractor", "domain", "--extractor-seed", "0,1"]) == 0
    # A journal-driven results store may rebuild trials.parquet without the new columns: rescore.parquet keeps them.
    trials = pd.read_parquet(dest / "trials.parquet")
    trials[[c for c in trials.columns if K.RESCORE_SEP not in c]].to_parquet(dest / "trials.parquet")
    out = tmp_path / "report"
    assert main(["analyze", str(dest), "-o", str(out), "--resamples", "200", "--permutations", "200",
                 "--no-yardstick"]) == 0
    report = (out / "report.md").read_text()
    section = report.split("## 1d.")[1].split("\n## ")[0]
    for pair in ("vs domain-seed1 (all)", "vs domain (all)", "domain vs domain-seed1 (all)"):
        assert pair in section, pair
    assert re.search(r"Spearman rho = [+-]\d\.\d{3}, 95% CI (\[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]|n/a), p_perm = ", section)
    assert "3 configurations" in section and "test split" in section and "| density |" in section
    memorisation = report.split("## 1e.")[1].split("\n## ")[0]
    assert "0 of 3 trials flagged in the extractor's feature space" in memorisation
    assert "pixel share < p1" in memorisation
    page = (out / "dashboard.html").read_text()
    pairs = page.split('<section id="nearest-pairs">')[1].split("</section>")[0]
    assert pairs.count('<img alt="') == 3 and pairs.count("data:image/png;base64,") == 3
    assert "top row synthetic, bottom row the nearest training image" in pairs
    assert 'id="extractors"' in page  # the agreement figure, re-scored studies only


def test_analyze_draws_the_pairs_of_a_study_that_was_not_rescored_from_its_checkpoints(exported, tmp_path):
    """A run's own evaluations measured the feature-space shares; analyze finds the best trials' checkpoints and
    computes their nearest pairs (pixels only) once, into the study dir, unless told to compute nothing."""
    _, _, run = exported
    quick = ["--resamples", "100", "--permutations", "100"]
    assert main(["analyze", str(run), "-o", str(tmp_path / "none"), *quick, "--no-yardstick"]) == 0
    assert not (run / PAIRS_DIRNAME).exists()  # --no-yardstick: nothing computed, the notes say why
    assert "no nearest synthetic/training pairs" in (tmp_path / "none" / "report.md").read_text()
    assert main(["analyze", str(run), "-o", str(tmp_path / "out"), *quick]) == 0
    assert sorted(p.name for p in (run / PAIRS_DIRNAME).iterdir()) == ["t0.npz", "t1.npz", "t2.npz"]
    page = (tmp_path / "out" / "dashboard.html").read_text().split('<section id="nearest-pairs">')[1]
    assert page.split("</section>")[0].count("data:image/png;base64,") == 3


def test_committed_studies_report_nothing_new(tmp_path):
    """No committed study has the new columns: analyze's report keeps exactly its sections (findings unchanged)."""
    from analysis.pipeline import analyze
    from analysis.report import render_report

    a = analyze([D.__file__.replace("trainers/evaluation/defaults.py", "results/dcgan_training_cpu")],
                n_resamples=100, n_permutations=100, yardstick=False, include_reference=False)
    assert a.extractor_agreement.empty and a.memorisation.empty and a.quality.empty and not a.nearest_pairs
    text = render_report(a)
    assert "## 1d." not in text and "## 1e." not in text and "nearest synthetic" not in text


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install -y chromium)")
def test_dashboard_pairs_render_as_images_in_chromium(exported, tmp_path):
    """The pictures decode and draw: Chromium's DOM after layout gives each pair strip its natural size."""
    import subprocess

    dest, _, _ = exported
    if not (dest / RESCORE_FILE).is_file():
        assert main(["rescore", str(dest), "--extractor", "domain", "--extractor-seed", "0,1"]) == 0
    out = tmp_path / "report"
    assert main(["analyze", str(dest), "-o", str(out), "--resamples", "100", "--permutations", "100",
                 "--no-yardstick"]) == 0
    probe = out / "probe.html"
    page = (out / "dashboard.html").read_text()
    script = ("<script>window.addEventListener('load',()=>{const s=[...document.querySelectorAll("
              "'#nearest-pairs img')].map(i=>i.complete+':'+i.naturalWidth+'x'+i.naturalHeight);"
              "document.body.setAttribute('data-pairs',s.join(','));});</script>")
    probe.write_text(page.replace("</body>", script + "</body>"))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-component-update",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    sizes = re.search(r'data-pairs="([^"]*)"', dom).group(1).split(",")
    # 8 pairs of 32 px images drawn at 64 px with 4 px gaps: 8 * 68 - 4 wide, 2 * 64 + 4 high.
    assert sizes == ["true:540x132"] * 3, sizes
