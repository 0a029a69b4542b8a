"""Search spaces: the shipped YAML files load and mean what they say; bad spaces fail before launch
with a sentence naming the key and the allowed values; conversion to Ray Tune and Optuna is exact."""
from __future__ import annotations

import itertools
import textwrap

import pytest

from search_spaces.space import available_spaces, load_space
from trainers.errors import UserError

SHIPPED = ("belmekki2022", "factorial", "wide", "narrow", "acgan_tstr", "minority_augmentation", "smoke")


def configs(space):
    """Every trial config of the categorical part of a space."""
    return [space.resolve(p) for p in space.combinations()]


def write(tmp_path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_space_loads_and_marks_every_key(name):
    space = load_space(name)
    roles = space.roles()
    assert set(roles) == {"scientific", "nuisance", "fixed"}
    every = [k for keys in roles.values() for k in keys]
    assert len(every) == len(set(every)), "a key has one role only"
    assert roles["scientific"], "a study compares something"
    assert space.description


def test_all_shipped_spaces_are_listed():
    assert set(SHIPPED) <= set(available_spaces())


def test_belmekki2022_is_the_full_2x2x2_over_explicit_seeds():
    space = load_space("belmekki2022")
    cfgs = configs(space)
    assert len(cfgs) == 24
    cells = {(c.optimizer, c.g_activation, c.d_activation, c.ttur) for c in cfgs}
    activations = (("elu", "elu"), ("relu", "leaky_relu"))
    assert cells == {(o, g, d, t) for o, (g, d), t in itertools.product(("adam", "adas"), activations, (False, True))}
    assert {c.seed for c in cfgs} == {0, 1, 2}
    ttur = {(c.lr_g, c.lr_d) for c in cfgs if c.ttur}
    assert ttur == {(1e-4, 4e-4)}  # Heusel et al.: D four times faster
    assert {(c.lr_g, c.lr_d) for c in cfgs if not c.ttur} == {(2e-4, 2e-4)}
    # Table I rows are cells of the grid: AdaS/ELU/TTUR (the paper's best) among them.
    assert any(c.optimizer == "adas" and c.g_activation == "elu" and c.ttur for c in cfgs)
    assert "seed" in space.roles()["nuisance"]


def test_factorial_crosses_all_six_factors():
    space = load_space("factorial")
    cfgs = configs(space)
    assert len(cfgs) == 2 * 2 * 2 * 3 * 2 * 3
    assert {c.batch_size for c in cfgs} == {64, 128, 256}
    assert {c.kernel_size for c in cfgs} == {4, 5}
    assert {c.resolution for c in cfgs} == {32, 64, 128}
    assert {c.optimizer for c in cfgs} == {"adam", "adas"}


def test_wide_and_narrow_follow_compare_gan():
    wide, narrow = load_space("wide"), load_space("narrow")
    assert (wide.dims["lr_g"].kind, wide.dims["lr_g"].values) == ("loguniform", (1e-5, 1e-2))
    assert wide.dims["beta1"].kind == "uniform" and wide.dims["beta1"].values[0] == 0.0
    assert (wide.dims["d_steps"].kind, wide.dims["d_steps"].values) == ("randint", (1, 5))
    assert narrow.dims["lr_g"].values == (1e-4, 1e-3)
    assert narrow.fixed["beta1"] == 0.5
    for space in (wide, narrow):
        assert space.defaults["search"] == "random"
        cfg = space.resolve({"loss": "bce", "lr_g": 3e-4, "beta1": 0.2, "d_steps": 2})
        assert cfg.lr_d == cfg.lr_g == 3e-4  # one learning rate for both networks (tie)


def test_seed_papers_spaces():
    acgan = configs(load_space("acgan_tstr"))
    assert {c.conditioning for c in acgan} == {"acgan"}
    assert all("tstr" in c.downstream_protocols for c in acgan)
    minority = configs(load_space("minority_augmentation"))
    assert {c.class_subset for c in minority} == {"NORMAL"}
    assert all(c.downstream_protocols == ["augment"] for c in minority)


def test_smoke_is_tiny_and_evaluates_at_the_end():
    space = load_space("smoke")
    cfgs = configs(space)
    assert len(cfgs) >= 4
    for c in cfgs:
        assert (c.data, c.resolution) == ("phantom", 32)
        assert c.iterations <= 100 and c.g_features <= 16
        assert c.eval_at_end and c.extractor == "domain" and c.allow_low_n and c.eval_samples <= 128


# ---------------------------------------------------------------------- validation
def test_unknown_key_names_it_and_lists_known_keys(tmp_path):
    path = write(tmp_path, """
        scientific:
          optimiser: {grid: [adam, adas]}
    """)
    with pytest.raises(UserError, match=r"unknown key 'optimiser'.*optimizer"):
        load_space(path)


def test_bad_value_names_the_key_and_allowed_values(tmp_path):
    path = write(tmp_path, """
        scientific:
          optimizer: {grid: [adam, adamw]}
    """)
    with pytest.raises(UserError, match=r"optimizer='adamw'.*allowed values: adam, adas, sgd, rmsprop"):
        load_space(path)


def test_impossible_combination_is_found_before_launch(tmp_path):
    path = write(tmp_path, """
        fixed: {class_subset: NORMAL}
        scientific:
          conditioning: {grid: [none, acgan]}
    """)
    with pytest.raises(UserError, match=r"conditioning='acgan'.*class_subset"):
        load_space(path)


def test_every_grid_combination_is_checked(tmp_path):
    # wgan_gp is fine with layer norm and invalid only together with d_norm=batch.
    path = write(tmp_path, """
        scientific:
          loss: {grid: [bce, wgan_gp]}
          d_norm: {grid: [layer, batch]}
    """)
    with pytest.raises(UserError, match=r"loss='wgan_gp', d_norm='batch'"):
        load_space(path)


def test_range_ends_are_checked(tmp_path):
    path = write(tmp_path, """
        nuisance:
          beta1: {uniform: [0.0, 1.0]}
    """)
    with pytest.raises(UserError, match=r"beta1=1.0 is out of range"):
        load_space(path)


@pytest.mark.parametrize("body, message", [
    ("extra: 1", r"unknown section 'extra'"),
    ("scientific: {lr_g: 0.1}", r"must be one of \{grid"),
    ("nuisance: {lr_g: {loguniform: [0.0, 0.1]}}", r"loguniform needs low > 0"),
    ("nuisance: {lr_g: {uniform: [0.1, 0.01]}}", r"low < high"),
    ("scientific: {optimizer: {grid: [adam, adam]}}", r"twice"),
    ("fixed: {seed: 1}\nseeds: [0, 1]", r"keep one"),
    ("scientific: {act: {grid: [a]}}\nfactors: {act: {b: {g_activation: elu}}}", r"factor act='a' is not a defined level"),
    ("tie: {lr_d: lr}", r"names unknown key 'lr'"),
    ("scientific: {lr_d: {grid: [0.1]}}\ntie: {lr_d: lr_g}", r"tied .* cannot also be searched"),
    ("defaults: {search: bayes}", r"search='bayes'.*grid, random, optuna"),
    ("defaults: {metric: sharpness}", r"metric 'sharpness' is not reported"),
])
def test_structural_errors(tmp_path, body, message):
    with pytest.raises(UserError, match=message):
        load_space(write(tmp_path, body))


def test_unknown_space_name_lists_the_shipped_ones():
    with pytest.raises(UserError, match=r"unknown search space 'nope'.*belmekki2022"):
        load_space("nope")


# ---------------------------------------------------------------------- resolution and overrides
def test_unquoted_on_off_still_match_factor_levels(tmp_path):
    path = write(tmp_path, """
        scientific:
          ttur: {grid: [off, on]}
        factors:
          ttur:
            off: {lr_g: 2.0e-4, lr_d: 2.0e-4}
            on: {lr_g: 1.0e-4, lr_d: 4.0e-4}
    """)
    space = load_space(path)
    assert space.resolve({"ttur": True}).lr_d == 4e-4
    assert space.resolve({"ttur": "off"}).lr_d == 2e-4


def test_overrides_fix_a_key_and_win_over_factors():
    space = load_space("smoke").with_overrides({"lr_g": 1e-3, "optimizer": "adam"})
    assert "optimizer" not in space.dims
    cfgs = configs(space)
    assert {c.lr_g for c in cfgs} == {1e-3}
    assert {c.lr_d for c in cfgs} == {2e-4, 4e-4}  # the ttur factor still sets lr_d
    assert len(cfgs) == 2
    with pytest.raises(UserError, match=r"Unknown config key 'lr' in --set"):
        load_space("smoke").with_overrides({"lr": 1})


def test_a_trial_config_echoing_fixed_keys_does_not_override_factors():
    space = load_space("belmekki2022")
    point = {**space.fixed, "optimizer": "adas", "activation": "elu", "ttur": "on", "seed": 1}
    assert space.resolve(point).g_norm == "none"  # set by the activation factor, not reset by the echo


# ---------------------------------------------------------------------- conversion
def test_to_tune_grid_random_and_ranges():
    from ray.tune.search.sample import Categorical, Float, Integer

    wide = load_space("wide")
    grid = wide.to_tune("grid")
    assert grid["loss"] == {"grid_search": ["bce", "lsgan", "hinge"]}
    assert grid["iterations"] == wide.fixed["iterations"]  # constants travel with every trial
    assert isinstance(wide.to_tune("random")["loss"], Categorical)
    lr = grid["lr_g"]
    assert isinstance(lr, Float) and (lr.lower, lr.upper) == (1e-5, 1e-2)
    steps = grid["d_steps"]
    assert isinstance(steps, Integer) and (steps.lower, steps.upper) == (1, 6)  # Ray's upper bound is exclusive
    assert set(wide.to_tune("optuna")) == set(wide.fixed)  # OptunaSearch owns the searched keys


def test_to_optuna_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dists = load_space("wide").to_optuna()
    assert dists["loss"] == CategoricalDistribution(["bce", "lsgan", "hinge"])
    assert dists["lr_g"] == FloatDistribution(1e-5, 1e-2, log=True)
    assert dists["beta1"] == FloatDistribution(0.0, 0.999)
    assert dists["d_steps"] == IntDistribution(1, 5)
    grid = load_space("belmekki2022").to_optuna()
    assert isinstance(grid["seed"], CategoricalDistribution)  # grid keys become categorical
