"""Extractors for re-scoring (issue 23 section 3): names, tags and one-line errors; RAD-DINO's real loading code
on a tiny randomly initialised model of its class; kept generators (float16) score as their checkpoints."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from study.cli import main
from trainers.config import TrialConfig
from trainers.errors import UserError
from trainers.evaluation.extractors import ExtractorChoice, build
from trainers.evaluation.kept_generators import generator_files, load_generator_file, save_generator
from trainers.models import build_generator


def test_choices_have_tags_and_refuse_what_cannot_work(tmp_path, monkeypatch):
    assert [ExtractorChoice("domain").tag, ExtractorChoice("domain", 2).tag, ExtractorChoice("xrv").tag,
            ExtractorChoice("raddino").tag] == ["domain", "domain-seed2", "xrv", "raddino"]
    monkeypatch.delenv("GAN_STUDY_INCEPTION_WEIGHTS", raising=False)
    cases = {("vgg", 0, None): "allowed: domain, xrv, inception, raddino",
             ("xrv", 1, None): "only the domain extractor",
             ("inception", 0, None): "give --weights FILE or set GAN_STUDY_INCEPTION_WEIGHTS",
             ("xrv", 0, str(tmp_path / "nope.pt")): "does not exist",
             ("domain", 0, str(tmp_path)): "--weights is for pretrained extractors"}
    for (name, seed, weights), message in cases.items():
        with pytest.raises(UserError, match=message.replace("(", r"\(")):
            ExtractorChoice(name, seed, weights)
    (tmp_path / "inc.pth").write_bytes(b"x")
    assert ExtractorChoice("inception", weights=str(tmp_path / "inc.pth"), inception_dims=768).tag == "inception-768"


def test_raddino_without_its_directory_says_which_path_is_missing(tmp_path, monkeypatch):
    from trainers.evaluation.feature_raddino import ENV_WEIGHTS, RadDinoExtractor

    monkeypatch.delenv(ENV_WEIGHTS, raising=False)
    with pytest.raises(UserError, match=f"give --weights DIR or set {ENV_WEIGHTS}"):
        RadDinoExtractor()
    for path, what in ((tmp_path / "absent", "is not a directory"), (tmp_path, "has no config.json")):
        with pytest.raises(UserError) as err:
            RadDinoExtractor(path)
        assert str(path) in str(err.value) and what in str(err.value) and "\n" not in str(err.value)


@pytest.fixture
def tiny_raddino(tmp_path):
    """A randomly initialised Dinov2Model (RAD-DINO's class) saved as a Hugging Face snapshot, 28 px input."""
    transformers = pytest.importorskip("transformers")  # optional: pip install transformers
    config = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=64, image_size=28, patch_size=14)
    torch.manual_seed(0)
    model = transformers.Dinov2Model(config).eval()
    root = tmp_path / "rad-dino"
    model.save_pretrained(root)
    (root / "preprocessor_config.json").write_text(json.dumps(
        {"crop_size": {"height": 28, "width": 28}, "image_mean": [0.5307] * 3, "image_std": [0.2583] * 3}))
    return root, model


def test_raddino_loads_a_local_snapshot_and_embeds_as_its_processor_prepares(tiny_raddino, monkeypatch):
    from trainers.evaluation.feature_raddino import ENV_WEIGHTS, RadDinoExtractor

    root, model = tiny_raddino
    images = torch.rand(5, 1, 32, 32) * 2 - 1
    ex = RadDinoExtractor(root)
    feats = ex(images, batch_size=2)
    assert feats.shape == (5, 32) and feats.dtype == np.float64 and ex.dim == 32 and ex.name == "raddino-28px-32d"
    x = torch.nn.functional.interpolate((images + 1) / 2, size=(28, 28), mode="bicubic", antialias=True).clamp(0, 1)
    with torch.no_grad():
        expected = model(pixel_values=(x.repeat(1, 3, 1, 1) - 0.5307) / 0.2583).pooler_output
    np.testing.assert_allclose(feats, expected.double().numpy(), rtol=1e-4, atol=1e-5)
    monkeypatch.setenv(ENV_WEIGHTS, str(root))  # the environment variable works as --weights does
    same = build(ExtractorChoice("raddino"), reference=None, cache_dir=root)
    assert same.weights_sha256 == ex.weights_sha256 and len(ex.weights_sha256) == 16
    (root / "model.safetensors").write_bytes(b"broken")
    with pytest.raises(UserError, match="could not be loaded"):
        RadDinoExtractor(root)


def test_kept_generator_is_half_the_checkpoint_and_scores_the_same(tmp_path):
    cfg = TrialConfig.from_dict(dict(data="phantom", resolution=32, g_features=16, d_features=16, latent_dim=16))
    torch.manual_seed(0)
    G = build_generator(cfg).eval()
    ck = tmp_path / "trials" / "t0" / "checkpoint" / "checkpoint.pt"
    ck.parent.mkdir(parents=True)
    torch.save({"generator": G.state_dict(), "config": cfg.to_dict(), "discriminator": {}}, ck)
    kept = save_generator(tmp_path / "generators" / "t0.pt", G.state_dict(), cfg.to_dict())
    assert kept.stat().st_size < 0.6 * ck.stat().st_size
    z = torch.randn(8, 16)
    with torch.no_grad():
        a, b = G(z), load_generator_file(kept)[0](z)
    assert a.shape == b.shape and (a - b).abs().max() < 2e-2  # float16 weights: close, not equal
    assert generator_files(tmp_path, {"t0": "trials/t0", "t1": "trials/t1"}) == {"t0": kept}  # kept file first
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not readable as a generator"):
        load_generator_file(tmp_path / "bad.pt")


def test_rescore_errors_are_one_line(tmp_path, capsys):
    import pandas as pd

    assert main(["rescore", str(tmp_path / "none"), "--extractor", "domain"]) == 2
    pd.DataFrame({"trial_id": ["a"], "status": ["finished"], "trial_dir": ["trials/a"]}).to_parquet(
        tmp_path / "trials.parquet")
    assert main(["rescore", str(tmp_path), "--extractor", "domain"]) == 2
    assert main(["rescore", str(tmp_path), "--extractor", "domain", "--extractor-seed", "x"]) == 2
    assert main(["rescore", str(tmp_path), "--extractor", "vgg"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("gan-study rescore: error: ") for line in err)
    assert "keeps no generator" in err[1] and "generators/<trial_id>.pt" in err[1]
