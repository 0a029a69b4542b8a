"""What issue 23's metrics add to a trial's evaluation, as a ratio to the FID computation they extend.

At every evaluation (cheap, on features already computed): density/coverage beside precision/recall, FID against
the held-out test split beside the training split at the same n, and the held-out calibrated memorisation
shares; once per dataset and extractor, the held-out images' features (then cached). Not at evaluations but in
`gan-study rescore`: the memorisation shares in pixels and the nearest synthetic/training pairs.

"The FID computation" = sampling N images + their features + the Frechet distance (real statistics cached); the
whole `Evaluator.evaluate` before this issue (FID, KID, precision/recall, diversity, memorisation ratio) is printed
beside it. Median of --repeats timings each.
Usage: python3 benchmarks/bench_eval_cost.py [--data ../shared/data/pneumoniamnist.npz] [--resolution 32] [--n 1024]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainers.config import TrialConfig  # noqa: E402
from trainers.evaluation import Evaluator, sample_images  # noqa: E402
from trainers.evaluation.diversity import diversity  # noqa: E402
from trainers.evaluation.extractors import ExtractorChoice  # noqa: E402
from trainers.evaluation.fid import fid_from_features  # noqa: E402
from trainers.evaluation.heldout import heldout_metrics  # noqa: E402
from trainers.evaluation.kid import kid  # noqa: E402
from trainers.evaluation.memorisation import memorisation_audit  # noqa: E402
from trainers.evaluation.prc import density_coverage, precision_recall  # noqa: E402
from trainers.evaluation.rescore import Rescorer  # noqa: E402
from trainers.models import build_generator  # noqa: E402


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "pneumoniamnist.npz"))
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.data != "phantom" and not Path(args.data).exists():
        sys.exit(f"bench_eval_cost: no data at {args.data}; pass --data PATH (or phantom)")
    cfg = TrialConfig(data=args.data, resolution=args.resolution, eval_samples=args.n)
    torch.manual_seed(0)
    G = build_generator(cfg).eval()
    with tempfile.TemporaryDirectory() as cache:
        ev = Evaluator(cfg, cache_dir=cache)
        real, _ = ev.real_features()  # trains the extractor and caches the real statistics (once per dataset)
        t = time.perf_counter()
        heldout = ev.heldout_features()  # once per dataset and extractor, then cached on disk
        heldout_once = time.perf_counter() - t
        ex = ev.extractor
        images = sample_images(G, ev.n, cfg, "cpu")
        fake = ex(images)

        def fid_computation():
            fid_from_features(real, ex(sample_images(G, ev.n, cfg, "cpu")))

        def before():  # Evaluator.evaluate's metrics before issue 23, from the same images
            fid_computation()
            kid(real, fake), precision_recall(real, fake), diversity(images), memorisation_audit(real, fake)

        fid_s, before_s = timed(fid_computation, args.repeats), timed(before, args.repeats)
        dc_s = timed(lambda: density_coverage(real, fake), args.repeats)
        held_s = timed(lambda: heldout_metrics(real, fake, heldout), args.repeats)
        whole_s = timed(lambda: ev.evaluate(G), args.repeats)
        r = Rescorer(cfg, ev.n, ExtractorChoice("domain"), cache_dir=cache, reference=ev.reference)
        pixel_s = timed(lambda: r.pixel_memorisation(images), args.repeats)
        pairs_s = timed(lambda: r.pairs(images), args.repeats)
    added = dc_s + held_s
    print(f"{ex.name}, N = {ev.n}, {args.resolution} px, held-out n = {len(heldout)}, data {args.data}")
    print(f"the FID computation (sample + features + Frechet distance): {fid_s:.2f} s; the whole evaluation before "
          f"issue 23 (FID, KID, P/R, diversity, memorisation ratio): {before_s:.2f} s; after: {whole_s:.2f} s")
    print(f"added at every evaluation: density/coverage {dc_s:.3f} s + held-out FID and memorisation shares "
          f"{held_s:.3f} s = {added:.3f} s = {added / fid_s:.2f}x the FID computation "
          f"({added / before_s:.2f}x the evaluation before)")
    print(f"once per dataset and extractor: held-out features {heldout_once:.2f} s = {heldout_once / fid_s:.2f}x")
    print(f"gan-study rescore only: pixel memorisation shares {pixel_s:.2f} s ({pixel_s / fid_s:.2f}x), nearest pairs "
          f"over the whole reference split ({len(r.real_set)} images) {pairs_s:.2f} s ({pairs_s / fid_s:.2f}x)")


if __name__ == "__main__":
    main()
