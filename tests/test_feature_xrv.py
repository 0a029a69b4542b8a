"""extractor=xrv: torchxrayvision's DenseNet-121 (densenet121-res224-all) from $GAN_STUDY_XRV_WEIGHTS only."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainers.config import TrialConfig
from trainers.errors import UserError

xrv = pytest.importorskip("torchxrayvision")
from trainers.evaluation.evaluator import build_extractor  # noqa: E402
from trainers.evaluation.feature_xrv import ENV_WEIGHTS, XrvExtractor  # noqa: E402


def test_without_weights_it_fails_in_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_WEIGHTS, raising=False)
    with pytest.raises(UserError) as err:
        XrvExtractor()
    assert ENV_WEIGHTS in str(err.value) and "densenet121-res224-all" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv(ENV_WEIGHTS, str(tmp_path / "absent.pt"))
    with pytest.raises(UserError, match="absent.pt is not a file"):
        XrvExtractor()
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    monkeypatch.setenv(ENV_WEIGHTS, str(tmp_path / "other.pt"))
    with pytest.raises(UserError, match="other.pt does not hold densenet121-res224-all weights"):
        XrvExtractor()


def test_weights_file_loads_and_features_are_the_densenet_penultimate_layer(monkeypatch, tmp_path):
    torch.manual_seed(3)
    with warnings.catch_warnings():
        reference = xrv.models.DenseNet(weights=None).eval()
    for m in reference.modules():  # non-trivial BatchNorm statistics: a state dict that was not loaded shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    images = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        x = F.interpolate(images * 1024, size=(224, 224), mode="bilinear", antialias=True)
        expected = reference.features2(x).numpy()
    torch.save(reference.state_dict(), tmp_path / "state.pt")  # a plain state_dict
    monkeypatch.setenv(ENV_WEIGHTS, str(tmp_path / "state.pt"))
    ex = build_extractor(TrialConfig(extractor="xrv"), None, "cpu", tmp_path)
    assert isinstance(ex, XrvExtractor) and ex.dim == 1024 and ex.name == "xrv-densenet121-res224-all-1024d"
    feats = ex(images, batch_size=1)
    assert feats.shape == (2, 1024) and feats.dtype == np.float64
    # float32 round-off scales with the largest features (~2,500 here): batch size and thread count change the
    # summation order by up to ~1e-5 absolute, a wrong layer or unloaded weights by orders of magnitude more.
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    torch.save(reference, tmp_path / "release.pt")  # a pickled model, as torchxrayvision's release file is
    monkeypatch.setenv(ENV_WEIGHTS, str(tmp_path / "release.pt"))
    loaded = XrvExtractor().model.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in reference.state_dict().items())
