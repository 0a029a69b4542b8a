"""TrialConfig validation: bad settings are rejected before any trial starts, naming key and allowed values."""
from __future__ import annotations

import json

import pytest

from trainers.config import GPU_FID_EVERY, TrialConfig, is_ttur, load_config, parse_overrides
from trainers.errors import ConfigError, UserError


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"kernel_size": 3}, "kernel_size=3 is not allowed; allowed values: 4, 5"),
        ({"resolution": 48}, "allowed values: 32, 64, 128, 256"),
        ({"optimizer": "adamw"}, "allowed values: adam, adas, sgd, rmsprop"),
        ({"g_norm": "group"}, "g_norm='group'"),
        ({"g_features": 8}, "16 <= g_features <= 512"),
        ({"batch_size": "lots"}, "batch_size='lots' must be an integer"),
        ({"lr_d": 0}, "lr_d=0.0 is out of range"),
        ({"downstream": "tstr"}, "set conditioning to 'acgan' or 'cgan'"),
        ({"loss": "wgan_gp"}, "incompatible with d_norm='batch'"),
        ({"conditioning": "acgan", "class_subset": "NORMAL"}, "needs every class"),
        ({"learning_rate": 1e-3}, "Unknown config key 'learning_rate'"),
    ],
)
def test_invalid_settings_are_rejected_by_name(values, fragment):
    with pytest.raises(ConfigError) as err:
        TrialConfig.from_dict(values)
    assert fragment in str(err.value)
    assert isinstance(err.value, UserError) and "\n" not in str(err.value)


def test_round_trip_and_string_coercion_from_cli_overrides(tmp_path):
    cfg = TrialConfig.from_dict({"iterations": "500", "lr_g": "1e-4", "hist_eq": "true", "batch_size": 128.0})
    assert (cfg.iterations, cfg.lr_g, cfg.hist_eq, cfg.batch_size) == (500, 1e-4, True, 128)
    assert TrialConfig.from_dict(cfg.to_dict()) == cfg
    cfg.save(tmp_path / "c.json")
    assert load_config(tmp_path / "c.json") == cfg
    assert load_config(tmp_path / "c.json", {"seed": 7}).seed == 7


def test_ttur_is_derived_from_learning_rates_and_d_steps():
    assert not TrialConfig().ttur
    assert TrialConfig(lr_g=1e-4, lr_d=4e-4).ttur
    assert TrialConfig(d_steps=2).ttur
    assert is_ttur(1e-4, 4e-4) and not is_ttur(2e-4, 2e-4)  # a stored config dict without d_steps


def test_set_overrides_are_typed_by_the_config_field_or_as_yaml_for_factors():
    """`gan-study trial` and `gan-study run` parse `--set` with this one function."""
    got = parse_overrides(["iterations=500", " lr_g = 1e-3", "hist_eq=true", "name=on", "class_subset=", "ttur=on"])
    assert got == {"iterations": 500, "lr_g": 1e-3, "hist_eq": True, "name": "on", "class_subset": "", "ttur": True}
    assert TrialConfig.from_dict({k: v for k, v in got.items() if k != "ttur"}).iterations == 500
    with pytest.raises(ConfigError, match="iterations='many' must be an integer"):
        parse_overrides(["iterations=many"])
    with pytest.raises(ConfigError, match="must look like key=value"):
        parse_overrides(["iterations"])


def test_bad_config_files_give_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid json"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="flat mapping"):
        load_config(lst)


def test_automatic_fid_cadence_fits_the_device():
    auto = TrialConfig.from_dict({"name": "a"})
    assert auto.fid_every == -1
    assert auto.fid_cadence("cuda") == GPU_FID_EVERY and auto.fid_cadence("cpu") == 0  # CPU: only at the end
    fixed = TrialConfig.from_dict({"name": "f", "fid_every": 2})
    assert fixed.fid_cadence("cpu") == fixed.fid_cadence("cuda") == 2
    with pytest.raises(ConfigError, match="fid_every"):
        TrialConfig.from_dict({"name": "bad", "fid_every": -2})
