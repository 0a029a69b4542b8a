"""Label sheets at NIH scale: a 112,120-row ChestX-ray14-shaped folder through the decode-once cache.

Writes (once, reused after) `<root>/Data_Entry_2017.csv` with the real file's 112,120 rows, header and trailing
commas, 30,805 patients, the real label mix (60,361 `No Finding`, 1,431 with Pneumonia, the rest other
findings), PA/AP views and official `train_val_list.txt` / `test_list.txt` by patient, and one phantom PNG per
row in `images_001/images/` ... `images_012/images/` (4,999, 10,000 x 10, 7,121 files, as the real archives)
at --image-size px. Then, as `bench_data_scale.py` does, each step in a fresh process and a fresh cache:
  * read the sheet (parse 112,120 rows, list the 12 folders, stat every kept file, carve val by patient);
  * decode: the first load_split of the train split (the progress bar shows on stderr), as images per second;
  * cached open: a second load_split in a new process (sheet read + memory map);
  * memory: total PSS of 1 and of --procs concurrent processes that each open the split and touch every image.
The phantom PNGs are small; real ChestX-ray14 PNGs are 1024 px and decode far slower per image (decode rate
scales with pixels: measure yours with `gan-study data ROOT --decode`).

Usage: python3 benchmarks/bench_data_nih.py [--root DIR] [--image-size 128] [--resolution 64] [--procs 4]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

ROWS, PATIENTS, NO_FINDING, PNEUMONIA = 112_120, 30_805, 60_361, 1_431
FOLDERS = [4_999] + [10_000] * 10 + [7_121]
HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
          "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
OTHERS = ("Infiltration", "Effusion", "Atelectasis", "Nodule", "Mass", "Pneumothorax", "Consolidation",
          "Pleural_Thickening", "Cardiomegaly", "Emphysema", "Edema", "Fibrosis", "Hernia")
CHUNK = 512
POOL = 256  # distinct phantoms rendered per class


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="", help="NIH-shaped folder (default: <tmp>/gan-study-nih-<size>px)")
    ap.add_argument("--image-size", type=int, default=128, help="side of the written PNGs")
    ap.add_argument("--resolution", type=int, default=64, help="trial resolution decoded into the cache")
    ap.add_argument("--procs", type=int, default=4)
    args = ap.parse_args()
    root = Path(args.root or Path(tempfile.gettempdir()) / f"gan-study-nih-{args.image_size}px")
    write_nih(root, args.image_size)
    t = time.perf_counter()
    code = ("import sys, time, pathlib; sys.path.insert(0, sys.argv[1]); t = time.perf_counter(); "
            "from trainers.data import sheets; s = sheets.read_sheet('nih', pathlib.Path(sys.argv[2]), sheets.Task()); "
            "print(len(s.paths), s.rows_read, round(time.perf_counter() - t, 2), dict(s.left_out))")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT), str(root)], capture_output=True, text=True,
                          check=True)
    kept, rows, read_s, left_out = proc.stdout.split(maxsplit=3)
    print(f"sheet read: {rows} rows -> {kept} images (Pneumonia vs No Finding) in {read_s} s "
          f"(new process {time.perf_counter() - t:.1f} s with imports); left out: {left_out.strip()}")
    from bench_data_scale import _mib, _sum, measure

    cache = Path(tempfile.mkdtemp(prefix="bench-data-nih-cache-"))
    try:
        decode = measure(root, cache, args.resolution, "open", 1)[0]
        cached = measure(root, cache, args.resolution, "open", 1)[0]
        one = measure(root, cache, args.resolution, "touch", 1)
        many = measure(root, cache, args.resolution, "touch", args.procs)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    n = decode["n"]
    print(f"decode (cold cache, {n} train images, {args.image_size} px PNG -> {args.resolution} px, {os.cpu_count()} "
          f"cores): {decode['open_s']:.1f} s = {n / decode['open_s']:.0f} images/s")
    print(f"cached open (new process: sheet read + memory map): {cached['open_s']:.2f} s   "
          f"split: {decode['nbytes'] / 2**20:.0f} MiB uint8")
    for name, procs in (("1 process", one), (f"{args.procs} processes", many)):
        print(f"{name:>12}: PSS total {_mib(procs, 'pss')}   images.npy PSS {_mib(procs, 'images_pss')}   "
              f"RSS total {_mib(procs, 'rss')}")
    print(f"ratio PSS {args.procs} / 1: {_sum(many, 'pss') / _sum(one, 'pss'):.2f}   images.npy PSS {args.procs} / 1: "
          f"{_sum(many, 'images_pss') / _sum(one, 'images_pss'):.2f}")


def write_nih(root: Path, size: int) -> None:
    """The NIH-shaped folder, written once (a marker file says it is complete)."""
    from bench_data_scale import write_pngs

    from trainers.data import phantom

    marker = root / ".complete"
    if marker.is_file() and marker.read_text() == f"{ROWS} {size} v{phantom.VERSION}":
        return
    rng = np.random.default_rng(17)
    patient = np.sort(rng.integers(1, PATIENTS + 1, ROWS))
    patient[:PATIENTS] = np.arange(1, PATIENTS + 1)  # every patient has an image
    patient.sort()
    kind = np.full(ROWS, 2)  # 0 No Finding, 1 with Pneumonia, 2 other findings
    perm = rng.permutation(ROWS)
    kind[perm[:NO_FINDING]], kind[perm[NO_FINDING:NO_FINDING + PNEUMONIA]] = 0, 1
    test_patients = set(rng.permutation(PATIENTS)[: round(PATIENTS * 0.228)] + 1)  # ~25,596 test images
    rows, train_val, test, jobs = [HEADER], [], [], []
    folder_of = np.repeat(np.arange(1, 13), FOLDERS)
    follow = {}
    for i in range(ROWS):
        pid = int(patient[i])
        k = follow[pid] = follow.get(pid, -1) + 1
        name = f"{pid:08d}_{k:03d}.png"
        labels = ("No Finding", "Pneumonia" if i % 3 else f"{OTHERS[i % 13]}|Pneumonia",
                  "|".join(sorted({OTHERS[i % 13], OTHERS[(i * 7) % 13]})))[kind[i]]
        rows.append(f"{name},{labels},{k},{pid},{20 + pid % 60},{'MF'[pid % 2]},{'PA' if i % 5 < 3 else 'AP'},"
                    f"2500,2048,0.143,0.143,")
        (test if pid in test_patients else train_val).append(name)
        jobs.append((root / f"images_{folder_of[i]:03d}" / "images" / name, int(kind[i] != 0)))
    for d in {p.parent for p, _ in jobs}:
        d.mkdir(parents=True, exist_ok=True)
    (root / "Data_Entry_2017.csv").write_text("\n".join(rows) + "\n")
    (root / "train_val_list.txt").write_text("\n".join(train_val) + "\n")
    (root / "test_list.txt").write_text("\n".join(test) + "\n")
    # Rendering 112,120 phantoms would take an hour on 2 cores: render POOL per class once and vary each file
    # (shifted by its row), so files differ and decode as real, distinct PNGs.
    pool_images = phantom.render(np.repeat([0, 1], POOL), size, np.random.default_rng(11))

    def image(i: int, label: int) -> np.ndarray:
        return np.roll(pool_images[label * POOL + i % POOL], (i // POOL) % 23 - 11, axis=1)

    write_pngs(jobs, lambda s, chunk: [image(s + j, lab) for j, (_, lab) in enumerate(chunk)],
               f"{ROWS} phantom PNGs at {size} px to {root}", CHUNK)
    marker.write_text(f"{ROWS} {size} v{phantom.VERSION}")


if __name__ == "__main__":
    main()
