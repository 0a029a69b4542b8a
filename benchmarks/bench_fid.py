"""FID cost with the domain extractor, and agreement with torchmetrics, measured in one run.

Prints: the time of one FID evaluation (2,048 generated 64 px samples, real statistics cached;
target < 15 s on 2 CPU cores) against recomputing the real statistics every time; and our FID
vs torchmetrics' FrechetInceptionDistance on the same features and images (relative difference,
time ratio).
Usage: python3 benchmarks/bench_fid.py [--data ../shared/data/chest_xray] [--n 2048]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainers import metric_keys as K  # noqa: E402
from trainers.config import TrialConfig  # noqa: E402
from trainers.data import load_split  # noqa: E402
from trainers.evaluation import Evaluator, sample_images  # noqa: E402
from trainers.evaluation.fid import fid_from_features  # noqa: E402
from trainers.models import build_generator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    ap.add_argument("--n", type=int, default=2048)
    args = ap.parse_args()
    if not Path(args.data).exists():
        sys.exit(f"bench_fid: no data at {args.data}; pass --data PATH")
    cfg = TrialConfig(data=args.data, resolution=64, eval_samples=args.n)
    torch.manual_seed(0)
    G = build_generator(cfg)
    with tempfile.TemporaryDirectory() as cache:
        train = load_split(args.data, "train", 64, cache_dir=cache)
        t = time.perf_counter()
        ev = Evaluator(cfg, train, cache_dir=cache)
        ev.extractor
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        ev.real_features()
        real_s = time.perf_counter() - t
        t = time.perf_counter()
        m = ev.evaluate(G)
        cached_s = time.perf_counter() - t
        t = time.perf_counter()
        fresh = Evaluator(cfg, train, cache_dir=tempfile.mkdtemp(dir=cache))
        fresh._extractor = ev.extractor  # same trained extractor, empty statistics cache
        fresh.evaluate(G)
        uncached_s = time.perf_counter() - t
        # torchmetrics on the same features.
        from torchmetrics.image.fid import FrechetInceptionDistance

        class Feat(torch.nn.Module):
            num_features = ev.extractor.dim

            def forward(self, x):
                return torch.from_numpy(ev.extractor(x.float())).double()

        real_img = train.select(torch.arange(args.n).numpy(), "bench").to_tensor()
        fake_img = sample_images(G, args.n, cfg, "cpu")
        t = time.perf_counter()
        ours = fid_from_features(ev.extractor(real_img), ev.extractor(fake_img))
        ours_s = time.perf_counter() - t
        tm = FrechetInceptionDistance(feature=Feat(), reset_real_features=True)
        t = time.perf_counter()
        tm.update(real_img, real=True)
        tm.update(fake_img, real=False)
        theirs = float(tm.compute())
        tm_s = time.perf_counter() - t
    print(f"domain extractor {ev.extractor.name}: trained in {train_s:.1f} s (once per dataset and resolution)")
    print(f"real statistics for N={args.n}: {real_s:.1f} s (once, then cached)")
    print(f"FID+KID+P/R+diversity+memorisation of {args.n} samples, real stats cached: {cached_s:.1f} s (target < 15 s)"
          f"  FID={m[K.FID]:.3f}")
    print(f"same with real statistics recomputed: {uncached_s:.1f} s  ratio {uncached_s / cached_s:.2f}x")
    print(f"our FID {ours:.6f} vs torchmetrics {theirs:.6f}: relative difference {abs(ours - theirs) / theirs:.2e} "
          f"(target < 1e-3); time ratio torchmetrics/ours {tm_s / ours_s:.2f}")


if __name__ == "__main__":
    main()
