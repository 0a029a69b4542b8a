"""The levers in the training loop: off, the step is the DCGAN step of before; on, resume is exact; the D signals
are reported and consistent; the EMA generator is the one measured, checkpointed as `generator` and generated from."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_levers import _one_thread  # noqa: F401 - the autouse fixture, shared
from test_levers import tiny as _tiny

from trainers import metric_keys as K
from trainers.checkpoint import checkpoint_path, load_checkpoint
from trainers.config import TrialConfig
from trainers.loop import ITERATIONS_FILE, METRICS_FILE, Batches, _grad_norm, _null, gan_step, train

TIMING = (K.WALL_S, K.IMAGES_PER_S, K.PEAK_MEMORY_MB, K.SAMPLE_PATH)
ALL_ON_DIFFAUG = dict(apply_diffaug=True, diffaug_type="brightness,contrast,translation,cutout,flip", apply_g_ema=True,
                      g_ema_start=3, apply_r1_reg=True, r1_interval=2, apply_lecam=True, apply_bcr=True)
ALL_ON_ADA = dict(apply_ada=True, ada_kimg=1, apply_g_ema=True, g_ema_start=3, apply_r1_reg=True, apply_lecam=True,
                  apply_bcr=True, conditioning="acgan", d_steps=2)


def tiny(**overrides) -> TrialConfig:
    """test_levers' tiny config, run for 12 iterations (3 reports) so a resume has reports on both sides."""
    return _tiny(**{"iterations": 12, **overrides})


def reports(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (out / METRICS_FILE).read_text().splitlines()]


# ---------------------------------------------------------------- levers off: the step of before
def _dcgan_step(G, D, opt_g, opt_d, loss_fn, batches, cfg):
    """gan_step as it was before the levers (commit 57aad80), kept verbatim as the reference."""
    cond = batches.conditional
    zero = torch.zeros((), device=batches.device)
    d_rows = []
    for _ in range(cfg.d_steps):
        real, y_real = batches.real()
        z, y_fake = batches.noise()
        fake = G(z, y_fake)
        real_logits, real_cls = D(real, y_real if cond else None)
        fake_logits, fake_cls = D(fake.detach(), y_fake)
        adv_d = loss_fn.d_loss(real_logits.float(), fake_logits.float())
        aux_d = (loss_fn.aux_loss(real_cls.float(), y_real) + loss_fn.aux_loss(fake_cls.float(), y_fake)
                 if real_cls is not None else zero)
        loss_d = adv_d + cfg.aux_weight * aux_d if real_cls is not None else adv_d
        gp = loss_fn.gradient_penalty(D, real, fake.detach(), y_real if cond else None)
        if cfg.loss == "wgan_gp":
            loss_d = loss_d + gp
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        gn_d = _grad_norm(D)
        opt_d.step()
        with torch.no_grad():
            d_rows.append(torch.stack([adv_d.detach(), aux_d.detach(), gp.detach(),
                                       loss_fn.score(real_logits.detach().float()).mean(),
                                       loss_fn.score(fake_logits.detach().float()).mean(), gn_d]))
    gen_logits, gen_cls = D(fake, y_fake)
    adv_g = loss_fn.g_loss(gen_logits.float())
    aux_g = loss_fn.aux_loss(gen_cls.float(), y_fake) if gen_cls is not None else zero
    loss_g = adv_g + cfg.aux_weight * aux_g if gen_cls is not None else adv_g
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    gn_g = _grad_norm(G)
    opt_g.step()
    return torch.stack(d_rows), torch.stack([adv_g.detach(), aux_g.detach(), gn_g])


def _fixture(cfg):
    from trainers.data import load_split
    from trainers.losses import GanLoss
    from trainers.loop import seed_everything
    from trainers.models import build_discriminator, build_generator
    from trainers.optimizers import build_optimizers

    gen = seed_everything(0)
    batches = Batches(load_split("phantom", "train", 32, limit=64), cfg, gen, torch.device("cpu"))
    G, D = build_generator(cfg), build_discriminator(cfg)
    opt_g, opt_d = build_optimizers(cfg, G, D)
    return G, D, opt_g, opt_d, GanLoss(cfg), batches


@pytest.mark.parametrize("overrides", [{}, {"conditioning": "acgan", "d_steps": 2},
                                       {"loss": "wgan_gp", "d_norm": "layer"}, {"d_norm": "spectral", "loss": "hinge"}])
def test_with_every_lever_off_the_step_is_the_dcgan_step_of_before(overrides):
    """Off means off: no extra random draw, no extra term; results and checkpoints of earlier studies stand."""
    cfg = tiny(**overrides)
    runs = []
    for step in (lambda *a: gan_step(*a, cfg, _null()), lambda *a: _dcgan_step(*a, cfg)):
        G, D, opt_g, opt_d, loss_fn, batches = _fixture(cfg)
        rows = [step(G, D, opt_g, opt_d, loss_fn, batches) for _ in range(3)]
        runs.append((rows, [p.detach() for p in (*G.parameters(), *D.parameters())], torch.get_rng_state()))
    (rows_a, params_a, rng_a), (rows_b, params_b, rng_b) = runs
    for (d_a, g_a), (d_b, g_b) in zip(rows_a, rows_b):
        assert torch.equal(d_a, d_b) and torch.equal(g_a, g_b)
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b)) and torch.equal(rng_a, rng_b)


@pytest.mark.parametrize("overrides", [ALL_ON_DIFFAUG, ALL_ON_ADA])
def test_a_step_with_levers_on_never_reads_or_copies_to_the_host(overrides):
    """The levers keep the step GPU-resident: ADA's p, LeCam's averages and r_t stay device tensors."""
    from torch.overrides import TorchFunctionMode

    from trainers.levers import Levers

    cfg = tiny(**overrides)
    G, D, opt_g, opt_d, loss_fn, batches = _fixture(cfg)
    lv = Levers(cfg, G, loss_fn.decision_threshold(), batches.gen, batches.device)
    reads = []

    class Probe(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") in {"item", "tolist", "numpy", "cpu", "to", "cuda", "__bool__",
                                                  "__float__", "__int__", "__index__"}:
                frame = sys._getframe(1)
                while frame is not None and frame.f_code.co_filename.endswith("torch/overrides.py"):
                    frame = frame.f_back
                if frame is not None and "/trainers/" in frame.f_code.co_filename:
                    reads.append(f"{func.__name__} at {Path(frame.f_code.co_filename).name}:{frame.f_lineno}")
            return func(*args, **(kwargs or {}))

    with Probe():
        for _ in range(5):  # past ADA's first adjustment, lazy R1's skipped step and the EMA's start
            gan_step(G, D, opt_g, opt_d, loss_fn, batches, cfg, _null(), lv)
    assert reads == []


# ---------------------------------------------------------------- levers on: exact resume
class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("overrides", [ALL_ON_DIFFAUG, ALL_ON_ADA], ids=["diffaug", "ada"])
def test_resume_with_every_lever_on_continues_exactly(tmp_path, overrides):
    """ADA's p, LeCam's averages, lazy R1's clock, the EMA and the augmentation draws all survive a resume."""
    cfg = tiny(**overrides)
    train(cfg, tmp_path / "straight")

    def stop(metrics, ckpt):
        if metrics[K.ITERATION] == 8:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(cfg, tmp_path / "resumed", reporter=stop)
    train(cfg, tmp_path / "resumed")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    pd.testing.assert_frame_equal(pd.read_csv(straight / ITERATIONS_FILE), pd.read_csv(resumed / ITERATIONS_FILE))
    assert reports(straight) == reports(resumed)
    a, b = load_checkpoint(checkpoint_path(straight)), load_checkpoint(checkpoint_path(resumed))
    for key in ("generator", "generator_train", "discriminator"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    if cfg.apply_ada:
        assert 0 < reports(straight)[-1][K.ADA_P] <= 1  # p moved (kimg=1), and identically
    assert not torch.equal(a["generator"][next(iter(a["generator"]))],
                           a["generator_train"][next(iter(a["generator"]))])  # the EMA is not G


# ---------------------------------------------------------------- D signals
def test_d_signals_are_reported_at_every_report_and_agree_with_the_logged_steps(tmp_path):
    train(tiny(iterations=12), tmp_path)
    rows, it = reports(tmp_path), pd.read_csv(tmp_path / ITERATIONS_FILE)
    assert len(rows) == 3 and all(K.ADA_P not in r for r in rows)  # p only where ADA runs
    for r in rows:
        assert -1 <= r[K.R_T] <= 1 and 0 <= r[K.D_ACC_TRAIN] <= 1 and 0 <= r[K.D_ACC_HELDOUT] <= 1
        assert r[K.D_ACC_GAP] == pytest.approx(r[K.D_ACC_TRAIN] - r[K.D_ACC_HELDOUT])
    # Like the D-loss statistics: over every D step of the run so far (equal intervals: the mean of the r_t).
    assert rows[-1][K.R_T_MEAN] == pytest.approx(np.mean([r[K.R_T] for r in rows]))
    assert rows[-1][K.D_MARGIN_MEAN] == pytest.approx((it[K.D_X] - it[K.D_G_Z]).mean(), rel=1e-6)
    # Measuring D's accuracy changes nothing in training.
    train(tiny(iterations=12, d_acc_samples=0), tmp_path / "unmeasured")
    pd.testing.assert_frame_equal(it, pd.read_csv(tmp_path / "unmeasured" / ITERATIONS_FILE))
    assert math.isnan(reports(tmp_path / "unmeasured")[-1][K.D_ACC_HELDOUT])


# ---------------------------------------------------------------- the measured generator
class _Evaluator:
    """Records which generator is evaluated."""

    def __init__(self, cache_dir):
        self.cache_dir, self.seen = cache_dir, []

    def evaluate(self, G):
        self.seen.append(G)
        return {K.FID: 1.0}


@pytest.mark.parametrize("ema", [True, False])
def test_fid_and_generate_use_the_ema_generator_when_it_is_on(tmp_path, ema):
    from study.generate_command import load_generator

    cfg = tiny(iterations=8, eval_at_end=True, apply_g_ema=ema, g_ema_start=2, g_ema_decay=0.5)
    evaluator = _Evaluator(tmp_path / "cache")
    summary = train(cfg, tmp_path / "run", evaluator=evaluator)
    assert summary[K.EVAL_GENERATOR] == ("ema" if ema else "g")
    ck = load_checkpoint(checkpoint_path(tmp_path / "run"))
    measured = evaluator.seen[-1].state_dict()
    assert all(torch.equal(measured[k], ck["generator"][k]) for k in measured)  # measured = checkpointed `generator`
    assert ("generator_train" in ck) == ema
    G, _, _ = load_generator(tmp_path / "run")  # what `gan-study generate` samples from
    assert all(torch.equal(v, ck["generator"][k]) for k, v in G.state_dict().items())
    if ema:
        assert not all(torch.equal(ck["generator"][k], ck["generator_train"][k]) for k in measured)
