"""`gan-study memory`: the table has the expected rows, grows with features, and BatchNorm costs memory."""
from __future__ import annotations

import argparse

import pandas as pd
import pytest
import torch

from trainers.config import ConfigError, TrialConfig
from trainers.memory import COLUMNS, add_arguments, main, measure_memory, norm_savings, saved_tensor_bytes
from trainers.models import build_discriminator, build_generator


def test_table_rows_and_trends():
    df = measure_memory(resolutions=(32, 64), features=(16, 32, 64), norms=("batch", "none"), batch_size=4,
                        device="cpu")
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 2 * 3 * 2 * 2  # networks x features x norms x resolutions
    assert set(df["method"]) == {"saved_tensors"} and set(df["network"]) == {"G", "D"}
    for (network, resolution, norm), group in df.groupby(["network", "resolution", "norm"]):
        mem = group.sort_values("features")["mem_per_image_mb"].to_numpy()
        assert (mem[1:] > mem[:-1]).all(), (network, resolution, norm)  # grows with feature maps
    wide = df.pivot_table(index=["network", "resolution", "features"], columns="norm",
                          values="activation_mb_per_image")
    assert (wide["batch"] > wide["none"]).all()  # BN keeps its input and output for backward
    savings = norm_savings(df)
    assert len(savings) == 12 and (savings["saving_pct"] > 0).all()
    # Higher resolution costs more per image.
    g = df[(df.network == "G") & (df.features == 32) & (df.norm == "batch")].set_index("resolution")
    assert g.loc[64, "mem_per_image_mb"] > g.loc[32, "mem_per_image_mb"]


@pytest.mark.parametrize("norm", ["batch", "none", "spectral"])
def test_meta_accounting_equals_a_real_cpu_forward(norm):
    cfg = TrialConfig(resolution=32, g_features=16, d_features=16, g_norm=norm, d_norm=norm, g_activation="elu")
    for build, shape in ((build_generator, (4, cfg.latent_dim)), (build_discriminator, (4, 1, 32, 32))):
        with torch.device("meta"):
            meta = build(cfg)
        real = build(cfg)
        on_meta = saved_tensor_bytes(meta, torch.empty(shape, device="meta"))
        assert on_meta == saved_tensor_bytes(real, torch.randn(shape))


def test_cli_writes_table_and_prints_savings(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "mem.csv"
    args = parser.parse_args(["--resolutions", "32", "--features", "16", "32", "--batch-size", "2",
                              "--device", "cpu", "--out", str(out)])
    assert main(args) == 0
    table = pd.read_csv(out)
    assert len(table) == 8
    assert "Removing BatchNorm" in capsys.readouterr().out
    parquet = tmp_path / "mem.parquet"
    assert main(parser.parse_args(["--resolutions", "32", "--features", "16", "--out", str(parquet),
                                   "--device", "cpu"])) == 0
    assert len(pd.read_parquet(parquet)) == 4
    with pytest.raises(ConfigError, match="parquet or .csv"):
        main(parser.parse_args(["--resolutions", "32", "--features", "16", "--out", str(tmp_path / "m.txt")]))
    with pytest.raises(ConfigError, match="resolution"):
        main(parser.parse_args(["--resolutions", "48", "--out", str(out)]))
    with pytest.raises(ConfigError, match="g_features"):
        main(parser.parse_args(["--resolutions", "32", "--features", "8", "--out", str(out)]))


def test_default_grid_is_fast_on_cpu():
    df = measure_memory(device="cpu")  # 64 and 128 px, 32..320 features: seed 002 Fig. 7 and 8
    assert len(df) == 2 * 2 * 10 * 2
    top = df[(df.network == "G") & (df.resolution == 128) & (df.features == 320) & (df.norm == "batch")]
    assert top["params"].item() > 2e8  # built on the meta device: no memory, no arithmetic


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_allocator_method():
    df = measure_memory(resolutions=(32,), features=(16, 64), norms=("batch", "none"), batch_size=4, device="cuda")
    assert set(df["method"]) == {"cuda_max_allocated"} and len(df) == 8
    assert (df["activation_mb_per_image"] > 0).all()
    for _, group in df.groupby(["network", "norm"]):
        assert group.sort_values("features")["mem_per_image_mb"].is_monotonic_increasing
