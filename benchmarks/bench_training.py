"""Training throughput: our trial loop vs the textbook pytorch/examples DCGAN loop, in one run.

Prints, all measured now on this machine:
  * fp32 matmul GFLOP/s (2048^3), the machine's practical peak;
  * the textbook loop (pytorch/examples dcgan/main.py: ImageFolder of JPEGs decoded per item by a
    DataLoader every epoch) in images/s and achieved GFLOP/s;
  * our loop (trainers.loop.train) on the same model (64 px, base 64, batch 64, z 100, Adam, BCE),
    fed from the cached data path and from an in-memory tensor, and the ratios.
Usage: python3 benchmarks/bench_training.py [--data ../shared/data/chest_xray] [--iters 12]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainers import metric_keys as K  # noqa: E402
from trainers.config import TrialConfig  # noqa: E402
from trainers.loop import train  # noqa: E402


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


def textbook_step_flops(batch: int) -> float:
    """FLOPs of one textbook D+G iteration, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    G, D, crit = TextbookG(), TextbookD(), nn.BCELoss()
    real = torch.randn(batch, 1, 64, 64)
    with FlopCounterMode(display=False) as fc:
        _textbook_iteration(G, D, crit, real, *_opts(G, D))
    return float(fc.get_total_flops())


def _opts(G, D):
    return (torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999)),
            torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999)))


def _textbook_iteration(G, D, crit, real, opt_d, opt_g):
    b = real.shape[0]
    # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
    D.zero_grad()
    err_real = crit(D(real), torch.ones(b))
    err_real.backward()
    fake = G(torch.randn(b, 100, 1, 1))
    err_fake = crit(D(fake.detach()), torch.zeros(b))
    err_fake.backward()
    opt_d.step()
    # (2) Update G network: maximize log(D(G(z)))
    G.zero_grad()
    err_g = crit(D(fake), torch.ones(b))
    err_g.backward()
    opt_g.step()


def textbook_images_per_s(data: Path, iters: int, batch: int) -> float:
    import torchvision.datasets as dset
    import torchvision.transforms as T

    ds = dset.ImageFolder(str(data / "train"), transform=T.Compose([
        T.Grayscale(), T.Resize(64), T.CenterCrop(64), T.ToTensor(), T.Normalize((0.5,), (0.5,))]))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=2, drop_last=True)
    G, D, crit = TextbookG(), TextbookD(), nn.BCELoss()
    opt_d, opt_g = _opts(G, D)
    it = iter(loader)
    _textbook_iteration(G, D, crit, next(it)[0], opt_d, opt_g)  # warm-up (worker start, allocator)
    t = time.perf_counter()
    for _ in range(iters):
        _textbook_iteration(G, D, crit, next(it)[0], opt_d, opt_g)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    ap.add_argument("--iters", type=int, default=12)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
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
