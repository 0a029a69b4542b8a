"""The training loop: reports, exact statistics, determinism, exact resume, divergence, real data."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from trainers import metric_keys as K
from trainers.checkpoint import checkpoint_path, load_checkpoint
from trainers.config import TrialConfig
from trainers.loop import ITERATIONS_FILE, METRICS_FILE, train


def tiny(**overrides) -> TrialConfig:
    base = dict(
        name="test", data="phantom", resolution=32, g_features=16, d_features=16, latent_dim=32,
        batch_size=16, iterations=30, report_every=10, eval_at_end=False, sample_grid=16, data_limit=256,
    )
    base.update(overrides)
    return TrialConfig.from_dict(base)


def iterations_table(out) -> pd.DataFrame:
    return pd.read_csv(out / ITERATIONS_FILE)


def test_reports_every_interval_with_all_training_signals(tmp_path):
    reports = []
    summary = train(tiny(), tmp_path, reporter=lambda m, c: reports.append((m, c)))
    assert [m[K.ITERATION] for m, _ in reports] == [10, 20, 30]
    for key in (K.LOSS_D, K.LOSS_G, K.D_X, K.D_G_Z, K.GRAD_NORM_D, K.GRAD_NORM_G, K.D_LOSS_MEAN, K.D_LOSS_VAR,
                K.D_LOSS_STD, K.IMAGES_PER_S, K.PEAK_MEMORY_MB, K.PARAMS_G, K.PARAMS_D):
        assert all(math.isfinite(m[key]) for m, _ in reports), key
    assert 0.0 <= reports[-1][0][K.D_X] <= 1.0 and 0.0 <= reports[-1][0][K.D_G_Z] <= 1.0  # BCE scores are probabilities
    assert reports[-1][0][K.PARAMS_G] > 1000 and reports[-1][0][K.IMAGES_PER_S] > 0
    assert summary[K.STATUS] == K.STATUS_FINISHED and [m[K.STATUS] for m, _ in reports[:-1]] == ["running"] * 2
    assert all(c is not None and (c / "checkpoint.pt").is_file() for _, c in reports)  # checkpoint_every=1
    assert len(list((tmp_path / "samples").glob("step_*.png"))) == 3
    assert len(iterations_table(tmp_path)) == 30
    assert len((tmp_path / METRICS_FILE).read_text().splitlines()) == 3


def test_table_statistics_are_exact_over_the_whole_run(tmp_path):
    summary = train(tiny(iterations=25, report_every=7), tmp_path)
    d = iterations_table(tmp_path)[K.LOSS_D].to_numpy()
    assert summary[K.D_LOSS_MEAN] == pytest.approx(d.mean(), rel=1e-6)
    assert summary[K.D_LOSS_VAR] == pytest.approx(d.var(), rel=1e-5)
    assert summary[K.D_LOSS_STD] == pytest.approx(d.std(), rel=1e-5)
    # The report's LOSS_D is the interval mean, not the last batch.
    assert summary[K.LOSS_D] == pytest.approx(d[21:].mean(), rel=1e-6)


def test_same_config_and_seed_give_identical_losses_on_cpu(tmp_path):
    train(tiny(seed=3), tmp_path / "a")
    train(tiny(seed=3), tmp_path / "b")
    train(tiny(seed=4), tmp_path / "c")
    a, b, c = (iterations_table(tmp_path / x) for x in "abc")
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a[K.LOSS_D], c[K.LOSS_D])


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("overrides", [
    {}, {"optimizer": "adas", "conditioning": "acgan", "d_steps": 2}, {"conditioning": "acgan", "loss": "lsgan"},
    # WGAN-GP's penalty draws its mixing weights from the global torch RNG: resume must restore it.
    {"loss": "wgan_gp", "d_norm": "layer", "d_steps": 2}, {"loss": "hinge", "optimizer": "rmsprop"},
])
def test_resume_after_interruption_continues_exactly(tmp_path, overrides):
    cfg = tiny(iterations=40, report_every=10, **overrides)
    train(cfg, tmp_path / "straight")

    def stop_after_second_report(metrics, ckpt):
        if metrics[K.ITERATION] == 20:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(cfg, tmp_path / "resumed", reporter=stop_after_second_report)
    assert load_checkpoint(checkpoint_path(tmp_path / "resumed"))["loop"]["step"] == 20
    summary = train(cfg, tmp_path / "resumed")
    straight, resumed = iterations_table(tmp_path / "straight"), iterations_table(tmp_path / "resumed")
    pd.testing.assert_frame_equal(straight, resumed)
    final = json.loads((tmp_path / "straight" / METRICS_FILE).read_text().splitlines()[-1])
    assert summary[K.D_LOSS_MEAN] == final[K.D_LOSS_MEAN] and summary[K.D_LOSS_VAR] == final[K.D_LOSS_VAR]
    assert len((tmp_path / "resumed" / METRICS_FILE).read_text().splitlines()) == 4


def _one_step_fixture(**overrides):
    from trainers.data import load_split
    from trainers.losses import GanLoss
    from trainers.loop import Batches, seed_everything
    from trainers.models import build_discriminator, build_generator
    from trainers.optimizers import build_optimizers

    cfg = tiny(**overrides)
    gen = seed_everything(0)
    batches = Batches(load_split("phantom", "train", 32, limit=64), cfg, gen, torch.device("cpu"))
    G, D = build_generator(cfg), build_discriminator(cfg)
    opt_g, opt_d = build_optimizers(cfg, G, D)
    return cfg, batches, G, D, opt_g, opt_d, GanLoss(cfg)


@pytest.mark.parametrize("overrides", [{}, {"conditioning": "acgan"}, {"loss": "wgan_gp", "d_norm": "layer"}])
def test_the_g_step_trains_g_and_the_d_step_leaves_g_alone(overrides):
    """A G loss computed on fake.detach() (G never trains) or a D step leaking into G's gradients fails here."""
    from trainers.loop import _null, gan_step

    cfg, batches, G, D, opt_g, opt_d, loss_fn = _one_step_fixture(**overrides)
    g_grads_at_d_step = []
    real_d_step = opt_d.step

    def d_step_spy(*a, **k):
        g_grads_at_d_step.append([None if p.grad is None else p.grad.clone() for p in G.parameters()])
        return real_d_step(*a, **k)

    opt_d.step = d_step_spy
    for it in range(3):
        before_g = [p.detach().clone() for p in G.parameters()]
        before_grads = [None if p.grad is None else p.grad.clone() for p in G.parameters()]
        d_rows, g_row = gan_step(G, D, opt_g, opt_d, loss_fn, batches, cfg, _null())
        # D's backward did not touch G's gradients (None in the first step, the last G step's after).
        for a, b in zip(before_grads, g_grads_at_d_step[-1]):
            assert (a is None and b is None) or torch.equal(a, b)
        assert float(g_row[2]) > 0  # |grad G| of the G step
        moved = [not torch.equal(a, p.detach()) for a, p in zip(before_g, G.parameters())]
        assert all(moved), f"iteration {it}: {moved.count(False)} of G's parameter tensors did not move"
    assert d_rows.shape == (cfg.d_steps, 6) and torch.isfinite(d_rows).all()


def test_acgan_statistics_describe_the_adversarial_loss_and_report_aux_losses(tmp_path):
    summary = train(tiny(conditioning="acgan", iterations=20), tmp_path)
    it = iterations_table(tmp_path)
    assert {K.AUX_LOSS_D, K.AUX_LOSS_G} <= set(it.columns) and K.GRADIENT_PENALTY not in it.columns
    assert summary[K.D_LOSS_MEAN] == pytest.approx(it[K.LOSS_D].mean(), rel=1e-6)
    assert (it[K.AUX_LOSS_D] > 0).all() and math.isfinite(summary[K.AUX_LOSS_G])
    # A D that outputs logit 0 scores 2 ln 2: without the aux part the adversarial loss stays near it.
    assert it[K.LOSS_D].iloc[0] == pytest.approx(2 * math.log(2), abs=0.3)


def test_wgan_gp_reports_critic_loss_and_penalty_separately_and_every_d_step(tmp_path, monkeypatch):
    from trainers import loop

    per_step = []
    real_step = loop.gan_step

    def spy(*a, **k):
        d_rows, g_row = real_step(*a, **k)
        per_step.append(d_rows[:, 0].clone())
        return d_rows, g_row

    monkeypatch.setattr(loop, "gan_step", spy)
    summary = train(tiny(loss="wgan_gp", d_norm="layer", d_steps=3, iterations=12, report_every=6), tmp_path)
    it = iterations_table(tmp_path)
    assert (it[K.GRADIENT_PENALTY] >= 0).all() and math.isfinite(summary[K.GRADIENT_PENALTY])
    every = torch.cat(per_step).double().numpy()
    assert every.size == 36  # 12 iterations x 3 D steps: the statistics cover every D step
    assert summary[K.D_LOSS_MEAN] == pytest.approx(every.mean(), rel=1e-6)
    assert summary[K.D_LOSS_VAR] == pytest.approx(every.var(), rel=1e-5)
    assert math.isnan(summary[K.T0])  # no positive chance level for a critic


def test_checkpoint_loads_with_weights_only_and_holds_the_config(tmp_path):
    cfg = tiny(iterations=10)
    train(cfg, tmp_path)
    ck = torch.load(checkpoint_path(tmp_path), weights_only=True)
    assert TrialConfig.from_dict(ck["config"]) == cfg
    assert {"generator", "discriminator", "opt_g", "opt_d", "gen_state"} <= set(ck)


def test_non_finite_loss_ends_the_trial_as_diverged(tmp_path, monkeypatch):
    from trainers import losses

    real_g_loss = losses.GanLoss.g_loss
    calls = {"n": 0}

    def exploding(self, logits):
        calls["n"] += 1
        value = real_g_loss(self, logits)
        return value * float("nan") if calls["n"] > 12 else value

    monkeypatch.setattr(losses.GanLoss, "g_loss", exploding)
    summary = train(tiny(iterations=200, report_every=50, divergence_window=10), tmp_path)
    assert summary[K.STATUS] == K.STATUS_DIVERGED
    assert "non-finite" in summary[K.REASON]
    assert summary[K.ITERATION] < 200  # stopped early instead of spending the budget


def test_short_run_on_real_pneumoniamnist_learns(tmp_path, pneumoniamnist_npz):
    cfg = tiny(data=str(pneumoniamnist_npz), iterations=60, report_every=30, data_limit=0, batch_size=32)
    summary = train(cfg, tmp_path)
    it = iterations_table(tmp_path)
    assert np.isfinite(it[[K.LOSS_D, K.LOSS_G]].to_numpy()).all()
    assert summary[K.STATUS] == K.STATUS_FINISHED
    first, last = (torch.from_numpy(np.asarray(_png(p), dtype=np.float32)) for p in sorted((tmp_path / "samples").glob("*.png")))
    assert (first - last).abs().mean() > 2.0  # samples change over training (8-bit pixel units)


def test_short_run_on_real_kaggle_tree(tmp_path, chest_xray_dir):
    cfg = tiny(data=str(chest_xray_dir), iterations=60, report_every=30, data_limit=512, batch_size=32)
    summary = train(cfg, tmp_path)
    assert summary[K.STATUS] == K.STATUS_FINISHED
    assert np.isfinite(iterations_table(tmp_path)[[K.LOSS_D, K.LOSS_G]].to_numpy()).all()
    first, last = (np.asarray(_png(p), dtype=np.float32) for p in sorted((tmp_path / "samples").glob("*.png")))
    assert np.abs(first - last).mean() > 2.0


def _png(path):
    from PIL import Image

    return Image.open(path).convert("L")


def test_fid_is_reported_during_and_at_the_end_of_training(tmp_path):
    cfg = tiny(iterations=20, report_every=10, fid_every=1, eval_at_end=True, eval_samples=64, allow_low_n=True,
               conditioning="acgan")
    reports = []
    train(cfg, tmp_path, reporter=lambda m, c: reports.append(m))
    assert all(math.isfinite(m[K.FID]) and m[K.EVAL_N] == 64 for m in reports)
    assert reports[0][K.EVAL_EXTRACTOR].startswith("domain-")
    assert math.isfinite(reports[-1][K.FID_PER_CLASS_PREFIX + "NORMAL"])


class _HostReads:
    """Counts, in the project's own code, what makes a GPU loop wait on the host: reading a tensor's value
    (item, tolist, numpy, cpu, bool/float/int) and moving a tensor (to, cuda). Torch's internals are not
    counted: e.g. Adam reads its step counter, a CPU tensor by design, and clip_grad's .to is same-device."""

    READS = {"item", "tolist", "numpy", "cpu", "to", "cuda", "__bool__", "__float__", "__int__", "__index__"}

    def __init__(self):
        import sys

        from torch.overrides import TorchFunctionMode

        counts = self.counts = {}
        dispatch = str(Path(torch.__file__).parent / "overrides.py")

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                name = getattr(func, "__name__", "")
                if name in _HostReads.READS:
                    frame = sys._getframe(1)
                    while frame is not None and frame.f_code.co_filename == dispatch:
                        frame = frame.f_back  # torch's dispatch machinery: the caller is next
                    where = frame.f_code.co_filename if frame is not None else ""
                    if "/trainers/" in where:
                        key = f"{name} at {Path(where).name}:{frame.f_lineno}"
                        counts[key] = counts.get(key, 0) + 1
                return func(*args, **(kwargs or {}))

        self.mode = Mode()


@pytest.mark.parametrize("overrides", [{}, {"conditioning": "acgan", "d_steps": 2, "optimizer": "adas"},
                                       {"loss": "wgan_gp", "d_norm": "layer"}])
def test_a_training_step_never_reads_or_copies_to_the_host(overrides):
    """GPU-resident training: batches, noise, labels and the GP's weights are drawn on the device."""
    from trainers.loop import _null, gan_step

    cfg, batches, G, D, opt_g, opt_d, loss_fn = _one_step_fixture(**overrides)
    probe = _HostReads()
    with probe.mode:
        for _ in range(3):
            gan_step(G, D, opt_g, opt_d, loss_fn, batches, cfg, _null())
    assert probe.counts == {}, probe.counts


def test_the_host_reads_training_signals_once_per_report(tmp_path, monkeypatch):
    import trainers.loop as loop

    reads = []
    real_append = loop._append_iterations
    monkeypatch.setattr(loop, "_append_iterations", lambda out, rows, cols: (reads.append(len(rows)),
                                                                              real_append(out, rows, cols)))
    train(tiny(iterations=60, report_every=20, divergence_window=5), tmp_path)
    assert reads == [20, 20, 20]  # one device-to-host read per report, not per divergence window
