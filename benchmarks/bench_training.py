"""Training throughput: our trial loop vs the textbook pytorch/examples DCGAN loop, in one run.

Default mode (the CPU comparison of the README's benchmark table) prints, all measured now:
  * fp32 matmul GFLOP/s (2048^3), the machine's practical peak;
  * the textbook loop (pytorch/examples dcgan/main.py: ImageFolder of JPEGs decoded per item by a
    DataLoader every epoch) in images/s and achieved GFLOP/s;
  * our loop (trainers.loop.train) on the same model (64 px, base 64, batch 64, z 100, Adam, BCE),
    fed from the cached data path and from an in-memory tensor, and the ratios.
Usage: python3 benchmarks/bench_training.py [--data ../shared/data/chest_xray] [--iters 12]

Variant mode (`--variants`, used by benchmarks/device_check.py on a GPU) measures one training step
(`trainers.loop.gan_step`) on pre-made device tensors — no data path, no bookkeeping — for each of
  fp32           eager fp32 (on CUDA, cuDNN convolutions use TF32: torch's default)
  bf16           bf16 autocast (what `amp=true` does in a trial)
  channels_last  bf16 autocast + channels_last models
  compile        bf16 + channels_last + torch.compile of G and D
  cudagraphs     the same with mode="reduce-overhead" (CUDA graphs through torch.compile)
  textbook       the textbook loop above on the same device (JPEG DataLoader, as pytorch/examples)
and prints images/s, achieved TFLOP/s (matmul/conv FLOPs counted by torch's FlopCounterMode) and the
fraction of a given peak; `--json FILE` appends one JSON object per variant as it finishes.
Usage: python3 benchmarks/bench_training.py --variants fp32,bf16,channels_last,textbook --device cuda \
           [--preset dcgan] [--batch 128] [--features 64] [--iters 30] [--peak-tflops 989] [--json FILE]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainers import metric_keys as K  # noqa: E402
from trainers.config import TrialConfig  # noqa: E402
from trainers.loop import train  # noqa: E402

# name -> (bf16 autocast, channels_last, torch.compile mode or None)
VARIANTS: dict[str, tuple[bool, bool, str | None]] = {
    "fp32": (False, False, None),
    "bf16": (True, False, None),
    "channels_last": (True, True, None),
    "compile": (True, True, "default"),
    "cudagraphs": (True, True, "reduce-overhead"),
}
VARIANT_LABELS = {
    "fp32": "fp32 eager", "bf16": "bf16 autocast", "channels_last": "bf16 + channels_last",
    "compile": "bf16 + channels_last + torch.compile",
    "cudagraphs": "bf16 + channels_last + compile(reduce-overhead: CUDA graphs)",
    "textbook": "textbook pytorch/examples loop",
}


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


# --- the textbook loop, as in pytorch/examples dcgan/main.py (nc=1)
class TextbookG(nn.Module):
    def __init__(self, nz=100, ngf=64, nc=1):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, z):
        return self.main(z)


class TextbookD(nn.Module):
    def __init__(self, ndf=64, nc=1):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.main(x).view(-1)


def textbook_step_flops(batch: int, features: int = 64) -> float:
    """FLOPs of one textbook D+G iteration, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    G, D, crit = TextbookG(ngf=features), TextbookD(ndf=features), nn.BCELoss()
    real = torch.randn(batch, 1, 64, 64)
    with FlopCounterMode(display=False) as fc:
        _textbook_iteration(G, D, crit, real, *_opts(G, D))
    return float(fc.get_total_flops())


def _opts(G, D):
    return (torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999)),
            torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999)))


def _textbook_iteration(G, D, crit, real, opt_d, opt_g):
    b, device = real.shape[0], real.device
    # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
    D.zero_grad()
    err_real = crit(D(real), torch.ones(b, device=device))
    err_real.backward()
    fake = G(torch.randn(b, 100, 1, 1, device=device))
    err_fake = crit(D(fake.detach()), torch.zeros(b, device=device))
    err_fake.backward()
    opt_d.step()
    # (2) Update G network: maximize log(D(G(z)))
    G.zero_grad()
    err_g = crit(D(fake), torch.ones(b, device=device))
    err_g.backward()
    opt_g.step()


def textbook_images_per_s(data: Path, iters: int, batch: int, device: str | torch.device = "cpu",
                          features: int = 64, workers: int = 2) -> float:
    """The pytorch/examples loop: ImageFolder decoded per item by `workers` DataLoader workers, `.to(device)`."""
    import torchvision.datasets as dset
    import torchvision.transforms as T

    device = torch.device(device)
    ds = dset.ImageFolder(str(data / "train"), transform=T.Compose([
        T.Grayscale(), T.Resize(64), T.CenterCrop(64), T.ToTensor(), T.Normalize((0.5,), (0.5,))]))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    G, D, crit = TextbookG(ngf=features).to(device), TextbookD(ndf=features).to(device), nn.BCELoss()
    opt_d, opt_g = _opts(G, D)

    def batches():
        while True:  # a new epoch when the loader is exhausted (small trees)
            for x, _ in loader:
                yield x.to(device)

    it = batches()
    _textbook_iteration(G, D, crit, next(it), opt_d, opt_g)  # warm-up (worker start, allocator, cuDNN)
    _sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        _textbook_iteration(G, D, crit, next(it), opt_d, opt_g)
    _sync(device)
    return iters * batch / (time.perf_counter() - t)


def our_images_per_s(data: str, iters: int, batch: int, in_memory: bool) -> float:
    cfg = TrialConfig(name="bench", data=data, resolution=64, g_features=64, d_features=64, latent_dim=100,
                      batch_size=batch, iterations=iters + 2, report_every=iters + 2, checkpoint_every=0,
                      eval_at_end=False, detect_divergence=False, sample_grid=16, seed=0)
    train_set = None
    if in_memory:
        from trainers.data import ImageSet

        rng = np.random.default_rng(0)
        train_set = ImageSet(images=rng.integers(0, 256, (5216, 64, 64), dtype=np.uint8),
                             labels=rng.integers(0, 2, 5216), class_names=("NORMAL", "PNEUMONIA"),
                             fingerprint="bench-in-memory", patient_ids=None, skipped=0)
    with tempfile.TemporaryDirectory() as tmp:
        summary = train(cfg, tmp, train_set=train_set)
    return summary[K.IMAGES_PER_S]


# ----------------------------------------------------------------------------------------
# Variant mode: one training step on pre-made device tensors.
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_train_set(cfg: TrialConfig, n: int = 2048, seed: int = 0) -> SimpleNamespace:
    """What `Batches` needs (uint8 images, labels), random: values do not change the cost."""
    rng = np.random.default_rng(seed)
    return SimpleNamespace(images=rng.integers(0, 256, (n, cfg.resolution, cfg.resolution), dtype=np.uint8),
                           labels=rng.integers(0, cfg.num_classes, n))


class FixedBatches:
    """Stands in for `trainers.loop.Batches` with one pre-made real batch and latent draw on the device,
    so a measured step is pure compute (the data path is measured on its own: `data_images_per_s`)."""

    def __init__(self, batches: Any):
        self.device, self.conditional, self.gen = batches.device, batches.conditional, batches.gen
        self._real, self._noise = batches.real(), batches.noise()

    def real(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._real

    def noise(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._noise


def data_images_per_s(cfg: TrialConfig, train_set: Any, device: str | torch.device, iters: int = 50) -> float:
    """The loop's data path alone: `Batches.real()` and `.noise()` per D step, synced at the end."""
    from trainers.loop import Batches

    device = torch.device(device)
    batches = Batches(train_set, cfg, torch.Generator().manual_seed(cfg.seed), device)
    for _ in range(3):
        batches.real(), batches.noise()
    _sync(device)
    t = time.perf_counter()
    for _ in range(iters * cfg.d_steps):
        batches.real(), batches.noise()
    _sync(device)
    return iters * cfg.d_steps * cfg.batch_size / (time.perf_counter() - t)


def step_flops(cfg: TrialConfig) -> float:
    """FLOPs of one iteration (d_steps D updates + one G update) at cfg.batch_size (study.cost's count)."""
    from study.cost import step_flops as count

    return float(count(cfg))


def measure_compute(cfg: TrialConfig, device: str | torch.device, *, amp: bool = False, channels_last: bool = False,
                    compile_mode: str | None = None, compile_backend: str = "inductor", iters: int = 20,
                    warmup: int = 3, train_set: Any = None, flops: float | None = None) -> dict[str, Any]:
    """Images/s and achieved TFLOP/s of `gan_step` for cfg on `device` on pre-made device tensors.

    images/s counts real images consumed by D (iterations x d_steps x batch), as the loop's images_per_s.
    """
    from trainers.losses import GanLoss
    from trainers.loop import Batches, gan_step
    from trainers.models import build_discriminator, build_generator
    from trainers.optimizers import build_optimizers

    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(cfg.seed)
    batches = FixedBatches(Batches(train_set if train_set is not None else random_train_set(cfg), cfg,
                                   torch.Generator().manual_seed(cfg.seed), device))
    G, D = build_generator(cfg).to(device), build_discriminator(cfg).to(device)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_g, opt_d = build_optimizers(cfg, G, D)
    if compile_mode:
        kw = {"backend": compile_backend}
        if compile_backend == "inductor":
            kw["mode"] = compile_mode
        G, D = torch.compile(G, **kw), torch.compile(D, **kw)
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    loss_fn = GanLoss(cfg)
    mark = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
    graphs = compile_mode == "reduce-overhead" and compile_backend == "inductor" and device.type == "cuda"

    def step():
        if graphs and mark is not None:
            mark()
        return gan_step(G, D, opt_g, opt_d, loss_fn, batches, cfg, ctx)

    t = time.perf_counter()
    for _ in range(max(warmup, 3 if compile_mode else 1)):
        d_sig, _ = step()
    _sync(device)
    warmup_s = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(iters):
        d_sig, g_sig = step()
    _sync(device)
    elapsed = time.perf_counter() - t
    finite = bool(torch.isfinite(d_sig).all() and torch.isfinite(g_sig).all())
    flops = step_flops(cfg) if flops is None else flops
    images = iters * cfg.d_steps * cfg.batch_size
    return {
        "images_per_s": images / elapsed, "step_ms": 1e3 * elapsed / iters, "warmup_s": warmup_s,
        "flops_per_image": flops / (cfg.d_steps * cfg.batch_size), "tflops": flops * iters / elapsed / 1e12,
        "finite": finite,
        "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }


def phantom_image_folder(root: Path, n: int = 256, resolution: int = 64) -> Path:
    """A Kaggle-layout tree of phantom PNGs (`root/train/<CLASS>/*.png`) for the textbook loop without real data."""
    from PIL import Image

    from trainers.data import load_split

    ds = load_split("phantom", "train", resolution, limit=n)
    for i, (img, label) in enumerate(zip(ds.images, ds.labels)):
        d = root / "train" / ds.class_names[int(label)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"phantom_{i:05d}.png")
    return root


def bench_config(args: argparse.Namespace) -> TrialConfig:
    from trainers.presets import get_preset

    over = {"batch_size": args.batch, "g_features": args.features, "d_features": args.features,
            "resolution": args.resolution, "device": "cpu" if args.device == "cpu" else "auto"}
    return get_preset(args.preset, over)


def run_variants(args: argparse.Namespace) -> int:
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    cfg = bench_config(args)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS and v != "textbook"]
    if unknown:
        sys.exit(f"bench_training: unknown variant(s) {unknown}; allowed: {', '.join([*VARIANTS, 'textbook'])}")
    peak = args.peak_tflops
    flops = step_flops(cfg)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), torch "
          f"{torch.__version__}; preset {args.preset} {cfg.resolution} px, features {args.features}, batch "
          f"{cfg.batch_size}: {flops / cfg.batch_size / cfg.d_steps / 1e9:.3f} GFLOP/image")
    failed = 0
    for name in names:
        rec: dict[str, Any] = {"variant": name, "label": VARIANT_LABELS[name], "device": str(device),
                               "preset": args.preset, "batch": cfg.batch_size, "features": args.features,
                               "resolution": cfg.resolution}
        t = time.perf_counter()
        try:
            if name == "textbook":
                data = Path(args.data) if args.data else None
                with tempfile.TemporaryDirectory() as tmp:
                    if data is None or not (data / "train").is_dir():
                        data = phantom_image_folder(Path(tmp), n=args.textbook_images)
                        rec["textbook_data"] = f"phantom PNGs ({args.textbook_images} at 64 px)"
                    else:
                        rec["textbook_data"] = str(data)
                    ips = textbook_images_per_s(data, args.textbook_iters or args.iters, cfg.batch_size, device,
                                                args.features, workers=args.workers)
                fpi = textbook_step_flops(cfg.batch_size, args.features) / cfg.batch_size
                rec.update(images_per_s=ips, flops_per_image=fpi, tflops=ips * fpi / 1e12, finite=True)
            else:
                amp, cl, mode = VARIANTS[name]
                if device.type == "cuda":
                    rec["tf32_conv"] = bool(torch.backends.cudnn.allow_tf32)
                rec.update(amp=amp, channels_last=cl, compile=mode,
                           compile_backend=args.compile_backend if mode else None)
                rec.update(measure_compute(cfg, device, amp=amp, channels_last=cl, compile_mode=mode,
                                           compile_backend=args.compile_backend, iters=args.iters,
                                           warmup=args.warmup, flops=flops))
            rec["status"] = "ok" if rec.get("finite", True) else "failed"
            if rec["status"] != "ok":
                rec["error"] = "non-finite losses"
        except Exception as exc:  # noqa: BLE001 - one variant's failure is a result, the others still run
            failed += 1
            lines = str(exc).strip().splitlines()
            rec["status"], rec["error"] = "failed", f"{type(exc).__name__}: {lines[-1] if lines else ''}"
            traceback.print_exc()
        rec["seconds"] = time.perf_counter() - t
        rec["peak_tflops"] = peak
        if rec.get("tflops") is not None and peak:
            rec["fraction_of_peak"] = rec["tflops"] / peak
        if rec["status"] == "ok":
            frac = f"  ({rec['fraction_of_peak']:.1%} of {peak:g} TFLOP/s)" if peak else ""
            print(f"{VARIANT_LABELS[name]:60s} {rec['images_per_s']:9.1f} images/s  {rec['tflops']:8.3f} TFLOP/s{frac}")
        else:
            print(f"{VARIANT_LABELS[name]:60s} FAILED: {rec['error']}")
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(rec, default=_plain) + "\n")
    return 1 if failed else 0


def _plain(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    ap.add_argument("--iters", type=int, default=12)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--variants", default="", help="comma list of " + ", ".join([*VARIANTS, "textbook"]) +
                    ": measure these on --device instead of the default CPU comparison")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="variant mode only")
    ap.add_argument("--preset", default="dcgan", help="variant mode: the model (default dcgan = the textbook's)")
    ap.add_argument("--features", type=int, default=64, help="variant mode: base feature maps of G and D")
    ap.add_argument("--resolution", type=int, default=64, help="variant mode: image side (textbook: always 64)")
    ap.add_argument("--warmup", type=int, default=3, help="variant mode: untimed steps first")
    ap.add_argument("--compile-backend", default="inductor", help="variant mode: torch.compile backend "
                    "(eager = dynamo tracing only, for CPU dry runs)")
    ap.add_argument("--workers", type=int, default=2, help="textbook DataLoader workers (pytorch/examples: 2)")
    ap.add_argument("--textbook-images", type=int, default=256, help="phantom PNGs when --data has no train/")
    ap.add_argument("--textbook-iters", type=int, default=0, help="timed textbook iterations (default: --iters)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the card's peak, for the fraction column")
    ap.add_argument("--json", default="", help="variant mode: append one JSON object per variant to this file")
    args = ap.parse_args()
    if args.variants:
        sys.exit(run_variants(args))
    data = Path(args.data)
    if not (data / "train").is_dir():
        sys.exit(f"bench_training: no Kaggle-layout data at {data}; pass --data PATH")
    from trainers.data import load_split

    load_split(str(data), "train", 64)  # fill the cache so our loop measures training, not decoding
    peak = matmul_gflops()
    flops_per_image = textbook_step_flops(args.batch) / args.batch
    text = textbook_images_per_s(data, args.iters, args.batch)
    ours_cached = our_images_per_s(str(data), args.iters, args.batch, in_memory=False)
    ours_mem = our_images_per_s(str(data), args.iters, args.batch, in_memory=True)
    print(f"threads {torch.get_num_threads()}  fp32 matmul 2048^3: {peak:.1f} GFLOP/s")
    print(f"training FLOPs per image (D+G step, FlopCounterMode): {flops_per_image / 1e9:.2f} GFLOP")
    for name, ips in (("textbook loop (JPEG DataLoader)", text), ("our loop, cached data path", ours_cached),
                      ("our loop, in-memory tensor", ours_mem)):
        gf = ips * flops_per_image / 1e9
        print(f"{name:34s} {ips:7.1f} images/s  {gf:6.1f} GFLOP/s  ({gf / peak:.0%} of matmul)")
    print(f"ratio our loop / textbook loop: {ours_cached / text:.2f}  (target >= 1.0)")
    print(f"ratio cached data path / in-memory: {ours_cached / ours_mem:.3f}  (target within 0.95..1.05)")


if __name__ == "__main__":
    main()
