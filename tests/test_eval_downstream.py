"""Downstream classifiers: TRTR on real PneumoniaMNIST, TSTR and augmentation from a real-data trial."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from trainers import metric_keys as K
from trainers.config import CLASSIFIERS, TrialConfig
from trainers.errors import ConfigError
from trainers.evaluation import protocols
from trainers.evaluation.classifier_models import build_classifier, format_classification_report, report_from_probs
from trainers.loop import METRICS_FILE, train

# One set of classifier settings for the real-data tests, so the end-to-end trial hits the TRTR cache
# filled by the baseline test (same data, resolution, classifier, epochs, patience, seed).
CLASSIFIER = dict(resolution=32, classifier="small_cnn", classifier_epochs=5, classifier_patience=2, seed=0)


def real_cfg(npz, **overrides) -> TrialConfig:
    base = dict(name="downstream", data=str(npz), g_features=16, d_features=16, latent_dim=32, batch_size=32,
                iterations=40, report_every=20, eval_at_end=False, sample_grid=16, **CLASSIFIER)
    base.update(overrides)
    return TrialConfig.from_dict(base)


def test_trtr_small_cnn_on_real_pneumoniamnist_reaches_80_percent_and_is_cached(pneumoniamnist_npz, monkeypatch):
    from trainers.data import default_cache_dir, load_split

    cache = default_cache_dir()  # the session's cache: the end-to-end trial below reuses this baseline

    cfg = real_cfg(pneumoniamnist_npz)
    train_set, val, test = (load_split(cfg.data, s, 32) for s in ("train", "val", "test"))
    report = protocols.trtr_baseline(cfg, train_set, val, test, "cpu", cache)
    assert report[K.ACCURACY] >= 0.80, report
    assert report[K.ROC_AUC] >= 0.85 and report[K.BALANCED_ACCURACY] >= 0.70
    assert report["n_test"] == len(test) == 624
    cm = sum(report[f"cm_{a}_{b}"] for a in test.class_names for b in test.class_names)
    assert cm == 624 and report["support_NORMAL"] == 234  # the official test split: 234 NORMAL, 390 PNEUMONIA

    # Once per study: a second call reads the cached JSON instead of training again.
    monkeypatch.setattr(protocols, "fit_classifier", lambda *a, **k: pytest.fail("TRTR retrained"))
    assert protocols.trtr_baseline(cfg, train_set, val, test, "cpu", cache) == report
    # Other tests share the session cache: this baseline is one of its small_cnn 32 px entries.
    cached = list((cache / "downstream").glob("trtr-small_cnn-32px-*.json"))
    assert any(json.loads(p.read_text()) == report for p in cached)


def test_tstr_and_augmentation_run_end_to_end_in_a_real_data_trial(pneumoniamnist_npz, tmp_path):
    cfg = real_cfg(pneumoniamnist_npz, conditioning="acgan", downstream="tstr,augment", tstr_samples=300,
                   augment_samples=200)
    summary = train(cfg, tmp_path / "trial")
    assert summary[K.STATUS] == K.STATUS_FINISHED
    for prefix in (K.TSTR_PREFIX, K.AUGMENT_PREFIX, K.TRTR_PREFIX):
        for key in (K.ACCURACY, K.BALANCED_ACCURACY, K.ROC_AUC):
            assert 0.0 <= summary[prefix + key] <= 1.0, prefix + key
        assert summary[prefix + "n_test"] == 624  # always tested on the real test split
        assert summary[prefix + K.TEST_SPLIT] == protocols.real_splits(cfg)[2].fingerprint
    assert summary[K.AUGMENT_GAIN] == pytest.approx(summary[K.AUGMENT_PREFIX + K.ACCURACY]
                                                    - summary[K.TRTR_PREFIX + K.ACCURACY])
    # The values are in the trial's results files, not only in memory.
    last = json.loads((tmp_path / "trial" / METRICS_FILE).read_text().splitlines()[-1])
    assert last[K.TSTR_PREFIX + K.ACCURACY] == summary[K.TSTR_PREFIX + K.ACCURACY]
    table = format_classification_report(summary, ("NORMAL", "PNEUMONIA"), prefix=K.TSTR_PREFIX)
    assert "| NORMAL |" in table and "| accuracy |" in table


def test_fits_are_paired_by_seed_and_repeats_are_averaged(monkeypatch):
    """Fed TRTR's own data, a protocol must give TRTR's numbers exactly (same initial weights and batches
    whatever the caller's RNG did before: the augmentation gain is the data's effect, not the init's), and
    classifier_repeats fits are averaged."""
    from trainers.data import load_split

    cfg = TrialConfig.from_dict(dict(name="paired", data="phantom", data_limit=96, resolution=32,
                                     classifier="small_cnn", classifier_epochs=2, classifier_patience=2, seed=3,
                                     classifier_repeats=2))
    train_set, val, test = (load_split("phantom", s, 32, limit=96 if s == "train" else None, seed=3)
                            for s in ("train", "val", "test"))
    x, y = train_set.to_tensor(), torch.as_tensor(train_set.labels)
    args = (x, y, val.to_tensor(), torch.as_tensor(val.labels), test, train_set.class_names, "cpu")
    torch.manual_seed(1)
    first = protocols.fit_and_report(cfg, *args)
    torch.manual_seed(2)
    state = torch.get_rng_state()
    second = protocols.fit_and_report(cfg, *args)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left as it was
    assert first == second and first[K.FITS] == 2 and math.isfinite(first[K.ACCURACY_FIT_SD])

    one = cfg.replace(classifier_repeats=1)
    fits = [protocols.fit_and_report(one.replace(seed=s), *args)[K.ACCURACY] for s in protocols.classifier_seeds(cfg)]
    assert first[K.ACCURACY] == pytest.approx(np.mean(fits))
    assert first[K.ACCURACY_FIT_SD] == pytest.approx(np.std(fits, ddof=1))


def test_labels_follow_the_real_class_ratio():
    labels = protocols._labels_in_ratio(np.array([1341, 3875]), 1000)
    assert len(labels) == 1000 and int((labels == 0).sum()) == 257  # 1341/5216 * 1000 = 257.1
    assert protocols._labels_in_ratio(np.array([1, 1, 1]), 10).bincount().tolist() in ([4, 3, 3], [3, 4, 3], [3, 3, 4])


class _Constant(nn.Module):
    """A 'generator' emitting one fixed value: NaN for a diverged one, class-dependent otherwise."""

    def __init__(self, value: float, resolution: int):
        super().__init__()
        self.value, self.resolution, self.seen = value, resolution, []
        self.p = nn.Parameter(torch.zeros(()))

    def forward(self, z, labels=None):
        self.seen.append(None if labels is None else labels.clone())
        return torch.full((len(z), 1, self.resolution, self.resolution), self.value)


def test_unconditional_augmentation_adds_minority_class_images(tmp_path):
    cfg = TrialConfig.from_dict(dict(name="aug", data="phantom", downstream="augment", class_subset="NORMAL",
                                     augment_samples=50, classifier_epochs=1, data_limit=300, resolution=32))
    G = _Constant(-0.5, 32)
    out = protocols.run_downstream(cfg, G, cache_dir=tmp_path)
    assert all(y is None for y in G.seen)  # unconditional: sampled without labels
    assert 0.0 <= out[K.AUGMENT_PREFIX + K.ACCURACY] <= 1.0 and math.isfinite(out[K.AUGMENT_GAIN])
    assert K.TSTR_PREFIX + K.ACCURACY not in out


def test_every_protocol_is_tested_on_the_real_test_split_itself(tmp_path):
    """Identity, not size: on the phantom val and test have the same size, so only the split's own
    fingerprint tells a classifier scored on val (a bug that survived a mutation run) from one on test."""
    from trainers.data import load_split

    cfg = TrialConfig.from_dict(dict(name="ids", data="phantom", conditioning="acgan", downstream="tstr,augment",
                                     tstr_samples=40, augment_samples=20, classifier_epochs=1, data_limit=200,
                                     resolution=32))
    out = protocols.run_downstream(cfg, _Constant(0.3, 32), cache_dir=tmp_path)
    test = load_split("phantom", "test", 32, seed=cfg.seed)
    val = load_split("phantom", "val", 32, seed=cfg.seed)
    assert len(test) == len(val) and test.fingerprint != val.fingerprint
    for prefix in (K.TSTR_PREFIX, K.AUGMENT_PREFIX, K.TRTR_PREFIX):
        assert out[prefix + K.TEST_SPLIT] == test.fingerprint, prefix
        assert out[prefix + "n_test"] == len(test)


def test_augmentation_trained_on_the_wrong_class_is_refused(tmp_path):
    cfg = TrialConfig.from_dict(dict(name="aug", data="phantom", downstream="augment", class_subset="PNEUMONIA",
                                     augment_samples=20, classifier_epochs=1, data_limit=200, resolution=32))
    with pytest.raises(ConfigError, match="class_subset='NORMAL'"):
        protocols.run_downstream(cfg, _Constant(0.0, 32), cache_dir=tmp_path)


@pytest.mark.parametrize("settings, key", [
    (dict(downstream="augment"), "class_subset"),  # unconditional G without a class subset
    (dict(downstream="tstr"), "conditioning"),  # TSTR needs labels
    (dict(downstream="tstr,mixup", conditioning="acgan"), "downstream"),
    (dict(classifier="alexnet"), "classifier"),
])
def test_invalid_downstream_settings_are_rejected_before_training(settings, key):
    with pytest.raises(ConfigError, match=key):
        TrialConfig.from_dict(dict(name="bad", data="phantom", **settings))


def test_diverged_generator_gives_nan_downstream_metrics_with_a_reason(tmp_path):
    cfg = TrialConfig.from_dict(dict(name="nan", data="phantom", conditioning="acgan", downstream="tstr,augment",
                                     tstr_samples=40, augment_samples=20, classifier_epochs=1, data_limit=200,
                                     resolution=32))
    out = protocols.run_downstream(cfg, _Constant(math.nan, 32), cache_dir=tmp_path)
    assert math.isnan(out[K.TSTR_PREFIX + K.ACCURACY]) and math.isnan(out[K.AUGMENT_GAIN])
    assert "non-finite" in out[protocols.DOWNSTREAM_ERROR]
    assert 0.0 <= out[K.TRTR_PREFIX + K.ACCURACY] <= 1.0  # the real baseline is unaffected


def test_classification_report_on_known_predictions():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    p1 = np.array([0.1, 0.2, 0.7, 0.9, 0.8, 0.6, 0.4, 0.3])  # predicted: 0 0 1 1 1 1 0 0
    m = report_from_probs(y, np.stack([1 - p1, p1], axis=1), ("NORMAL", "PNEUMONIA"))
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 5) / 2)
    assert m["precision_PNEUMONIA"] == pytest.approx(3 / 4) and m["recall_PNEUMONIA"] == pytest.approx(3 / 5)
    assert m["precision_NORMAL"] == pytest.approx(2 / 4) and m["recall_NORMAL"] == pytest.approx(2 / 3)
    assert m["f1_NORMAL"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert (m["cm_NORMAL_NORMAL"], m["cm_NORMAL_PNEUMONIA"], m["cm_PNEUMONIA_NORMAL"], m["cm_PNEUMONIA_PNEUMONIA"]) \
        == (2, 1, 2, 3)
    from scipy.stats import mannwhitneyu

    auc = mannwhitneyu(p1[y == 1], p1[y == 0]).statistic / (5 * 3)  # AUC = U / (n1 n0)
    assert m["roc_auc"] == pytest.approx(auc)
    assert m["support_NORMAL"] == 3 and m["n_test"] == 8


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("resolution", [32, 128])
def test_classifiers_map_one_channel_images_to_class_logits(name, resolution):
    net = build_classifier(name, resolution, num_classes=2).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, resolution, resolution))
    assert out.shape == (2, 2) and torch.isfinite(out).all()
    if name == "vgg16":  # seed 000's head: dropout 0.4, dense + BN + LeakyReLU(0.2)
        head = [m for m in net.modules() if isinstance(m, (nn.Dropout, nn.BatchNorm1d, nn.LeakyReLU))]
        assert [type(m) for m in head] == [nn.Dropout, nn.BatchNorm1d, nn.LeakyReLU] and head[0].p == 0.4
        assert head[2].negative_slope == 0.2


def test_build_classifier_rejects_a_name_the_config_does_not_allow():
    with pytest.raises(ValueError, match=f"unknown classifier 'resnet50'; allowed: {', '.join(CLASSIFIERS)}"):
        build_classifier("resnet50", 32)



@pytest.fixture(scope="module")
def per_class_trials(tmp_path_factory):
    """Two tiny unconditional GANs on phantom data, one per class (seed 000's other TSTR design)."""
    root = tmp_path_factory.mktemp("per_class")
    for name in ("NORMAL", "PNEUMONIA"):
        cfg = TrialConfig.from_dict(dict(name=name, data="phantom", class_subset=name, resolution=32, g_features=16,
                                         d_features=16, latent_dim=32, batch_size=16, iterations=20,
                                         report_every=10, eval_at_end=False, data_limit=200))
        assert train(cfg, root / name)[K.STATUS] == K.STATUS_FINISHED
    return root


def test_tstr_command_with_one_generator_per_class(per_class_trials, tmp_path, capsys):
    from study.cli import main

    out = tmp_path / "tstr.json"
    rc = main(["tstr", "--generator", f"NORMAL={per_class_trials / 'NORMAL'}", "--generator",
               f"PNEUMONIA={per_class_trials / 'PNEUMONIA'}", "--n", "120", "--epochs", "2", "--out", str(out)])
    assert rc == 0
    m = json.loads(out.read_text())
    assert 0.0 <= m[K.TSTR_PREFIX + K.ACCURACY] <= 1.0 and 0.0 <= m[K.TRTR_PREFIX + K.ACCURACY] <= 1.0
    assert m[K.TSTR_PREFIX + "n_test"] == 400 and m["tstr_samples"] == 120  # real phantom test split
    printed = capsys.readouterr().out
    assert "| NORMAL |" in printed and "TSTR accuracy" in printed


def test_per_class_sampler_draws_each_label_from_its_own_generator():
    cfg = TrialConfig.from_dict(dict(name="s", data="phantom", resolution=32))
    sampler = protocols.per_class_sampler({0: (_Constant(-0.5, 32), cfg), 1: (_Constant(0.5, 32), cfg)}, "cpu")
    labels = torch.tensor([1, 0, 1, 1, 0])
    x = sampler(labels, 0)
    assert x[:, 0, 0, 0].tolist() == [0.5, -0.5, 0.5, 0.5, -0.5]


@pytest.mark.parametrize("generators, message", [
    (["NORMAL={N}"], "missing \\['PNEUMONIA'\\]"),
    (["NORMAL={P}", "PNEUMONIA={N}"], "class_subset='PNEUMONIA'"),
    (["NORMAL"], "CLASS=TRIAL_DIR"),
])
def test_tstr_command_errors_name_the_problem(per_class_trials, tmp_path, capsys, generators, message):
    import re

    from study.cli import main

    args = []
    for g in generators:
        args += ["--generator", g.format(N=per_class_trials / "NORMAL", P=per_class_trials / "PNEUMONIA")]
    assert main(["tstr", *args, "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.strip().splitlines()) == 1, err
