"""`gan-study memory`: memory per image of G and D against feature-map size (seed 002, Figs. 7 and 8).

Seed 002 reports that memory grows steeply with the base feature maps (32..320 at 64 and 128 px) and
that removing BatchNorm saves 1.2-7%. This command measures the same table two ways:

- method "cuda_max_allocated" (CUDA): torch.cuda.max_memory_allocated over one forward + backward, after
  a warm-up step so gradients already exist; activation memory = peak minus what was allocated before.
- method "saved_tensors" (CPU): the bytes of every tensor autograd saves for backward
  (`torch.autograd.graph.saved_tensors_hooks`, each storage counted once, parameters and buffers
  excluded), plus parameter + gradient + buffer bytes. The forward runs on the *meta* device — shapes
  only, no arithmetic, no allocation — so the figure is exact, deterministic, identical on every
  machine (it equals a real CPU forward; see tests/test_memory.py) and the whole default table takes
  about a second even for 128 px / 320 features (~280 M parameters).

Columns: network (G|D), resolution, features, norm, params, param_mb, activation_mb_per_image,
mem_per_image_mb (everything needed for one training step, divided by the batch size), device, method.

Example:
    >>> df = measure_memory(resolutions=(32,), features=(16,), norms=("batch",), device="cpu")
    >>> sorted(df["network"])
    ['D', 'G']
"""
from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from trainers.atomic import atomic_path
from trainers.config import NORMS, RESOLUTIONS, ConfigError, TrialConfig
from trainers.layout import MEMORY_FILE
from trainers.models import build_discriminator, build_generator, count_parameters

MB = 2**20
DEFAULT_FEATURES = tuple(range(32, 321, 32))  # seed 002 Fig. 7: 32 .. 320
DEFAULT_RESOLUTIONS = (64, 128)
COLUMNS = (
    "network", "resolution", "features", "norm", "params", "param_mb", "activation_mb_per_image",
    "mem_per_image_mb", "device", "method",
)


def _storage_key(t: torch.Tensor) -> int:
    # The StorageImpl address identifies a storage on every device, meta included (where data_ptr is 0).
    return t.untyped_storage()._cdata


def saved_tensor_bytes(model: nn.Module, inputs: torch.Tensor) -> int:
    """Bytes autograd keeps for backward in one forward of `model`, each storage once, weights excluded."""
    weights = {_storage_key(t) for t in list(model.parameters()) + list(model.buffers())}
    sizes: dict[int, int] = {}
    alive: list[torch.Tensor] = []  # hold references so no storage address is reused during the forward

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key not in weights:
            sizes[key] = t.untyped_storage().nbytes()
        alive.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(inputs)
    return sum(sizes.values())


def _tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _build(network: str, cfg: TrialConfig, device: torch.device) -> tuple[nn.Module, torch.Tensor]:
    with torch.device(device):
        model = build_generator(cfg) if network == "G" else build_discriminator(cfg)
    model.train()  # BatchNorm saves batch statistics only in training mode, which is what we measure
    shape = (cfg.batch_size, cfg.latent_dim) if network == "G" else (cfg.batch_size, 1, cfg.resolution, cfg.resolution)
    return model, torch.randn(shape, device=device)


def _measure_saved(network: str, cfg: TrialConfig) -> tuple[int, float, float]:
    model, x = _build(network, cfg, torch.device("meta"))
    params = count_parameters(model)
    weights = 2 * _tensor_bytes(model.parameters()) + _tensor_bytes(model.buffers())  # params + grads + buffers
    activations = saved_tensor_bytes(model, x)
    return params, activations / cfg.batch_size, (activations + weights) / cfg.batch_size


def _train_step(network: str, model: nn.Module, x: torch.Tensor) -> None:
    out = model(x)
    (out if network == "G" else out[0]).float().sum().backward()


def _measure_cuda(network: str, cfg: TrialConfig, device: torch.device) -> tuple[int, float, float]:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    model, x = _build(network, cfg, device)
    params = count_parameters(model)
    _train_step(network, model, x)  # warm-up: allocates the gradients (kept, zeroed) and lazy library state
    model.zero_grad(set_to_none=False)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    _train_step(network, model, x)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    del model, x
    torch.cuda.empty_cache()  # the next (larger) network should not inherit this one's cached blocks
    return params, (peak - start) / cfg.batch_size, (peak - before) / cfg.batch_size


def measure_memory(
    resolutions: Iterable[int] = DEFAULT_RESOLUTIONS,
    features: Iterable[int] = DEFAULT_FEATURES,
    norms: Iterable[str] = ("batch", "none"),
    batch_size: int = 8,
    device: str = "cpu",
    base: TrialConfig | None = None,
) -> pd.DataFrame:
    """One row per (network, resolution, features, norm); see the module docstring for the methods.

    Args:
        resolutions, features, norms: the grid; `features` sets g_features and d_features, `norms`
            sets g_norm and d_norm together.
        batch_size: images per measured step; memory is reported per image.
        device: "cpu" (saved-tensor accounting), "cuda" (allocator peak) or "auto".
        base: the other settings (activations, kernel, upsampling...); default TrialConfig() = DCGAN.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA device is visible; use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device={device!r} is not allowed; allowed values: auto, cpu, cuda")
    base = base or TrialConfig()
    rows = []
    for resolution in resolutions:
        for feat in features:
            for norm in norms:
                # Validates every value (resolution, features range, norm name) with the config's messages.
                cfg = base.replace(
                    resolution=resolution, g_features=feat, d_features=feat, g_norm=norm, d_norm=norm,
                    batch_size=batch_size, loss="bce" if norm == "batch" and base.loss == "wgan_gp" else base.loss,
                )
                for network in ("G", "D"):
                    if device == "cuda":
                        params, act, mem = _measure_cuda(network, cfg, torch.device("cuda"))
                        method = "cuda_max_allocated"
                    else:
                        params, act, mem = _measure_saved(network, cfg)
                        method = "saved_tensors"
                    rows.append((network, resolution, feat, norm, params, params * 4 / MB, act / MB, mem / MB,
                                 device, method))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def norm_savings(df: pd.DataFrame) -> pd.DataFrame:
    """Per (network, resolution, features): memory with BatchNorm, without, and % saved by removing it."""
    keys = ["network", "resolution", "features"]
    wide = df[df["norm"].isin(["batch", "none"])].pivot_table(
        index=keys, columns="norm", values="mem_per_image_mb", aggfunc="first"
    )
    if not {"batch", "none"} <= set(wide.columns):
        return pd.DataFrame(columns=keys + ["mem_batch_mb", "mem_none_mb", "saving_pct"])
    out = wide.rename(columns={"batch": "mem_batch_mb", "none": "mem_none_mb"}).reset_index()
    out["saving_pct"] = 100.0 * (out["mem_batch_mb"] - out["mem_none_mb"]) / out["mem_batch_mb"]
    return out[keys + ["mem_batch_mb", "mem_none_mb", "saving_pct"]]


def _check_out(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"--out {str(path)!r} must end in .parquet or .csv")
    return path


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write .parquet or .csv atomically (temp file + rename), so a crash never leaves half a table."""
    path = _check_out(path)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False) if path.suffix == ".parquet" else df.to_csv(tmp, index=False)
    return path


# ----------------------------------------------------------------------------------------
# CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resolutions", type=int, nargs="+", default=list(DEFAULT_RESOLUTIONS),
                        help=f"image sides in px (allowed: {', '.join(map(str, RESOLUTIONS))}; default: 64 128)")
    parser.add_argument("--features", type=int, nargs="+", default=list(DEFAULT_FEATURES),
                        help="base feature maps of G and D, 16..512 (default: 32 64 ... 320, seed 002 Fig. 7)")
    parser.add_argument("--norms", nargs="+", default=["batch", "none"], choices=NORMS,
                        help="normalisations compared (default: batch none, seed 002 Fig. 8)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per measured step (default: 8)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="cuda: allocator peak; cpu: saved-tensor accounting (default: auto)")
    parser.add_argument("--out", default=MEMORY_FILE, help="output table, .parquet or .csv (default: %(default)s)")


def main(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size} must be >= 1")
    _check_out(args.out)  # fail before measuring, not after
    df = measure_memory(args.resolutions, args.features, args.norms, args.batch_size, args.device)
    path = write_table(df, args.out)
    with pd.option_context("display.width", 160, "display.max_rows", 1000, "display.float_format", "{:.3f}".format):
        print(df.to_string(index=False))
        savings = norm_savings(df)
        if len(savings):
            print("\nRemoving BatchNorm (seed 002 reports 1.2-7% saved):")
            print(savings.to_string(index=False))
    print(f"\nwrote {path} ({len(df)} rows, method {df['method'].iloc[0] if len(df) else '-'})")
    return 0
