"""Properties stated directly, one test per behaviour of issue #24 section 3 (planted bugs, round 3). Each
test names the bug it catches, and each such bug is written down below (PLANTS) as an edit of the real
function's source, applied in memory:

    GAN_STUDY_PLANT=<name> python -m pytest -x -q -p no:cacheprovider tests/test_planted_bugs_round3.py -k <test>

plants bug <name> before every test of this file (nothing on disk changes), so "the test fails with the bug
and passes without" is one command each way. `test_every_planted_bug_still_applies` keeps the plants in step
with the code: a plant whose original text is gone fails there, not silently.

 1. Pre-registration: the plan's record time compared with the study's *first* report
    -> test_a_plan_recorded_mid_study_is_post_hoc_only_a_record_before_the_first_report_counts
 2. Pre-registration: the record time is UTC whatever the machine's time zone
    -> test_the_plan_record_time_is_utc_whatever_the_machines_time_zone
 3. Pre-registration: `resume` with a changed plan file refused by the Python API and by the CLI
    -> test_resume_with_a_changed_plan_is_refused_by_the_api_and_the_cli_before_anything_launches
 4. Early proxy: the kept set and the random baseline keep floor(keep * n) of an odd n configurations
    -> test_the_kept_set_and_the_random_baseline_keep_floor_keep_n_of_an_odd_number_of_configurations
 5. Yardstick: a class_subset setting's floor is measured on that class's reference (and test) images
    -> test_a_class_subset_floor_is_measured_on_that_class_images_only,
       test_the_analysis_finds_and_computes_each_class_subset_floor_apart
 6. Yardstick: the evaluator's cached real-feature statistics never shared between reference image sets
    -> test_cached_real_features_are_never_shared_between_different_reference_images
 7. Training: the reported epoch counts every real batch drawn (d_steps > 1)
    -> test_the_reported_epoch_counts_every_real_batch_drawn
 8. Results: trials.parquet keeps a metric's last measured value when the final report has none
    -> test_trials_parquet_keeps_the_last_measured_fid_when_the_final_report_has_none

Everything is seeded; nothing sleeps; no Ray is started; extractors are a fixed pixel-pooling stand-in.
"""
from __future__ import annotations

import __future__
import inspect
import itertools
import json
import math
import os
import sys
import textwrap
import time
from datetime import datetime, timezone
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from trainers import metric_keys as K
from trainers.config import TrialConfig


# ---------------------------------------------------------------------- planting bugs in memory
def rewrite(monkeypatch, owner, attr: str, old: str, new: str) -> None:
    """Replace `owner.attr` (a function, method or property) by its own source with `old` -> `new`, compiled
    in its module's namespace; monkeypatch undoes it. `old` must occur exactly once."""
    target = inspect.getattr_static(owner, attr)
    func = target.fget if isinstance(target, property) else target
    func = getattr(func, "__func__", func)
    source = textwrap.dedent(inspect.getsource(func))
    assert source.count(old) == 1, f"plant for {owner.__name__}.{attr}: {old!r} occurs {source.count(old)} times"
    module = sys.modules[func.__module__]
    code = compile(source.replace(old, new), inspect.getsourcefile(func), "exec",
                   flags=__future__.annotations.compiler_flag, dont_inherit=True)
    namespace: dict = {}
    exec(code, module.__dict__, namespace)  # globals: the live module; the def lands in `namespace` only
    planted = namespace[func.__name__]
    monkeypatch.setattr(owner, attr, property(planted) if isinstance(target, property) else planted)


def _plant_first_report_max(mp):
    from analysis import primary
    rewrite(mp, primary, "_first_report", "float(ts.min())", "float(ts.max())")


def _plant_first_report_first_row(mp):
    from analysis import primary
    rewrite(mp, primary, "_first_report", "float(ts.min())", "float(ts.iloc[0])")


def _plant_record_local_time(mp):
    from analysis import plan
    rewrite(mp, plan, "record_plan", "time.gmtime()", "time.localtime()")


def _plant_first_report_local_time(mp):
    from analysis import primary
    rewrite(mp, primary, "_first_report", "datetime.fromtimestamp(float(ts.min()), tz=timezone.utc)",
            "datetime.fromtimestamp(float(ts.min())).replace(tzinfo=timezone.utc)")


def _plant_api_skips_plan_check(mp):
    from study import api
    mp.setattr(api, "check_resume_plan", lambda spec, plan_file: None)


def _plant_cli_drops_plan_file(mp):
    from study import resume_command
    rewrite(mp, resume_command, "main", "plan_file=args.plan_file", "plan_file=None")


def _plant_proxy_k_ceil(mp):
    from analysis import proxy
    rewrite(mp, proxy, "early_proxy", "math.floor(keep * n)", "math.ceil(keep * n)")


def _plant_proxy_k_round(mp):
    from analysis import proxy
    rewrite(mp, proxy, "early_proxy", "int(math.floor(keep * n))", "int(round(keep * n))")


def _plant_random_baseline_drops_k(mp):
    """The random baseline sized as the dropped set (n - k): the same as k for even n only."""
    from analysis import proxy
    rewrite(mp, proxy, "early_proxy", "rand = _random_subset_min(o_mean, k) - best_o",
            "rand = _random_subset_min(o_mean, n - k) - best_o")


def _plant_random_p_drops_k(mp):
    from analysis import proxy
    rewrite(mp, proxy, "early_proxy", "random_p_best_kept=k / n", "random_p_best_kept=(n - k) / n")


def _plant_yardstick_reference_all_classes(mp):
    from trainers.evaluation import yardstick
    rewrite(mp, yardstick.Yardstick, "__init__", "self.reference = (self.reference_all.subset_class(s.class_subset) "
            "if s.class_subset else self.reference_all)", "self.reference = self.reference_all")


def _plant_yardstick_test_all_classes(mp):
    from trainers.evaluation import yardstick
    rewrite(mp, yardstick.Yardstick, "__init__", "self.test = test.subset_class(s.class_subset) if s.class_subset "
            "else test", "self.test = test")


def _plant_find_floor_ignores_class(mp):
    from analysis import yardstick
    rewrite(mp, yardstick, "find_floor", " and s.class_subset == class_subset", "")


def _plant_settings_drop_class(mp):
    from analysis import yardstick
    rewrite(mp, yardstick, "settings_from_trials", 'class_subset=str(r.get(C.cfg("class_subset"), "") or "")',
            'class_subset=""')


def _plant_real_key_whole_reference(mp):
    from trainers.evaluation import evaluator
    rewrite(mp, evaluator.Evaluator, "real_features", "{self.real_set.fingerprint}|reference|",
            "{self.reference.fingerprint}|reference|")


def _plant_real_key_source_name(mp):
    from trainers.evaluation import evaluator
    rewrite(mp, evaluator.Evaluator, "real_features", "{self.real_set.fingerprint}|reference|",
            "{self.cfg.data}|reference|")


def _plant_epoch_one_batch_per_iteration(mp):
    from trainers import loop
    rewrite(mp, loop, "train", "st.step * cfg.d_steps * B / batches.n", "st.step * B / batches.n")


def _plant_trials_take_nan(mp):
    from study import tables
    rewrite(mp, tables.StudyTables, "trials_frame", "last.update({k: v for k, v in rep.items() if not is_null(v)})",
            "last.update(rep)")


def _plant_trials_last_report_only(mp):
    from study import tables
    rewrite(mp, tables.StudyTables, "trials_frame", "for rep in reports:", "for rep in reports[-1:]:")


PLANTS = {name.removeprefix("_plant_"): fn for name, fn in dict(globals()).items() if name.startswith("_plant_")}


@pytest.fixture(autouse=True)
def _planted_bug(monkeypatch):
    """GAN_STUDY_PLANT=<name>[,<name>...]: plant those bugs for every test of this file (see the docstring)."""
    for name in filter(None, os.environ.get("GAN_STUDY_PLANT", "").split(",")):
        PLANTS[name](monkeypatch)
    yield


# ---------------------------------------------------------------------- shared pieces
PLAN = {"outcome": "log_fid", "predictor": "d_loss_mean", "controls": ["optimizer"], "direction": "negative"}
T0 = 1.7e9  # 2023-11-14T22:13:20Z


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _space_with_plan(tmp_path, plan: dict | None = PLAN) -> str:
    raw = yaml.safe_load(open("search_spaces/smoke.yaml"))
    raw.pop("analysis", None)
    if plan is not None:
        raw["analysis"] = plan
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _history(study_dir, starts: dict[str, float], reports: int = 3) -> pd.DataFrame:
    """Report rows as analysis.load gives them: trial t reports at starts[t] + 10, + 20, ...; rows shuffled."""
    from analysis import columns as C

    rows = [{C.TRIAL_ID: t, C.TIMESTAMP: s + 10.0 * r, C.STUDY_DIR: str(study_dir.resolve())}
            for t, s in starts.items() for r in range(1, reports + 1)]
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert df[C.TIMESTAMP].iloc[0] != df[C.TIMESTAMP].min()  # the earliest report is not the first row
    return df


# ---------------------------------------------------------------------- 1. plan vs the FIRST report
def test_a_plan_recorded_mid_study_is_post_hoc_only_a_record_before_the_first_report_counts(tmp_path):
    """Bug: the plan's record time compared with a later report than the study's first (its last report, or
    the first row of an unsorted history). Trials start 10 min apart and report every 10 s; the history
    rows are shuffled. A plan recorded 1 s before the first report is pre-registered; one recorded in the
    same second as the first report, between two trials' starts, or after all reports is post hoc."""
    from analysis.primary import POST_HOC, PRE_REGISTERED, plan_status
    from fixtures_analysis import make_study

    starts = {f"t{i}": T0 + 600.0 * i for i in range(4)}  # first report T0 + 10, last T0 + 1830
    cases = [(T0 + 9, PRE_REGISTERED), (T0 + 10, POST_HOC), (T0 + 15, POST_HOC), (T0 + 1000, POST_HOC),
             (T0 + 2000, POST_HOC)]
    study = make_study(tmp_path, plan=PLAN, seeds=(0,), losses=("bce",), with_fid=False, with_downstream=False,
                       with_memory=False, extra_trials=False)
    spec = json.loads((study / "study.json").read_text())
    for recorded, expected in cases:
        spec["plan"]["recorded_at"] = _utc(recorded)  # not part of the plan's hash
        (study / "study.json").write_text(json.dumps(spec))
        status = plan_status([study], _history(study, starts))
        assert status.status == expected, (_utc(recorded), status.why)
        assert status.plan is not None and status.plan.predictor == "d_loss_mean"
        if expected == POST_HOC:
            assert "after the first report at 2023-11-14 22:13:30 UTC" in status.why, status.why


# ---------------------------------------------------------------------- 2. UTC whatever the time zone
@pytest.fixture(params=["America/New_York", "Asia/Tokyo"])
def machine_time_zone(request):
    """The process's local time zone set to params (TZ + time.tzset()), restored afterwards."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TZ", request.param)
        time.tzset()
        try:
            assert time.localtime().tm_gmtoff != 0  # the zone really is not UTC (else the test proves nothing)
            yield request.param
        finally:
            mp.undo()
            time.tzset()


def test_the_plan_record_time_is_utc_whatever_the_machines_time_zone(tmp_path, machine_time_zone):
    """Bug: the record time written in local time with a "Z" (time.localtime), or the first report's epoch
    time read as local time and labelled UTC. On a machine in New York (UTC-5/-4) or Tokyo (UTC+9), a plan
    recorded now says now in UTC; the study whose first report comes 1 h later calls it pre-registered,
    and the one whose first report was 1 h earlier calls it post hoc (a 4-9 h shift flips both)."""
    from analysis.primary import POST_HOC, PRE_REGISTERED, plan_status
    from study.spec import new_spec

    before = time.time()
    spec = new_spec(out=str(tmp_path / "s"), space=_space_with_plan(tmp_path))
    after = time.time()
    recorded = datetime.strptime(spec.plan["recorded_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert math.floor(before) - 1 <= recorded.timestamp() <= after + 1, (spec.plan["recorded_at"], machine_time_zone)
    (tmp_path / "s").mkdir()
    spec.save()
    study = tmp_path / "s"
    assert plan_status([study], _history(study, {"a": after + 3600, "b": after + 4200})).status == PRE_REGISTERED
    late = plan_status([study], _history(study, {"a": before - 3600, "b": before - 3000}))
    assert late.status == POST_HOC and "after the first report" in late.why


# ---------------------------------------------------------------------- 3. resume with a changed plan
class _Launched(Exception):
    """Raised by the stand-in for the Ray launch: the call got past every check."""


def test_resume_with_a_changed_plan_is_refused_by_the_api_and_the_cli_before_anything_launches(
        tmp_path, monkeypatch, capsys):
    """Bug: only one entry point checks the plan file given to resume (the API skips check_resume_plan, or
    the CLI does not pass --plan-file on). study.api.resume_study(dir, plan_file=changed) raises a UserError
    naming the changed keys, `gan-study resume DIR --plan-file changed` exits 2 with that message, and
    neither launches anything; the recorded plan itself passes both and reaches the launch."""
    from study import api
    from study.cli import main
    from study.spec import new_spec
    from trainers.errors import UserError

    spec = new_spec(out=str(tmp_path / "s"), space=_space_with_plan(tmp_path))
    (tmp_path / "s").mkdir()
    spec.save()
    same, changed = tmp_path / "same.yaml", tmp_path / "changed.yaml"
    same.write_text(yaml.safe_dump(PLAN))
    changed.write_text(yaml.safe_dump({**PLAN, "direction": "positive", "alpha": 0.01}))
    launched = []

    def launch(call):
        launched.append(call)
        raise _Launched

    monkeypatch.setattr(api, "_with_own_ray", launch)
    with pytest.raises(UserError) as err:
        api.resume_study(tmp_path / "s", plan_file=changed, progress=False)
    assert "differs" in str(err.value) and "alpha, direction" in str(err.value) and not launched

    capsys.readouterr()
    assert main(["resume", str(tmp_path / "s"), "--plan-file", str(changed), "--quiet"]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("gan-study resume: error: --plan-file ") and "alpha, direction" in stderr, stderr
    assert not launched

    for call in (lambda: api.resume_study(tmp_path / "s", plan_file=same, progress=False),
                 lambda: main(["resume", str(tmp_path / "s"), "--plan-file", str(same), "--quiet"])):
        with pytest.raises(_Launched):
            call()
    assert len(launched) == 2


# ---------------------------------------------------------------------- 4. early proxy, odd n
def _odd_study(n: int, seeds: int = 2):
    """n configurations (one factor, n levels) x seeds, no seed noise: configuration c has proxy c (higher =
    kept first) and FID 40 - 3c + (c % 3) (not monotone in the proxy, so which k are kept matters)."""
    from analysis import columns as C

    lr = C.cfg("lr_g")
    trials, history = [], []
    for c, s in itertools.product(range(n), range(seeds)):
        tid = f"c{c}_s{s}"
        trials.append({C.TRIAL_ID: tid, lr: 1e-4 * (c + 1), C.SEED: s, C.cfg("iterations"): 100,
                       K.FID: 40.0 - 3.0 * c + (c % 3)})
        history += [{C.TRIAL_ID: tid, K.ITERATION: it, K.D_LOSS_MEAN: float(c) if it <= 50 else -9.0}
                    for it in (25, 50, 75, 100)]
    return pd.DataFrame(trials), pd.DataFrame(history), lr


@pytest.mark.parametrize("n, keep", [(3, 0.5), (5, 0.5), (7, 0.5), (9, 0.5), (7, 0.3)])
def test_the_kept_set_and_the_random_baseline_keep_floor_keep_n_of_an_odd_number_of_configurations(n, keep):
    """Bug: with an odd number n of configurations the proxy keeps ceil(keep * n) or round(keep * n) (7 ->
    4, not 3), or the random baseline is sized as the dropped set (n - k, the same as k only for even n).
    Intended (analysis/proxy.py): k = max(1, floor(keep * n)), so "keep half" of 7 keeps 3, the top 3 by
    the proxy; the random baseline keeps the same k: P(best kept) = k / n and its regret equals the mean,
    over every k-subset enumerated, of the subset's best FID minus the best overall."""
    from analysis.proxy import early_proxy

    trials, history, lr = _odd_study(n)
    res = early_proxy(trials, history, 0.5, factors=[lr], keep=keep, n_resamples=20)
    k = max(1, math.floor(keep * n))
    assert res.n_configs == n and res.k == k
    conf = res.configurations
    assert int(conf["kept"].sum()) == k
    assert sorted(conf.loc[conf["kept"], "early_d_loss"]) == [float(c) for c in range(n - k, n)]  # the top k
    fid = conf[K.FID].to_numpy()
    assert res.random_p_best_kept == pytest.approx(k / n, abs=1e-15)
    subsets = [min(fid[list(s)]) for s in itertools.combinations(range(n), k)]
    expected = float(np.mean(subsets)) - fid.min()
    assert res.random_regret == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert res.random_regret_mean == pytest.approx(expected, rel=1e-12, abs=1e-12)  # no seed noise: every draw
    assert res.regret == pytest.approx(min(fid[conf["kept"].to_numpy()]) - fid.min(), abs=1e-12)


# ---------------------------------------------------------------------- 5./6. yardstick
class _PixelExtractor:
    """A stand-in extractor: 4 x 4 average-pooled pixels (16 features, distinct per image). Its name is
    fixed, like a pretrained extractor's ("inception-2048" is the same on any data): nothing in the name
    tells two reference sets apart, so the caches must."""

    name, dim = "pixels-4x4", 16

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        x = torch.as_tensor(x, dtype=torch.float32)
        return torch.nn.functional.avg_pool2d(x, x.shape[-1] // 4).flatten(1).double().numpy()


@pytest.fixture
def pixel_extractor(monkeypatch):
    from trainers.evaluation import evaluator

    calls = []

    def build(cfg, reference, device, cache_dir, *, seed=0):
        calls.append((cfg.class_subset, len(reference)))
        return _PixelExtractor()

    monkeypatch.setattr(evaluator, "build_extractor", build)
    return calls


def _rows(a: np.ndarray) -> set[bytes]:
    return {r.tobytes() for r in np.ascontiguousarray(a, dtype=np.float64)}


def test_a_class_subset_floor_is_measured_on_that_class_images_only(tmp_path, monkeypatch, pixel_extractor):
    """Bug: a `class_subset` setting's floor measured on every class's reference (or test) images. For
    class_subset=NORMAL the floor's reference and test are the NORMAL images (sizes, fingerprints), every
    feature row that enters any of the floor's FIDs is a NORMAL image's, and the extractor still learns
    every class (as the evaluator's does)."""
    from trainers.data import load_split
    from trainers.evaluation import yardstick as Y

    ref = load_split("phantom", "train", 32, limit=160, seed=0)
    test = load_split("phantom", "test", 32, limit=80, seed=0)
    normal, normal_test = ref.subset_class("NORMAL"), test.subset_class("NORMAL")
    assert 0 < len(normal) < len(ref) and 0 < len(normal_test) < len(test)
    n = 8
    assert 4 * n <= len(normal)  # every halves row (N/2, N, 2N) is measured, none skipped
    seen = []
    real_fid = Y.fid_from_features
    monkeypatch.setattr(Y, "fid_from_features", lambda a, b: seen.append((a, b)) or real_fid(a, b))

    ys = Y.Yardstick(Y.Setting("phantom", 32, n, class_subset="NORMAL"), reference=ref, test=test, cache_dir=tmp_path)
    floor = ys.floor(repeats=3)
    assert floor.reference_size == len(normal) and floor.test_size == len(normal_test)
    assert floor.reference_fingerprint == normal.fingerprint and floor.test_fingerprint == normal_test.fingerprint
    assert all(not r.skipped for r in floor.rows if r.comparison == Y.HALVES)
    ex = _PixelExtractor()
    np.testing.assert_array_equal(ys.features("reference"), ex(normal.to_tensor()))
    np.testing.assert_array_equal(ys.features("test"), ex(normal_test.to_tensor()))
    allowed = _rows(ex(normal.to_tensor())) | _rows(ex(normal_test.to_tensor()))
    assert seen and all(_rows(a) <= allowed and _rows(b) <= allowed for a, b in seen)
    assert pixel_extractor == [("NORMAL", len(ref))]  # the extractor is built on every class


def test_the_analysis_finds_and_computes_each_class_subset_floor_apart(tmp_path, pixel_extractor):
    """Bug: the analysis giving a class_subset setting another setting's floor: the trials' class_subset
    dropped when their settings are read, or a cached floor found by extractor name and N alone. Three
    settings share the extractor name and N (all classes, NORMAL, PNEUMONIA), computed in turn into one
    cache: each gets its own floor, on its own class's images, and finds it again in the cache."""
    from analysis import columns as C
    from analysis import yardstick as AY
    from trainers.data import load_reference_split

    subsets = ["", "NORMAL", "PNEUMONIA"]
    trials = pd.DataFrame([{C.TRIAL_ID: f"t{i}", C.cfg("data"): "phantom", C.cfg("resolution"): 32,
                            C.cfg("class_subset"): s, C.cfg("hist_eq"): False, C.cfg("extractor"): "domain",
                            K.FID: 50.0 + i, K.EVAL_EXTRACTOR: _PixelExtractor.name, K.EVAL_N: 64}
                           for i, s in enumerate(subsets)])
    sizes = {s: len(load_reference_split("phantom", 32, class_subset=s, cache_dir=tmp_path)) for s in subsets}
    assert len(set(sizes.values())) == 3
    for _ in range(2):  # computed, then found in the cache
        entries = AY.yardstick_for_trials(trials, cache_dir=tmp_path, results=None)
        assert [e.reason for e in entries] == ["", "", ""]
        assert sorted(e.floor.setting.class_subset for e in entries) == sorted(subsets)
        for e in entries:
            assert e.floor.reference_size == sizes[e.floor.setting.class_subset], e.floor.setting
    assert sorted(subset for subset, _ in pixel_extractor) == sorted(subsets)  # computed once each, then cached
    for s in subsets:
        found = AY.find_floor(_PixelExtractor.name, 64, class_subset=s, results=None, cache_dir=tmp_path)
        assert found.setting.class_subset == s and found.reference_size == sizes[s]


def test_cached_real_features_are_never_shared_between_different_reference_images(tmp_path, pixel_extractor):
    """Bug: the evaluator's real-feature cache keyed by something coarser than the images it holds: the whole
    reference's fingerprint (so the class subsets of one source share), or the source's name (so two
    draws of one source, or its histogram-equalised images, share). Five settings with one extractor name,
    resolution and N, evaluated in turn into one cache directory and then again from it: each gets the
    features and labels of its own N reference images, from a file of its own."""
    from trainers.data import load_split
    from trainers.evaluation import defaults as D
    from trainers.evaluation.evaluator import Evaluator

    n = 12
    settings = [("", False, 0), ("NORMAL", False, 0), ("PNEUMONIA", False, 0), ("", False, 1), ("", True, 0)]
    for round_ in range(2):
        for subset, hist_eq, draw in settings:
            ref = load_split("phantom", "train", 32, limit=64, seed=draw, hist_eq=hist_eq)
            cfg = TrialConfig.from_dict({"data": "phantom", "resolution": 32, "class_subset": subset, "hist_eq": hist_eq,
                                         "eval_samples": n, "allow_low_n": True})
            ev = Evaluator(cfg, ref, cache_dir=tmp_path)
            real_set = ref.subset_class(subset) if subset else ref
            assert ev.n == n <= len(real_set)
            idx = np.sort(np.random.default_rng(D.REAL_SUBSET_SEED).permutation(len(real_set))[:n])
            feats, labels = ev.real_features()
            np.testing.assert_array_equal(feats, _PixelExtractor()(real_set.select(idx, "x").to_tensor()),
                                          err_msg=f"round {round_}: {subset or 'all'}, hist_eq={hist_eq}, draw {draw}")
            np.testing.assert_array_equal(labels, real_set.labels[idx])
    assert len(list((tmp_path / "stats").glob("real-*.npz"))) == len(settings)


# ---------------------------------------------------------------------- 7. epoch with d_steps > 1
def test_the_reported_epoch_counts_every_real_batch_drawn(tmp_path, monkeypatch):
    """Bug: the epoch counted as one real batch per iteration. D draws a real batch at each of its d_steps
    updates, so at every report epoch = (real batches drawn so far) x batch size / training images,
    counted here by a spy on the loop's batch source (twice the iteration count with d_steps=2)."""
    from trainers import loop

    drawn: list[int] = []
    real = loop.Batches.real

    def spy(self):
        drawn.append(self.n)
        return real(self)

    monkeypatch.setattr(loop.Batches, "real", spy)
    reports = []
    cfg = TrialConfig.from_dict(dict(name="epoch", data="phantom", resolution=32, g_features=16, d_features=16,
                                     latent_dim=16, batch_size=8, iterations=4, report_every=2, eval_at_end=False,
                                     fid_every=0, sample_grid=4, data_limit=32, d_steps=2, detect_divergence=False,
                                     num_threads=1))
    loop.train(cfg, tmp_path / "t", reporter=lambda m, c: reports.append((m[K.ITERATION], m[K.EPOCH], len(drawn))))
    n = drawn[0]
    assert set(drawn) == {n}
    assert [(it, count) for it, _, count in reports] == [(2, 4), (4, 8)]
    for it, epoch, count in reports:
        assert epoch == pytest.approx(count * cfg.batch_size / n, rel=1e-12), (it, epoch, count, n)


# ---------------------------------------------------------------------- 8. trials.parquet, last measured
@pytest.mark.parametrize("final", ["absent", "nan"])
def test_trials_parquet_keeps_the_last_measured_fid_when_the_final_report_has_none(tmp_path, final):
    """Bug: trials.parquet taking the evaluated metrics from the final report only, or letting a NaN there
    overwrite the value measured earlier. A trial with fid_every=2 is measured at reports 2 and 4 of 5
    (FID 30 then 36): its final report carries no FID (`absent`: the key left out, as the loop does) or a
    NaN one (`nan`). The trials row keeps FID 36 and its KID, extractor and N (the *last* measured, not
    the best: best_fid is 30 at iteration 20), while the training signals come from the final report.
    Intended otherwise: wall_s and peak_memory_mb are the final report's even when null (study/tables.py)."""
    from search_spaces.space import load_space
    from study.layout import TRIALS_FILE
    from study.results_store import ResultsStore

    store = ResultsStore(str(tmp_path), load_space("smoke"), min_write_interval_s=0.0)
    store.setup()
    trial = SimpleNamespace(trial_id="a_00000", config={"optimizer": "adam", "ttur": "off", "seed": 0},
                            last_result={}, status="RUNNING")
    store.on_trial_start(0, [trial], trial)
    measured = {2: (30.0, 0.03), 4: (36.0, 0.04)}
    for rep in range(1, 6):
        it = 10 * rep
        metrics = {K.ITERATION: it, K.D_LOSS_MEAN: 0.5 + it / 100, K.WALL_S: float(it), K.REASON: "",
                   K.STATUS: K.STATUS_FINISHED if rep == 5 else K.STATUS_RUNNING}
        if rep in measured:
            metrics.update({K.FID: measured[rep][0], K.KID_MEAN: measured[rep][1], K.EVAL_EXTRACTOR: "domain-x",
                            K.EVAL_N: 64})
        elif final == "nan":
            metrics.update({K.FID: math.nan, K.KID_MEAN: math.nan})
        store.on_trial_result(0, [trial], trial, {**metrics, "done": rep == 5, "training_iteration": rep})
    row = pd.read_parquet(tmp_path / TRIALS_FILE).set_index("trial_id").loc["a_00000"]
    assert row[K.STATUS] == K.STATUS_FINISHED and row["iterations_done"] == 50 and row["reports"] == 5
    assert row[K.FID] == 36.0 and row[K.KID_MEAN] == 0.04
    assert row[K.EVAL_EXTRACTOR] == "domain-x" and row[K.EVAL_N] == 64
    assert row["best_fid"] == 30.0 and row["best_fid_iteration"] == 20
    assert row[K.D_LOSS_MEAN] == pytest.approx(1.0) and row[K.WALL_S] == 50.0
    history = pd.read_parquet(tmp_path / "history.parquet")
    assert np.isnan(history[K.FID].to_numpy()[[0, 2, 4]]).all()  # the reports themselves keep their gaps
    assert history[K.ITERATION].tolist() == [10, 20, 30, 40, 50]


# ---------------------------------------------------------------------- the plants themselves
def test_every_planted_bug_still_applies():
    """Not a behaviour: each plant's original text is still in the code, so the evidence can be re-run."""
    for name, plant in PLANTS.items():
        with pytest.MonkeyPatch.context() as mp:
            plant(mp)
