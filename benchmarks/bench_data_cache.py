"""Decode-once cache: load time of the Kaggle train split at 64 px, decoded vs cached, in one run.

Usage: python3 benchmarks/bench_data_cache.py [--data ../shared/data/chest_xray] [--resolution 64]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainers.data import load_split  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    ap.add_argument("--resolution", type=int, default=64)
    args = ap.parse_args()
    if not (Path(args.data) / "train").is_dir():
        sys.exit(f"bench_data_cache: no Kaggle-layout data at {args.data}; pass --data PATH")
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        first = load_split(args.data, "train", args.resolution, cache_dir=cache)
        decode_s = time.perf_counter() - t
        t = time.perf_counter()
        again = load_split(args.data, "train", args.resolution, cache_dir=cache)
        cached_s = time.perf_counter() - t
    n = len(first) + len(load_split(args.data, "val", args.resolution, cache_dir=cache))
    assert (again.images == first.images).all()
    print(f"{n} images ({len(first)} train after the patient-grouped val carve) at {args.resolution} px")
    print(f"decode (cold cache): {decode_s:.2f} s   cached load: {cached_s:.3f} s (target < 1 s)")
    print(f"ratio decode / cached: {decode_s / cached_s:.0f}x")


if __name__ == "__main__":
    main()
