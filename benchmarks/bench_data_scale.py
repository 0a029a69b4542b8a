"""Data at cluster scale: decode time, cached open time and node memory of concurrent trials, in one run.

Writes (once, reused after) a phantom Kaggle-layout tree `<root>/{train,test}/{NORMAL,PNEUMONIA}/
personN_*.png` of --images images at --resolution px, then, each step in a fresh process against a
fresh cache:
  * decode: the first load_split of the train split (scan, patient-grouped carve, parallel decode);
  * cached open: a second load_split in a new process (the entry is a read-only memmap);
  * memory: 1, then --procs concurrent processes that each open the split and touch every image (as a
    trial does), measured together while all are alive: total PSS (proportional set size: a shared page
    counts 1/k in each of the k processes mapping it, so the total is the real footprint; RSS counts it
    k times) from /proc/<pid>/smaps_rollup, the PSS of the images.npy mapping, and RSS for reference;
  * with --copy-baseline, the same --procs processes each holding a private copy (the old behaviour).
Prints ratios measured in this run (absolute seconds on a shared machine are not evidence). Aim: total
PSS of 4 trials <= 1.3x that of one at 100,000 images of 128 px. Measured (2026-11-25): 1.60, with the
images' PSS ratio 1.00: the data are shared completely, and the rest is the ~343 MiB each process holds
besides them, 280 MiB of it private memory allocated by `import torch` itself (measure it with
`python3 -c "import torch"` under /proc/<pid>/smaps_rollup), which no data layout can share. The aim holds
once the split is at least 9x that floor, (D + 4f) / (D + f) <= 1.3: about 200,000 training images of
128 px (by this formula CheXpert's 224k: ~1.27; ChestX-ray14's 112k: ~1.49).

Usage: python3 benchmarks/bench_data_scale.py [--images 100000] [--resolution 128] [--root DIR] [--procs 4]
           [--copy-baseline]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHUNK = 256  # phantoms rendered at once when writing the tree
PER_PATIENT = 3  # images per phantom patient (personN_...), so the validation carve groups them


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--root", default="", help="phantom tree (default: <tmp>/gan-study-phantom-n<N>-r<R>)")
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--copy-baseline", action="store_true", help="also measure private copies (old behaviour)")
    ap.add_argument("--child", nargs=4, metavar=("ROOT", "CACHE", "RES", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    if not Path("/proc/self/smaps_rollup").exists():
        sys.exit("bench_data_scale: needs Linux /proc/<pid>/smaps_rollup for PSS")
    root = Path(args.root or Path(tempfile.gettempdir()) / f"gan-study-phantom-n{args.images}-r{args.resolution}")
    write_tree(root, args.images, args.resolution)
    cache = Path(tempfile.mkdtemp(prefix="bench-data-scale-cache-"))
    try:
        run(args, root, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def run(args: argparse.Namespace, root: Path, cache: Path) -> None:
    decode = measure(root, cache, args.resolution, "open", 1)[0]
    cached = measure(root, cache, args.resolution, "open", 1)[0]
    one = measure(root, cache, args.resolution, "touch", 1)
    many = measure(root, cache, args.resolution, "touch", args.procs)
    n, nbytes = decode["n"], decode["nbytes"]
    print(f"{n} train images at {args.resolution} px ({nbytes / 2**20:.0f} MiB uint8) from {root}")
    print(f"decode (cold cache): {decode['open_s']:.2f} s   cached open (new process): {cached['open_s']:.4f} s   "
          f"ratio decode / cached open: {decode['open_s'] / cached['open_s']:.0f}x")
    rows = [("1 process", one), (f"{args.procs} processes", many)]
    if args.copy_baseline:
        rows.append((f"{args.procs} private copies", measure(root, cache, args.resolution, "copy", args.procs)))
    for name, procs in rows:
        print(f"{name:>20}: PSS total {_mib(procs, 'pss')}   images.npy PSS {_mib(procs, 'images_pss')}   "
              f"RSS total {_mib(procs, 'rss')}")
    ratio = _sum(many, "pss") / _sum(one, "pss")
    print(f"ratio PSS {args.procs} / 1: {ratio:.2f} (aim <= 1.3 at 100,000 x 128 px)   "
          f"images.npy PSS {args.procs} / 1: {_sum(many, 'images_pss') / _sum(one, 'images_pss'):.2f}   "
          f"RSS {args.procs} / 1: {_sum(many, 'rss') / _sum(one, 'rss'):.2f}")
    overhead = (_sum(one, "pss") - _sum(one, "images_pss")) / 2**20
    print(f"per-process PSS besides the images (interpreter, torch): {overhead:.0f} MiB")
    if args.copy_baseline:
        copies = _sum(rows[2][1], "pss") / _sum(many, "pss")
        print(f"ratio PSS {args.procs} private copies / {args.procs} shared: {copies:.2f}")


def measure(root: Path, cache: Path, resolution: int, mode: str, procs: int) -> list[dict]:
    """Start `procs` children together, wait until each has loaded (and touched) the split, read their
    memory while all are alive, then let them exit."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(root), str(cache), str(resolution), mode]
    children = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    try:
        reports = []
        for c in children:
            line = c.stdout.readline()
            if not line:
                raise SystemExit(f"bench_data_scale: a child failed (exit {c.wait()})")
            reports.append(json.loads(line))
        images = str(cache)  # the entry's images.npy lives under the cache dir
        for c, r in zip(children, reports):
            r.update(_memory(c.pid, images))
        return reports
    finally:
        for c in children:
            if c.poll() is None:
                c.stdin.close()  # the child's readline returns: it exits
            c.wait()


def child(root: str, cache: str, resolution: str, mode: str) -> None:
    """One trial-like process: open the split, touch every image (or copy it), report, wait for stdin."""
    from trainers.data import load_split

    t = time.perf_counter()
    ds = load_split(root, "train", int(resolution), cache_dir=cache)
    open_s = time.perf_counter() - t
    images = np.array(ds.images) if mode == "copy" else ds.images
    if mode != "open":
        int(images.sum(dtype=np.uint64))  # reads every page, as a trial's epochs do
    print(json.dumps({"open_s": open_s, "n": len(ds), "nbytes": int(ds.images.nbytes)}), flush=True)
    sys.stdin.readline()


def _memory(pid: int, under: str) -> dict[str, int]:
    """PSS and RSS of a process (bytes), and the PSS of its mappings of files under `under`."""
    rollup = _kb_fields(Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines())
    images_pss, current = 0, ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and not head[0].endswith(":"):  # a mapping header: address perms offset dev inode [path]
            current = head[5] if len(head) > 5 else ""
        elif head and head[0] == "Pss:" and current.startswith(under):
            images_pss += int(head[1]) * 1024
    return {"pss": rollup["Pss"], "rss": rollup["Rss"], "images_pss": images_pss}


def _kb_fields(lines: list[str]) -> dict[str, int]:
    out = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB":
            out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return out


def _sum(reports: list[dict], key: str) -> int:
    return sum(r[key] for r in reports)


def _mib(reports: list[dict], key: str) -> str:
    return f"{_sum(reports, key) / 2**20:8.1f} MiB"


def write_pngs(jobs: list[tuple[Path, int]], render, what: str, size: int = CHUNK) -> None:
    """Write the missing (path, label) PNGs in chunks of `size`: `render(start, chunk)` gives a chunk's images.

    Each file is written under a hidden temp name (ignored by the loaders) and renamed, so an interrupted
    write leaves only complete files and the next run fills in the rest.
    """
    from PIL import Image

    todo = [s for s in range(0, len(jobs), size) if not all(p.is_file() for p, _ in jobs[s:s + size])]
    if not todo:
        return
    print(f"writing {what} ({len(todo)} chunks of {size})", file=sys.stderr)

    def save(path: Path, image: np.ndarray) -> None:
        tmp = path.with_name(f".{path.name}.tmp.png")
        Image.fromarray(image).save(tmp)
        os.replace(tmp, path)

    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # PNG compression releases the GIL
        for done, s in enumerate(todo, 1):
            chunk = jobs[s:s + size]
            list(pool.map(save, [p for p, _ in chunk], render(s, chunk)))
            if done % 40 == 0 or done == len(todo):
                print(f"  {done}/{len(todo)} chunks, {time.perf_counter() - t:.0f} s", file=sys.stderr)


def write_tree(root: Path, n: int, resolution: int) -> None:
    """A phantom Kaggle tree (90% train, 10% test; 25.6% NORMAL), written once and reused (`write_pngs`)."""
    from trainers.data import phantom

    marker = root / ".complete"
    if marker.is_file() and marker.read_text() == f"{n} {resolution} v{phantom.VERSION}":
        return
    n_test = n // 10
    jobs = []  # (path, label, chunk start): files grouped in render chunks
    patient = 0
    for split, count in (("train", n - n_test), ("test", n_test)):
        n_normal = round(count * 0.256)
        for label, cls, kind, k in ((0, "NORMAL", "normal", n_normal), (1, "PNEUMONIA", "bacteria", count - n_normal)):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(k):
                jobs.append((d / f"person{patient + i // PER_PATIENT}_{kind}_{i}.png", label))
            patient += k // PER_PATIENT + 1
    write_pngs(jobs, lambda s, chunk: phantom.render(np.array([lab for _, lab in chunk]), resolution,
                                                     np.random.default_rng([7, s])),
               f"{len(jobs)} phantom images at {resolution} px to {root}")
    marker.write_text(f"{n} {resolution} v{phantom.VERSION}")


if __name__ == "__main__":
    main()
