"""Properties stated directly, one per bug that survived (or was caught only by the findings golden
file in) the second planted-bug run. Each test names the bug it catches:

 1. WGAN-GP: the gradient penalty enters D's loss with the wrong sign
    -> test_wgan_gp_penalty_is_added_to_the_loss_d_minimises,
       test_gradient_penalty_equals_its_formula_and_scales_with_its_weight
 2. AdaS ignores a learning rate changed after construction (PBT, LR schedulers)
    -> test_adas_step_follows_a_learning_rate_changed_after_construction
 3. T0's tracker not restored on resume
    -> test_t0_of_a_resumed_run_equals_the_uninterrupted_run
 4. Two datasets of the same shape share one domain extractor (cache keyed by shape, not content)
    -> test_same_shape_datasets_with_different_pixels_get_their_own_domain_extractor
 5. TSTR labels drawn in the test split's class ratio instead of the training split's
    -> test_tstr_labels_follow_the_training_split_ratio_not_the_test_splits
 6. Resume re-journals reports that were already journaled
    -> test_resuming_the_store_journals_each_trial_iteration_once
 7. Random-permutation Kruskal-Wallis p without its +1 (p can be 0)
    -> test_kruskal_random_permutation_p_is_one_plus_hits_over_one_plus_b
 8. BH q-values without the running minimum
    -> test_bh_q_values_take_the_running_minimum_and_are_monotone_in_p
 9. Matched pairs (analysis.paired) that ignore one factor
    -> test_matched_pairs_agree_on_every_factor_but_the_one_compared

Everything is seeded; nothing sleeps; no Ray cluster is started.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from trainers import metric_keys as K
from trainers.config import TrialConfig


def tiny(**overrides) -> TrialConfig:
    base = dict(name="planted", data="phantom", resolution=32, g_features=16, d_features=16, latent_dim=32,
                batch_size=16, iterations=30, report_every=10, eval_at_end=False, sample_grid=16, data_limit=64)
    base.update(overrides)
    return TrialConfig.from_dict(base)


# ---------------------------------------------------------------------- 1. WGAN-GP penalty sign
def _wgan_step_fixture():
    from trainers.data import load_split
    from trainers.losses import GanLoss
    from trainers.loop import Batches, seed_everything
    from trainers.models import build_discriminator, build_generator
    from trainers.optimizers import build_optimizers

    cfg = tiny(loss="wgan_gp", d_norm="layer", d_steps=1)
    gen = seed_everything(0)
    batches = Batches(load_split("phantom", "train", 32, limit=64), cfg, gen, torch.device("cpu"))
    G, D = build_generator(cfg), build_discriminator(cfg)
    opt_g, opt_d = build_optimizers(cfg, G, D)
    return cfg, batches, G, D, opt_g, opt_d, GanLoss(cfg)


def _d_grads_of_one_step(penalty=None):
    """D's gradients at its optimiser step (one gan_step), with an optional stand-in penalty."""
    from trainers.loop import _null, gan_step

    cfg, batches, G, D, opt_g, opt_d, loss_fn = _wgan_step_fixture()
    if penalty is not None:
        loss_fn.gradient_penalty = penalty
    seen = []
    real_step = opt_d.step

    def spy(*a, **k):
        seen.append([p.grad.detach().clone() for p in D.parameters()])
        return real_step(*a, **k)

    opt_d.step = spy
    gan_step(G, D, opt_g, opt_d, loss_fn, batches, cfg, _null())
    assert len(seen) == 1
    return seen[0]


def test_wgan_gp_penalty_is_added_to_the_loss_d_minimises(monkeypatch):
    """Bug 1: `loss_d - gp` in the D step. D must *minimise* critic + penalty: with a stand-in penalty
    P(D) = sum of D's parameters (gradient 1 for every weight), D's gradient grows by exactly +1 per weight,
    and the loss D backpropagates is the reported critic loss plus the reported (positive) penalty."""
    base = _d_grads_of_one_step(lambda D, *a, **k: torch.zeros(()))
    plus = _d_grads_of_one_step(lambda D, *a, **k: sum(p.sum() for p in D.parameters()))
    for g0, g1 in zip(base, plus):
        torch.testing.assert_close(g1 - g0, torch.ones_like(g0), atol=1e-4, rtol=0)

    # With the real penalty: the value D backpropagates = critic terms + lambda * penalty (as reported).
    from trainers.loop import _null, gan_step

    cfg, batches, G, D, opt_g, opt_d, loss_fn = _wgan_step_fixture()
    backpropagated = []
    real_backward = torch.Tensor.backward

    def spy(self, *a, **k):
        backpropagated.append(float(self.detach()))
        return real_backward(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "backward", spy)
    d_rows, _ = gan_step(G, D, opt_g, opt_d, loss_fn, batches, cfg, _null())
    monkeypatch.undo()
    critic, penalty = float(d_rows[0, 0]), float(d_rows[0, 2])
    assert penalty > 1e-3  # an untrained critic's gradient norm is far from 1
    assert backpropagated[0] == pytest.approx(critic + penalty, rel=1e-5, abs=1e-6)


class _LinearCritic(nn.Module):
    """f(x) = w . x + b: its input gradient is w everywhere, so the penalty is lambda * (|w| - 1)^2 exactly."""

    def __init__(self, shape, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(*shape, generator=g) * 0.2)
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, x, labels=None):
        return (x * self.w).flatten(1).sum(1) + self.b, None


def test_gradient_penalty_equals_its_formula_and_scales_with_its_weight():
    """Bug 1 (in the loss): the penalty is +lambda * E[(|grad D(x_hat)| - 1)^2], never negative, linear in lambda;
    and D's total WGAN-GP loss (critic + penalty) grows with lambda on a batch where the penalty is positive."""
    from trainers.losses import GanLoss

    D = _LinearCritic((1, 8, 8))
    real, fake = torch.rand(6, 1, 8, 8) * 2 - 1, torch.rand(6, 1, 8, 8) * 2 - 1
    expected = float((D.w.detach().norm() - 1.0) ** 2)  # independent of the random interpolation
    assert expected > 0.1
    totals = []
    for weight in (0.0, 1.0, 10.0):
        loss = GanLoss(tiny(loss="wgan_gp", d_norm="layer", gp_weight=weight))
        gp = float(loss.gradient_penalty(D, real, fake).detach())
        assert gp == pytest.approx(weight * expected, rel=1e-5, abs=1e-7)
        with torch.no_grad():
            real_logits, _ = D(real)
            fake_logits, _ = D(fake)
        critic = float(fake_logits.mean() - real_logits.mean())
        assert float(loss.d_loss(real_logits, fake_logits)) == pytest.approx(critic, rel=1e-6, abs=1e-7)
        totals.append(critic + gp)
    assert totals[0] < totals[1] < totals[2]


# ---------------------------------------------------------------------- 2. AdaS and a changed lr
def _twin_params(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3)).double()
    return net, copy.deepcopy(net)


def _fixed_grads(net, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in net.parameters()]


def _step_displacements(opt, net, grads):
    before = [p.detach().clone() for p in net.parameters()]
    for p, g in zip(net.parameters(), grads):
        p.grad = g.clone()
    opt.step()
    return [p.detach() - b for p, b in zip(net.parameters(), before)]


def test_adas_step_follows_a_learning_rate_changed_after_construction():
    """Bug 2: AdaS using the lr_scale fixed at construction. After `g['lr'] *= 0.1` every update is 10x
    smaller than an untouched twin's, at every step; and a PBT restore that only rewrites `lr` in the saved
    optimiser state (trainable.restore_checkpoint) changes the step size the same way."""
    from trainers.optimizers import AdaS

    a, b = _twin_params()
    opt_a, opt_b = AdaS(a.parameters(), lr_scale=1.0), AdaS(b.parameters(), lr_scale=1.0)
    for group in opt_b.param_groups:
        group["lr"] *= 0.1
    for step in range(3):
        grads = _fixed_grads(a, seed=step)
        for da, db in zip(_step_displacements(opt_a, a, grads), _step_displacements(opt_b, b, grads)):
            assert float(da.abs().max()) > 0
            torch.testing.assert_close(db, 0.1 * da, rtol=1e-6, atol=1e-12)

    # PBT: the donor's optimiser state with only "lr" rewritten (lr_scale keeps the donor's value).
    donor_net, _ = _twin_params()
    donor = AdaS(donor_net.parameters(), lr_scale=2.0)
    _step_displacements(donor, donor_net, _fixed_grads(donor_net, seed=7))
    saved = donor.state_dict()
    mutated = copy.deepcopy(saved)
    for group in mutated["param_groups"]:
        group["lr"] *= 0.1
    same_net, mutated_net = copy.deepcopy(donor_net), copy.deepcopy(donor_net)
    same, changed = AdaS(same_net.parameters(), lr_scale=2.0), AdaS(mutated_net.parameters(), lr_scale=2.0)
    same.load_state_dict(saved)
    changed.load_state_dict(mutated)
    grads = _fixed_grads(donor_net, seed=8)
    for ds, dc in zip(_step_displacements(same, same_net, grads), _step_displacements(changed, mutated_net, grads)):
        torch.testing.assert_close(dc, 0.1 * ds, rtol=1e-6, atol=1e-12)


# ---------------------------------------------------------------------- 3. T0 across a resume
class _Interrupt(Exception):
    pass


def _scripted_gan_step(losses):
    """A stand-in gan_step whose adversarial D loss follows `losses` (one per call), nothing trained."""
    calls = iter(losses)

    def step(G, D, opt_g, opt_d, loss_fn, batches, cfg, amp, levers=None):
        d = next(calls)
        return (torch.tensor([[d, 0.0, 0.0, 0.5, 0.5, 1.0]]).repeat(cfg.d_steps, 1),
                torch.tensor([1.0, 0.0, 1.0]))

    return step


def test_t0_of_a_resumed_run_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    """Bug 3: the T0 tracker not restored from the checkpoint. D's loss is scripted (BCE chance 2 ln 2,
    threshold ln 2): high for 5 iterations, low for 20, high again, so the low phase starts at iteration
    20 and ends at 35. A run interrupted at its iteration-20 report and resumed must report T0 = 35 like
    the run that was never interrupted (a fresh tracker would see only the end and report 0)."""
    from trainers import loop

    script = [1.4] * 5 + [0.05] * 20 + [1.4] * 15
    cfg = tiny(iterations=40, report_every=10, detect_divergence=False)
    assert loop.GanLoss(cfg).chance_level() == pytest.approx(2 * math.log(2))

    monkeypatch.setattr(loop, "gan_step", _scripted_gan_step(script))
    straight = loop.train(cfg, tmp_path / "straight")
    assert straight[K.T0] == 35.0 and not straight[K.T0_CENSORED]

    monkeypatch.setattr(loop, "gan_step", _scripted_gan_step(script))  # one script across both halves

    def stop_at_20(metrics, ckpt):
        if metrics[K.ITERATION] == 20:
            assert ckpt is not None
            raise _Interrupt

    with pytest.raises(_Interrupt):
        loop.train(cfg, tmp_path / "resumed", reporter=stop_at_20)
    resumed = loop.train(cfg, tmp_path / "resumed")
    assert resumed[K.ITERATION] == 40
    assert resumed[K.T0] == straight[K.T0]
    assert resumed[K.T0_CENSORED] == straight[K.T0_CENSORED]
    reported = [json.loads(line)[K.T0] for line in (tmp_path / "resumed" / loop.METRICS_FILE).read_text().splitlines()]
    assert len(reported) == 4 and all(math.isnan(v) for v in reported[:3]) and reported[3] == 35.0


# ---------------------------------------------------------------------- 4. extractor cache key
def test_same_shape_datasets_with_different_pixels_get_their_own_domain_extractor(tmp_path):
    """Bug 4: the domain extractor's cache key distinguishing datasets only by shape. Two phantom draws
    (different pixels, same source name, same shape) in one cache directory must get different names and
    files, the second trained on its own data (not loaded from the first's file) and giving other features;
    the same dataset again still hits the cache."""
    from trainers.data import load_split
    from trainers.evaluation.feature_domain import DomainExtractor

    a = load_split("phantom", "train", 32, limit=64, seed=0)
    b = load_split("phantom", "train", 32, limit=64, seed=1)
    assert a.images.shape == b.images.shape and not np.array_equal(a.images, b.images)
    ea = DomainExtractor(a, tmp_path)
    eb = DomainExtractor(b, tmp_path)
    assert ea.trained_now and eb.trained_now  # b was not served a's extractor
    assert ea.name != eb.name
    assert len(list((tmp_path / "extractors").glob("*.pt"))) == 2
    probe = torch.as_tensor(a.to_tensor()[:16])
    assert not np.allclose(ea(probe), eb(probe))
    again = DomainExtractor(a, tmp_path)
    assert not again.trained_now and again.name == ea.name
    np.testing.assert_array_equal(again(probe), ea(probe))


# ---------------------------------------------------------------------- 5. TSTR label ratio
def _split(counts, names=("NORMAL", "PNEUMONIA"), fp="x"):
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
    return SimpleNamespace(labels=labels, class_names=tuple(names), fingerprint=fp,
                           to_tensor=lambda: torch.zeros(len(labels), 1, 8, 8))


@pytest.mark.parametrize("validation", ["synthetic", "real"])
def test_tstr_labels_follow_the_training_split_ratio_not_the_test_splits(monkeypatch, validation):
    """Bug 5: TSTR's synthetic labels drawn in real_test's (or real_val's) class ratio. Train 1:3, val 1:1,
    test 3:1: the sampler must be asked for 40 labels as 10 NORMAL / 30 PNEUMONIA (and a synthetic
    validation set of 8 as 2 / 6), and the classifier must be fitted on exactly those labels."""
    from trainers.evaluation import protocols

    train, val, test = _split([25, 75], fp="train"), _split([50, 50], fp="val"), _split([60, 20], fp="test")
    cfg = tiny(conditioning="acgan", downstream="tstr", tstr_samples=40, tstr_validation=validation)
    asked = []

    def sampler(labels, seed):
        asked.append(labels.clone())
        return torch.zeros(len(labels), 1, 8, 8)

    fitted = {}

    def fake_protocol(prefix, cfg, x, y, val_x, val_y, test_split, names, device):
        fitted.update(x=x, y=torch.as_tensor(y), val_y=torch.as_tensor(val_y), test=test_split)
        return {}

    monkeypatch.setattr(protocols, "_protocol", fake_protocol)
    protocols.tstr(cfg, sampler, train, val, test, "cpu")
    assert asked[0].bincount(minlength=2).tolist() == [10, 30]
    assert torch.equal(fitted["y"], asked[0]) and len(fitted["x"]) == 40
    assert fitted["test"] is test
    if validation == "synthetic":
        assert len(asked) == 2 and asked[1].bincount(minlength=2).tolist() == [2, 6]
        assert torch.equal(fitted["val_y"], asked[1])
    else:
        assert len(asked) == 1 and fitted["val_y"].bincount(minlength=2).tolist() == [50, 50]


# ---------------------------------------------------------------------- 6. journal after resume
def _journal_reports(path):
    from study.tables import read_journal

    return [(r["trial_id"], int(r["metrics"][K.ITERATION])) for r in read_journal(path) if r.get("event") == "report"]


def test_resuming_the_store_journals_each_trial_iteration_once(tmp_path):
    """Bug 6: a resumed store re-journaling reports it had already journaled. The driver journaled reports
    10 and 20 of trial a; a's own log also holds 30 (the driver was killed before receiving it) and trial
    b's log holds 10 (b was never journaled a report). Resuming journals exactly the missing ones, so the
    journal has every (trial, iteration) once, and resuming again adds nothing."""
    from search_spaces.space import load_space
    from study.layout import JOURNAL_FILE, TRIALS_DIRNAME
    from study.results_store import ResultsStore
    from trainers.layout import METRICS_FILE

    space = load_space("smoke")
    config = {"optimizer": "adam", "ttur": "off", "seed": 0}

    def rep(it):
        return {K.ITERATION: it, K.LOSS_D: 0.5 + it / 100, K.STATUS: K.STATUS_RUNNING, K.REASON: ""}

    first = ResultsStore(str(tmp_path), space, min_write_interval_s=3600.0)
    first.setup()
    ta = SimpleNamespace(trial_id="a_00000", config=config, last_result={}, status="RUNNING")
    tb = SimpleNamespace(trial_id="b_00001", config=config, last_result={}, status="RUNNING")
    first.on_trial_start(0, [ta, tb], ta)
    first.on_trial_start(0, [ta, tb], tb)
    for it in (10, 20):
        first.on_trial_result(0, [ta, tb], ta, {**rep(it), "done": False, "training_iteration": it // 10})
    for tid, its in (("a_00000", (10, 20, 30)), ("b_00001", (10,))):
        log = tmp_path / TRIALS_DIRNAME / tid / METRICS_FILE
        log.parent.mkdir(parents=True)
        log.write_text("".join(json.dumps(rep(it)) + "\n" for it in its))
    journal = tmp_path / JOURNAL_FILE
    assert _journal_reports(journal) == [("a_00000", 10), ("a_00000", 20)]

    resumed = ResultsStore(str(tmp_path), space, min_write_interval_s=3600.0)
    resumed.setup()
    after = _journal_reports(journal)
    assert sorted(after) == [("a_00000", 10), ("a_00000", 20), ("a_00000", 30), ("b_00001", 10)]
    assert len(after) == len(set(after))  # each (trial, iteration) once
    assert sorted(resumed.tables.reports["a_00000"]) == [10, 20, 30]

    again = ResultsStore(str(tmp_path), space, min_write_interval_s=3600.0)
    again.setup()
    assert _journal_reports(journal) == after


# ---------------------------------------------------------------------- 7. Kruskal-Wallis +1
def test_kruskal_random_permutation_p_is_one_plus_hits_over_one_plus_b():
    """Bug 7: a random-permutation p computed as hits / B (0 when no permutation reaches the observed H).
    With B random relabellings p = (1 + #{H_perm >= H_obs}) / (1 + B), counted here with scipy's H over the
    same relabellings; perfectly separated groups give exactly 1 / (1 + B), never 0."""
    from scipy import stats

    from analysis.ranktests import kruskal_permutation
    from analysis.resample import Design, block_permutations

    B = 199
    separated = [np.arange(6.0), np.arange(6.0) + 10, np.arange(6.0) + 20]  # 18! arrangements >> B: random
    _, p = kruskal_permutation(separated, n_permutations=B, seed=3)
    assert p == pytest.approx(1.0 / (B + 1), rel=1e-12) and p > 0

    rng = np.random.default_rng(5)
    samples = [rng.normal(0.0, 1.0, 5), rng.normal(0.6, 1.0, 5), rng.normal(1.2, 1.0, 4)]
    h, p = kruskal_permutation(samples, n_permutations=B, seed=11)
    values = np.concatenate(samples)
    labels = np.repeat(np.arange(3), [len(s) for s in samples])
    perms, exact = block_permutations(Design.of(len(values)), B, np.random.default_rng(11))
    assert not exact and len(perms) == B
    h_obs = stats.kruskal(*samples).statistic
    h_perm = np.array([stats.kruskal(*[values[labels[perm] == g] for g in range(3)]).statistic for perm in perms])
    hits = int(np.sum(h_perm >= h_obs * (1 - 1e-9)))
    assert h == pytest.approx(h_obs)
    assert p == pytest.approx((1 + hits) / (1 + B), rel=1e-12)
    assert 0 < p < 1


# ---------------------------------------------------------------------- 8. BH running minimum
def _bh_reference(p):
    """Benjamini-Hochberg written out: q_(i) = min_{j >= i} p_(j) m / j, capped at 1; NaN not counted."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    running = 1.0
    for rank, i in reversed(list(enumerate(ok[np.argsort(p[ok], kind="stable")], start=1))):
        running = min(running, p[i] * m / rank)
        out[i] = running
    return out


def test_bh_q_values_take_the_running_minimum_and_are_monotone_in_p():
    """Bug 8: q = p m / rank without the running minimum from the top. Here p m / rank is not monotone
    (0.01 -> 0.05 but 0.021 -> 0.035), so q must be 0.035 for the three smallest p; q is monotone in p,
    never below p, at most 1, and equals the formula on random families (NaN stays NaN, not counted)."""
    from analysis.multiplicity import bh_qvalues

    p = np.array([0.021, 0.5, np.nan, 0.01, 0.04, 0.02])
    expected = np.array([0.035, 0.5, np.nan, 0.035, 0.05, 0.035])
    np.testing.assert_allclose(bh_qvalues(p), expected, rtol=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(20):
        fam = np.where(rng.random(30) < 0.5, rng.random(30) ** 4, rng.random(30))
        fam[rng.random(30) < 0.1] = np.nan
        q = bh_qvalues(fam)
        np.testing.assert_allclose(q, _bh_reference(fam), rtol=1e-12, equal_nan=True)
        ok = np.isfinite(fam)
        order = np.argsort(fam[ok])
        assert np.all(np.diff(q[ok][order]) >= -1e-15)  # monotone in p
        assert np.all(q[ok] >= fam[ok] - 1e-15) and np.all(q[ok] <= 1.0)
        assert np.array_equal(np.isnan(q), ~ok)


# ---------------------------------------------------------------------- 9. matched pairs
def test_matched_pairs_agree_on_every_factor_but_the_one_compared():
    """Bug 9: paired_difference matching configurations on all but one of the `pair_on` factors. In a
    2x2x2 design of the other factors with two cells missing one TTUR level, the pairs are exactly the
    6 cells holding both levels (seeds averaged): n_pairs, the mean difference, the level means and the
    exact sign-flip p all equal an independent matching, whatever the order of `pair_on` (the compared
    factor may be listed in it)."""
    from analysis.paired import paired_difference

    rng = np.random.default_rng(4)
    others = {"opt": ["adam", "sgd"], "act": ["relu", "lrelu"], "batch": [64, 128]}
    effect = {"adam": 0.0, "sgd": 9.0, "relu": 0.0, "lrelu": -5.0, 64: 0.0, 128: 13.0}
    rows = []
    for opt, act, batch in itertools.product(*others.values()):
        for ttur in (False, True):
            if (opt, act, batch, ttur) in {("sgd", "relu", 128, True), ("adam", "lrelu", 64, False)}:
                continue  # a cell with only one level cannot be paired
            for seed in range(2):
                fid = 50 + effect[opt] + effect[act] + effect[batch] - 2.0 * ttur + rng.normal(0, 1.5)
                rows.append(dict(opt=opt, act=act, batch=batch, ttur=ttur, seed=seed, fid=fid))
    trials = pd.DataFrame(rows)

    diffs, means_a, means_b = [], [], []
    for key, cell in trials.groupby(["opt", "act", "batch"]):
        by_level = cell.groupby("ttur")["fid"].mean()
        if {False, True} <= set(by_level.index):
            assert cell[["opt", "act", "batch"]].nunique().eq(1).all()  # agree on every other factor
            diffs.append(by_level[True] - by_level[False])
            means_a.append(by_level[False])
            means_b.append(by_level[True])
    d = np.array(diffs)
    assert len(d) == 6
    flips = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    p_ref = float(np.mean(np.abs((flips * d).mean(axis=1)) >= abs(d.mean()) - 1e-12))

    for pair_on in (["ttur", "opt", "act", "batch"], ["opt", "act", "batch", "ttur"], ["batch", "ttur", "act", "opt"]):
        res = paired_difference(trials, "ttur", False, True, "fid", pair_on=pair_on, n_resamples=500, seed=0)
        assert res["n_pairs"] == 6, pair_on
        assert res["diff"] == pytest.approx(d.mean(), rel=1e-12), pair_on
        assert res["mean_a"] == pytest.approx(np.mean(means_a)) and res["mean_b"] == pytest.approx(np.mean(means_b))
        assert res["p"] == pytest.approx(p_ref, abs=1e-12), pair_on
