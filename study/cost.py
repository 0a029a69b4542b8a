"""Compute cost of a study before it runs: FLOPs counted by torch on one real training step.

`gan-study reproduce --plan` uses it to size a study; the hours are estimates at an assumed achieved
throughput (a small DCGAN never reaches a GPU's peak), to be replaced by the device check's measurement.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from trainers.config import TrialConfig

ASSUMED_GPU_TFLOPS = 100.0  # ~10% of an H100's bf16 dense peak: small convolutions, launch-bound
ASSUMED_CPU_GFLOPS = 60.0  # per core, the 2-core development machine's DCGAN loop (bench_training.py)
INCEPTION_GFLOP = 11.4  # 5.7 G multiply-adds per 299 px image (../shared/REFERENCE.md)
_PROBE_BATCH = 2


class _Probe:
    """A stand-in training split for counting FLOPs (values do not change the count)."""

    def __init__(self, cfg: TrialConfig):
        n = max(_PROBE_BATCH * cfg.d_steps, 4)
        self.images = np.zeros((n, cfg.resolution, cfg.resolution), np.uint8)
        self.labels = np.arange(n) % max(cfg.num_classes, 1)


def step_flops(cfg: TrialConfig) -> float:
    """FLOPs of one training iteration (d_steps D updates and one G update) at cfg.batch_size."""
    from torch.utils.flop_counter import FlopCounterMode

    from trainers.losses import GanLoss
    from trainers.loop import Batches, _null, gan_step
    from trainers.models import build_discriminator, build_generator
    from trainers.optimizers import build_optimizers

    probe = TrialConfig.from_dict({**cfg.to_dict(), "batch_size": _PROBE_BATCH, "data_limit": 0})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        G, D = build_generator(probe), build_discriminator(probe)
        opt_g, opt_d = build_optimizers(probe, G, D)
        batches = Batches(_Probe(probe), probe, torch.Generator().manual_seed(0), torch.device("cpu"))
        counter = FlopCounterMode(display=False)
        counter.mod_tracker = _GlobalOnly()
        with counter:
            gan_step(G, D, opt_g, opt_d, GanLoss(probe), batches, probe, _null())
    return counter.get_total_flops() * cfg.batch_size / _PROBE_BATCH


class _GlobalOnly:
    """Stands in for FlopCounterMode's ModuleTracker, whose module hooks make torch.autograd.grad fail ("A leaf node
    was passed to _will_engine_execute_node", pytorch/pytorch#131753) in the gradient penalties of R1 and WGAN-GP.
    Only the global total is used here, so every FLOP is booked under "Global" and no hook is installed."""

    parents = frozenset({"Global"})

    def __enter__(self) -> "_GlobalOnly":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def sample_flops(cfg: TrialConfig) -> float:
    """FLOPs to generate one image and extract its features (cfg.extractor)."""
    from torch.utils.flop_counter import FlopCounterMode

    from trainers.evaluation.feature_domain import DomainCNN
    from trainers.models import build_generator

    with torch.random.fork_rng(devices=[]), torch.no_grad():
        G = build_generator(cfg).eval()
        z = torch.zeros(1, cfg.latent_dim)
        y = torch.zeros(1, dtype=torch.long) if cfg.conditioning != "none" else None
        with FlopCounterMode(display=False) as counter:
            x = G(z, y)
            if cfg.extractor == "domain":
                DomainCNN(resolution=cfg.resolution).eval().features(x)
    extra = INCEPTION_GFLOP * 1e9 if cfg.extractor == "inception" else 0.0
    return counter.get_total_flops() + extra


def evaluations(cfg: TrialConfig, device_type: str) -> int:
    """FID/KID evaluations one trial makes."""
    reports = math.ceil(cfg.iterations / cfg.report_every)
    cadence = cfg.fid_cadence(device_type)
    n = reports // cadence if cadence else 0
    return n + int(cfg.eval_at_end and (not cadence or reports % cadence != 0))


def _per_structure(count: Any) -> Any:
    """`count(cfg)` memoised over configs that differ only in seed, name or training length."""
    seen: dict[tuple, float] = {}

    def cached(cfg: TrialConfig) -> float:
        key = tuple(sorted((k, repr(v)) for k, v in cfg.to_dict().items()
                           if k not in ("seed", "name", "iterations", "report_every", "data")))
        if key not in seen:
            seen[key] = count(cfg)
        return seen[key]

    return cached


def estimate_cost(configs: list[TrialConfig], device_type: str = "cuda") -> dict[str, Any]:
    """Totals over a study's trial configs: images, TFLOP of training and evaluation, and hours."""
    # Seeds (and other keys that change no shape) repeat a configuration: count each structure once.
    step, sample = _per_structure(step_flops), _per_structure(sample_flops)
    train = sum(step(c) * c.iterations for c in configs)
    n_eval = [evaluations(c, device_type) for c in configs]
    evals = sum(n * c.eval_samples * sample(c) for n, c in zip(n_eval, configs))
    total = train + evals
    return {
        "images": sum(c.iterations * c.batch_size * c.d_steps for c in configs),
        "train_tflop": train / 1e12, "eval_tflop": evals / 1e12, "evaluations": sum(n_eval),
        "gpu_hours": total / (ASSUMED_GPU_TFLOPS * 1e12) / 3600, "assumed_tflops": ASSUMED_GPU_TFLOPS,
        "cpu_hours": total / (ASSUMED_CPU_GFLOPS * 1e9) / 3600, "assumed_cpu_gflops": ASSUMED_CPU_GFLOPS,
    }
