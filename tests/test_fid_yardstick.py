"""One FID yardstick per dataset: the extractor and the reference images ignore a trial's seed,
class subset, data limit and validation carve (issue: seeds of one study got different extractors)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from trainers import metric_keys as K
from trainers.config import TrialConfig
from trainers.data import load_reference_split, load_split
from trainers.evaluation import Evaluator
from trainers.loop import train


@pytest.fixture(scope="module")
def carved_tree(tmp_path_factory):
    """A Kaggle-layout tree without val/: train/val are carved by patient, so the seed changes train."""
    root = tmp_path_factory.mktemp("kaggle")
    rng = np.random.default_rng(0)
    for split, patients in (("train", 30), ("test", 6)):
        for cls in ("NORMAL", "PNEUMONIA"):
            d = root / split / cls
            d.mkdir(parents=True)
            for p in range(patients):
                for k in range(2):
                    base = 60 if cls == "NORMAL" else 150
                    img = np.clip(rng.normal(base, 40, (40, 40)), 0, 255).astype(np.uint8)
                    Image.fromarray(img).save(d / f"person{p + 100 * (cls == 'NORMAL')}_{cls.lower()}_{k}.png")
    return root


def _cfg(root, **kw) -> TrialConfig:
    base = dict(data=str(root), resolution=32, g_features=16, d_features=16, latent_dim=16, batch_size=16,
                iterations=4, report_every=4, fid_every=0, eval_at_end=True, eval_samples=64, allow_low_n=True,
                sample_grid=4, downstream="")
    return TrialConfig.from_dict({**base, **kw})


def test_the_carve_really_changes_the_training_split(carved_tree, tmp_path):
    a = load_split(str(carved_tree), "train", 32, seed=0, cache_dir=tmp_path)
    b = load_split(str(carved_tree), "train", 32, seed=1, cache_dir=tmp_path)
    assert a.fingerprint != b.fingerprint  # so an extractor keyed by the trial's split would differ
    whole = load_reference_split(str(carved_tree), 32, cache_dir=tmp_path)
    assert len(whole) == 120 > len(a)  # every training image, uncarved
    normal = load_reference_split(str(carved_tree), 32, class_subset="NORMAL", cache_dir=tmp_path)
    assert set(normal.labels) == {normal.class_names.index("NORMAL")} and len(normal) == 60


def test_seeds_and_class_subsets_share_one_extractor_and_its_features(carved_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_STUDY_CACHE", str(tmp_path / "cache"))
    configs = [_cfg(carved_tree, seed=0), _cfg(carved_tree, seed=1), _cfg(carved_tree, seed=0, class_subset="NORMAL"),
               _cfg(carved_tree, seed=2, data_limit=40)]
    names, features = [], []
    probe = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    for i, cfg in enumerate(configs):
        summary = train(cfg, tmp_path / f"trial{i}")
        names.append(summary[K.EVAL_EXTRACTOR])
        assert np.isfinite(summary[K.FID])
        ev = Evaluator(cfg)
        assert ev.extractor.name == summary[K.EVAL_EXTRACTOR]
        features.append(ev.extractor(probe))
    assert len(set(names)) == 1, names
    for f in features[1:]:
        np.testing.assert_array_equal(f, features[0])


def test_a_class_subset_trial_is_compared_with_that_class_only(carved_tree, tmp_path):
    ev = Evaluator(_cfg(carved_tree, class_subset="NORMAL"), cache_dir=tmp_path)
    _, labels = ev.real_features()
    assert set(labels) == {ev.reference.class_names.index("NORMAL")}
    assert ev.n == 60  # min(eval_samples=64, the 60 NORMAL reference images)
    # ...while its extractor still learned every class.
    assert len(set(ev.reference.labels)) == 2


def test_summary_names_extractor_and_n(carved_tree, tmp_path):
    summary = train(_cfg(carved_tree), tmp_path / "t")
    on_disk = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert on_disk[K.EVAL_EXTRACTOR] == summary[K.EVAL_EXTRACTOR].strip() and on_disk[K.EVAL_N] == 64
    assert summary[K.EVAL_EXTRACTOR].startswith("domain-32px-")
