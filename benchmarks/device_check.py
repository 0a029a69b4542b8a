"""The GPU check: every CUDA measurement the project needs from a lent GPU, in one command and one table.

    benchmarks/device_check.sh [--dry-run] [OUTDIR]      # thin wrapper around this file

Steps, in order; each runs in its own process under its own time limit, so a failing or slow step is a
row saying failed/timeout (with its error's last line) and the others still run:

  cuda_tests      `pytest -k cuda`: every test marked (or named) cuda runs; on a GPU a skip is a failure
  bench_training  benchmarks/bench_training.py --variants: images/s and achieved TFLOP/s (FlopCounterMode
                  FLOPs) of one training step on pre-made device tensors, fp32 / bf16 autocast / bf16 +
                  channels_last, vs the card's bf16 peak, and the textbook pytorch/examples loop as reference
  epoch_time      a belmekki_adas_elu_ttur trial (64 px, batch 128) through trainers.loop.train on the
                  Kaggle train split: seconds per epoch (aim <= 1 s on an H100) and what bounds it
                  (data path alone, compute alone, 8x batch vs time: launches)
  fid             FID of 2,048 samples on the device: Inception (weights from $GAN_STUDY_INCEPTION_WEIGHTS,
                  else a skipped row saying so) and the domain extractor
  memory          `gan-study memory` on the device (seed 002 Fig. 7/8's memory vs feature maps), written
                  to OUTDIR/memory.parquet, against the CPU's exact saved-tensor accounting
  study           first the caches the smoke trials share (domain extractor, real statistics, TRTR baseline),
                  untimed; then `gan-study run --space smoke --max-concurrent 0` at --gpus-per-trial 1, 0.5, 0.25:
                  trials per GPU-hour and peak GPU memory per trial (OUTDIR/study-g<F>-trials.parquet)
  bench_training  torch.compile and CUDA graphs (compile mode reduce-overhead), last: they only matter if
                  they help, and compiling is the slowest part

Writes OUTDIR/device_check.json (device info + one object per row, rewritten after every step),
OUTDIR/device_check.md (the table) and OUTDIR/logs/<step>.log; prints the table. OUTDIR defaults to
$OUT, else runs/device-check. Exit status 0 when every row is ok or skipped with a reason.

`--dry-run` runs the same steps on the CPU (CUDA hidden, one thread per process) at toy sizes on the phantom,
in about a minute, so the script cannot rot between GPU loans (tests/test_device_check.py runs it).

Real data: --data, else $GAN_STUDY_KAGGLE, else ../shared/data/chest_xray, else the phantom (said in the table).
A GPU machine that cannot see the Kaggle tree can be given `--data runs/kaggle64.npz`, written beforehand by
`python3 benchmarks/device_check.py --export-npz runs/kaggle64.npz` (~21 MB: the same splits at 64 px).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
BENCH_TRAINING = ROOT / "benchmarks" / "bench_training.py"
ENV_KAGGLE = "GAN_STUDY_KAGGLE"
ENV_INCEPTION = "GAN_STUDY_INCEPTION_WEIGHTS"  # = trainers.evaluation.feature_inception.ENV_WEIGHTS
JSON_FILE, TABLE_FILE = "device_check.json", "device_check.md"
OK, SKIPPED, FAILED, TIMEOUT = "ok", "skipped", "failed", "timeout"
GPU_BUDGET_S = 450  # the whole check, under the 8 minutes on one H100 with room for start-up and kills
DRY_BUDGET_S = 300  # caps only: the dry run takes about a minute on 2 CPU cores
EPOCH_TARGET_S = 1.0  # the aim for a belmekki2022 epoch on an H100

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, by a substring of torch.cuda.get_device_name(); first
# match wins, so the more specific names come first. Unknown cards -> None (the table says so).
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H200 NVL", 835.0), ("GH200", 989.0), ("H200", 989.0),
    ("H100", 989.0),  # SXM ("NVIDIA H100 80GB HBM3")
    ("A100", 312.0), ("L40S", 362.0),
)


def bf16_peak_tflops(device_name: str) -> float | None:
    for key, peak in BF16_PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return peak
    return None


# ----------------------------------------------------------------------------------------
# Rows
def row(step: str, setting: str, status: str, result: str = "", notes: str = "", **values: Any) -> dict[str, Any]:
    """One line of the table: status ok | skipped | failed | timeout; `values` are the raw numbers; `ratio` is
    filled in across rows by `add_ratios`."""
    return {"step": step, "setting": setting, "status": status, "result": result, "ratio": "", "notes": notes,
            "values": {k: _plain(v) for k, v in values.items()}}


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item):
        try:
            return v.item()
        except (ValueError, RuntimeError):
            pass
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, float) and v != v:
        return None
    return v


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.{digits}g}" if abs(x) < 10 ** digits else f"{x:,.0f}"


# ----------------------------------------------------------------------------------------
# Steps: each runs in a child process (`--_child NAME`) and appends rows through `emit`.
def _run_logged(cmd: list[str], log: Path) -> tuple[int, str, float]:
    """Run `cmd` with its output streamed into `log` (kept if the step is killed); (exit code, log tail, s)."""
    sys.stdout.flush()
    print(f"$ {' '.join(cmd)}", flush=True)
    t = time.perf_counter()
    with open(log, "a") as f:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    return rc, _tail(log), time.perf_counter() - t


def _gan_study(argv: list[str], log: Path) -> tuple[int, str, float]:
    """`gan-study ARGV` in this (step) process, saving an interpreter start; its output goes to the step log."""
    from study.cli import main

    sys.stdout.flush()
    sys.stderr.flush()
    print(f"$ gan-study {' '.join(argv)}", flush=True)
    t = time.perf_counter()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse errors
        rc = exc.code if isinstance(exc.code, int) else 2
    secs = time.perf_counter() - t
    sys.stdout.flush()
    sys.stderr.flush()
    return rc, _tail(log), secs


def step_cuda_tests(p: dict, emit: Callable[[dict], None]) -> None:
    import xml.etree.ElementTree as ET

    junit = Path(p["work"]) / "cuda_tests.xml"
    # -k matches marker names as well as test names: the tests marked `cuda` plus CUDA tests that are only
    # named so (tests/test_memory.py::test_cuda_allocator_method has a skipif but no marker).
    # -n 0: in one process (pyproject's addopts spread the suite over cores): the few CUDA tests share one GPU.
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-n", "0", "-p", "no:cacheprovider", "-k", "cuda",
           f"--junitxml={junit}", "tests"]
    rc, out, secs = _run_logged(cmd, Path(p["log"]))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failing: list[str] = []
    skip_reason = ""
    if junit.is_file():
        root = ET.parse(junit).getroot()
        for suite in root.iter("testsuite"):
            for k in counts:
                counts[k] += int(suite.get(k, 0))
        for case in root.iter("testcase"):
            for child in case:
                if child.tag in ("failure", "error"):
                    msg = _last_line(child.get("message", ""))
                    failing.append(f"{case.get('classname')}::{case.get('name')}: {msg}")
                elif child.tag == "skipped" and not skip_reason:
                    skip_reason = _last_line(child.get("message", ""))
    n, bad = counts["tests"], counts["failures"] + counts["errors"]
    passed = n - bad - counts["skipped"]
    result = f"{passed} passed, {bad} failed, {counts['skipped']} skipped"
    if rc not in (0, 1, 5) and not n:
        emit(row("cuda_tests", "pytest -k cuda", FAILED, f"pytest exit {rc}", _last_line(out), **counts))
        return
    if p["dry_run"]:
        status = FAILED if bad else OK
        notes = (failing[0] if failing else
                 f"dry run (CUDA hidden): {n} selected, skips expected ({skip_reason})" if n else
                 "no test is marked or named cuda")
    else:
        status = OK if n and not bad and not counts["skipped"] else FAILED
        notes = (failing[0] if failing else f"a CUDA test skipped on the GPU: {skip_reason}" if counts["skipped"]
                 else "no test is marked or named cuda" if not n else f"{secs:.0f} s")
    emit(row("cuda_tests", "pytest -k cuda", status, result, notes, seconds=secs, **counts))


def _bench_cmd(p: dict, variants: list[str]) -> list[str]:
    b = p["bench"]
    cmd = [sys.executable, str(BENCH_TRAINING), "--variants", ",".join(variants), "--device", p["device"],
           "--batch", str(b["batch"]), "--features", str(b["features"]), "--iters", str(b["iters"]),
           "--warmup", str(b["warmup"]), "--compile-backend", b["compile_backend"], "--json", p["records"],
           "--data", p["data"] or "", "--textbook-images", str(b["textbook_images"]),
           "--textbook-iters", str(b.get("textbook_iters", b["iters"]))]
    if p.get("peak_tflops"):
        cmd += ["--peak-tflops", str(p["peak_tflops"])]
    return cmd


def bench_rows(records: list[dict], p: dict) -> list[dict]:
    """bench_training.py's JSON records -> table rows (ratios are filled in by `add_ratios`)."""
    out = []
    for r in records:
        name = r["variant"]
        if r.get("status") != OK:
            out.append(row("bench_training", name, FAILED, "", r.get("error", ""), **_bench_values(r)))
            continue
        peak = r.get("peak_tflops")
        frac = f", {r['fraction_of_peak']:.1%} of {peak:g} bf16 peak" if peak else ""
        result = f"{_fmt(r['images_per_s'])} img/s, {r['tflops']:.3g} TFLOP/s{frac}"
        notes = r["label"]
        if name == "textbook":
            notes += f" on {r.get('textbook_data', '?')}"
        if r.get("compile"):
            notes += f" (backend {r.get('compile_backend')}; compile+warm-up {r.get('warmup_s', 0):.0f} s)"
        if r.get("tf32_conv"):
            notes += " (cuDNN TF32 on)" if name == "fp32" else ""
        out.append(row("bench_training", name, OK, result, notes, **_bench_values(r)))
    return out


def _bench_values(r: dict) -> dict:
    keys = ("images_per_s", "tflops", "fraction_of_peak", "flops_per_image", "step_ms", "warmup_s", "peak_memory_mb",
            "batch", "features", "resolution", "device", "compile", "compile_backend", "textbook_data", "seconds")
    return {k: r[k] for k in keys if k in r}


def step_epoch(p: dict, emit: Callable[[dict], None]) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_training as bt

    from trainers import metric_keys as K
    from trainers.data import load_split
    from trainers.loop import train
    from trainers.presets import get_preset

    e, device = p["epoch"], p["device"]
    data = p["data"] or "phantom"
    where = f"{p['data_label']} train split"
    over = {"data": data, "batch_size": e["batch"], "iterations": e["iters"], "report_every": e["iters"] // 2,
            "checkpoint_every": 0, "eval_at_end": False, "fid_every": 0, "sample_grid": 16, "device": device,
            **e.get("overrides", {})}
    cfg = get_preset(e["preset"], over)
    train_set = load_split(data, "train", cfg.resolution, limit=e.get("limit", 0), seed=cfg.seed)
    n = len(train_set)
    what = f"{e['preset']} {cfg.resolution} px, batch {cfg.batch_size}, features {cfg.g_features}"
    loops: dict[str, float] = {}
    for amp in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            summary = train(cfg.replace(amp=amp), tmp, train_set=train_set)  # last report: warm-up excluded
        ips = float(summary[K.IMAGES_PER_S])
        loops["amp" if amp else "fp32"] = ips
        epoch_s = n / ips
        met = "met" if epoch_s <= EPOCH_TARGET_S else "NOT met"
        aim = f"; aim <= {EPOCH_TARGET_S:g} s: {met}" if device == "cuda" else ""
        amp_note = "bf16 autocast" if device == "cuda" else "amp is a no-op on CPU"
        emit(row("epoch_time", "trial loop amp" if amp else "trial loop fp32", OK,
                 f"{epoch_s:.3g} s/epoch ({_fmt(ips)} img/s)",
                 f"{what}: trainers.loop.train on {where}, n_train {n}{'; ' + amp_note if amp else ''}{aim}",
                 epoch_s=epoch_s, images_per_s=ips, n_train=n, amp=amp,
                 peak_memory_mb=float(summary.get(K.PEAK_MEMORY_MB, float('nan')))))
    # What bounds it: the same step on pre-made device tensors, the data path alone, and batch scaling.
    flops = bt.step_flops(cfg)
    warm = e.get("warmup", 3)
    comp = bt.measure_compute(cfg, device, iters=e["compute_iters"], warmup=warm, train_set=train_set, flops=flops)
    small_cfg = cfg.replace(batch_size=max(1, cfg.batch_size // 8))
    small = bt.measure_compute(small_cfg, device, iters=e["compute_iters"], warmup=warm, train_set=train_set,
                               flops=flops / 8)
    data_ips = bt.data_images_per_s(cfg, train_set, device, iters=e["compute_iters"])
    loop = loops["fp32"]
    scaling = comp["step_ms"] / small["step_ms"]  # 8x the images cost this many times the time
    data_share = loop / data_ips  # fraction of the loop's time the data path alone would take
    if data_share >= 0.5:
        bound = "data"
    elif scaling < 2.0:
        bound = "launches"
    elif loop < 0.7 * comp["images_per_s"]:
        bound = "loop overhead"
    else:
        bound = "compute"
    peak = p.get("peak_tflops")
    frac = f" = {comp['tflops'] / peak:.1%} of bf16 peak" if peak else ""
    emit(row("epoch_time", "what bounds it", OK, bound,
             f"compute only {_fmt(comp['images_per_s'])} img/s ({comp['tflops']:.3g} TFLOP/s{frac}; loop/compute "
             f"{loop / comp['images_per_s']:.2f}); data path alone {_fmt(data_ips)} img/s ({data_share:.0%} of the "
             f"loop's time); 8x batch costs {scaling:.2f}x time (< 2x: launch-bound)",
             bound=bound, compute_images_per_s=comp["images_per_s"], compute_tflops=comp["tflops"],
             data_images_per_s=data_ips, batch_scaling_time_ratio=scaling,
             loop_over_compute=loop / comp["images_per_s"], step_ms=comp["step_ms"],
             step_ms_batch_div8=small["step_ms"]))
    if device == "cuda":
        torch.cuda.synchronize()


class _UntrainedDomain:
    """Dry run only: the domain CNN with seeded random weights, so no extractor training (~1 min on CPU)."""

    def __init__(self, resolution: int, device: str):
        import torch

        from trainers.evaluation.feature_domain import DomainCNN

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.model = DomainCNN(resolution=resolution).to(device).eval()
        self.device, self.dim, self.name = device, 128, f"domain-untrained-{resolution}px-dry-run"

    def __call__(self, images, batch_size: int = 512):
        import torch

        with torch.no_grad():
            return torch.cat([self.model.features(images[i:i + batch_size].float().to(self.device)).double().cpu()
                              for i in range(0, len(images), batch_size)]).numpy()


def step_fid(p: dict, emit: Callable[[dict], None]) -> None:
    import torch

    from trainers import metric_keys as K
    from trainers.config import TrialConfig
    from trainers.evaluation import Evaluator
    from trainers.models import build_generator

    f, device = p["fid"], p["device"]
    data = p["data"] or "phantom"
    cfg = TrialConfig(data=data, resolution=64, eval_samples=f["n"], allow_low_n=f["n"] < 2048, device=device)
    torch.manual_seed(0)
    G = build_generator(cfg).to(device)  # random weights: the cost is the point, the value means nothing

    def timed_eval(ev: Any) -> dict:
        t = time.perf_counter()
        ex = ev.extractor
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        ev.real_features()
        real_s = time.perf_counter() - t
        t = time.perf_counter()
        m = ev.evaluate(G)
        if device == "cuda":
            torch.cuda.synchronize()
        eval_s = time.perf_counter() - t
        x = torch.zeros(ev.n, 1, cfg.resolution, cfg.resolution)
        t = time.perf_counter()
        ex(x)
        feat_ips = ev.n / (time.perf_counter() - t)
        return {"load_s": load_s, "real_s": real_s, "eval_s": eval_s, "features_images_per_s": feat_ips,
                "fid": m[K.FID], "eval_n": m[K.EVAL_N], "extractor": m[K.EVAL_EXTRACTOR]}

    weights = os.environ.get(ENV_INCEPTION, "")
    if not weights or not Path(weights).is_file():
        why = f"no weights: ${ENV_INCEPTION} {'unset' if not weights else 'is not a file: ' + weights}"
        emit(row("fid", "inception-2048", SKIPPED, "", why + "; domain extractor only (next row)"))
    else:
        with tempfile.TemporaryDirectory() as tmp:  # fresh statistics: the real side is timed too
            v = timed_eval(Evaluator(cfg.replace(extractor="inception", inception_dims=2048), device=device,
                                     cache_dir=tmp))
        emit(row("fid", "inception-2048", OK, f"{v['eval_s']:.3g} s per FID of {v['eval_n']} samples",
                 f"Inception {_fmt(v['features_images_per_s'])} img/s; real statistics {v['real_s']:.3g} s (once); "
                 f"weights load {v['load_s']:.3g} s; data {p['data_label']}", **v))
    ev = Evaluator(cfg, device=device)  # the default cache: trials reuse this extractor and statistics
    note = ""
    if f.get("untrained_domain"):
        ev._extractor = _UntrainedDomain(cfg.resolution, device)
        assert ev.extractor is ev._extractor, "Evaluator no longer keeps its extractor in _extractor"
        note = "dry run: untrained domain CNN (no extractor training); "
    v = timed_eval(ev)
    trained = getattr(ev.extractor, "trained_now", False)
    emit(row("fid", "domain", OK,
             f"{v['eval_s']:.3g} s per FID+KID+P/R+diversity+memorisation of {v['eval_n']} samples",
             f"{note}extractor {'trained' if trained else 'loaded'} in {v['load_s']:.3g} s; real statistics "
             f"{v['real_s']:.3g} s; features {_fmt(v['features_images_per_s'])} img/s; data {p['data_label']}", **v))


def step_memory(p: dict, emit: Callable[[dict], None]) -> None:
    import pandas as pd

    from trainers.memory import measure_memory

    m, device = p["memory"], p["device"]
    out = Path(p["outdir"]) / "memory.parquet"
    rc, text, secs = _gan_study(["memory", "--device", device, "--out", str(out), *m["args"]], Path(p["log"]))
    if rc != 0:
        emit(row("memory", "gan-study memory", FAILED, f"exit {rc}", _last_line(text)))
        return
    df = pd.read_parquet(out)
    res = int(df["resolution"].min())
    sel = df[(df["resolution"] == res) & (df["norm"] == "batch")]
    per = sel.groupby("features")["mem_per_image_mb"].sum()  # G + D
    lo, hi = int(per.index.min()), int(per.index.max())
    curve = ", ".join(f"{int(k)}: {v:.3g}" for k, v in per.items())
    notes = f"{res} px, BatchNorm, G+D MB/image by features: {curve}; {len(df)} rows -> {out.name}"
    values: dict[str, Any] = {"rows": len(df), "method": df["method"].iloc[0], "seconds": secs,
                              "mem_per_image_mb_lo": float(per[lo]), "mem_per_image_mb_hi": float(per[hi])}
    if device == "cuda":  # the CPU's exact accounting on the same grid: how close is the estimate?
        acc = measure_memory(sorted(df["resolution"].unique()), sorted(df["features"].unique()),
                             sorted(df["norm"].unique()), m.get("batch_size", 8), "cpu")
        key = ["network", "resolution", "features", "norm"]
        both = df.merge(acc, on=key, suffixes=("", "_cpu"))
        r = (both["mem_per_image_mb"] / both["mem_per_image_mb_cpu"]).median()
        notes += f"; CUDA allocator / CPU saved-tensor accounting: median {r:.2f}"
        values["cuda_over_accounting_median"] = float(r)
    emit(row("memory", "gan-study memory", OK, f"{per[hi] / per[lo]:.3g}x memory/image from {lo} to {hi} feature maps "
             f"({values['method']})", notes, **values))


def step_study(p: dict, emit: Callable[[dict], None]) -> None:
    import pandas as pd

    s, g = p["study"], float(p["gpus"])
    setting = f"gpus-per-trial {g:g}"
    d = Path(p["work"]) / f"study-g{g:g}"
    shutil.rmtree(d, ignore_errors=True)
    rc, text, wall = _gan_study(["run", "--space", s["space"], "--data", "phantom", "--out", str(d), "--gpus-per-trial",
                                 f"{g:g}", "--max-concurrent", "0", "--set", "device=auto", "--quiet", *s["args"]],
                                Path(p["log"]))
    trials_file = d / "trials.parquet"
    if rc != 0 or not trials_file.is_file():
        emit(row("study", setting, FAILED, f"exit {rc}", _last_line(text)))
        return
    df = pd.read_parquet(trials_file)
    shutil.copy(trials_file, Path(p["outdir"]) / f"study-g{g:g}-trials.parquet")
    done = int((df["status"] == "finished").sum())
    gpus = 1 if g > 0 else 0  # fractions share the one card: the study holds one GPU for its whole wall time
    rate = done / (wall / 3600) / max(gpus, 1)
    mem = df["peak_memory_mb"].astype(float)
    unit = "trials per GPU-hour" if gpus else "trials per hour (CPU)"
    what = "peak GPU memory" if gpus else "peak RSS"
    status = OK if done == len(df) and done > 0 else FAILED
    notes = (f"{done}/{len(df)} finished in {wall:.0f} s wall (Ray start included); {what} per trial "
             f"max {mem.max():.0f} MB, mean {mem.mean():.0f} MB; mean trial {df['wall_s'].mean():.1f} s")
    if status != OK:
        notes = f"statuses {df['status'].value_counts().to_dict()}; " + notes
    emit(row("study", setting, status, f"{rate:,.0f} {unit}", notes, trials=len(df), finished=done, wall_s=wall,
             trials_per_gpu_hour=rate if gpus else None, trials_per_hour=done / (wall / 3600),
             peak_memory_mb_max=float(mem.max()), peak_memory_mb_mean=float(mem.mean()), gpus_per_trial=g))


def step_study_warm(p: dict, emit: Callable[[dict], None]) -> None:
    """Build the domain extractor, real statistics and TRTR baseline the study's trials share, before the
    timed studies: otherwise the first of them pays for what every later trial reads from the cache."""
    import torch

    from search_spaces.space import load_space
    from trainers.evaluation import Evaluator
    from trainers.models import build_generator

    device = p["device"]
    space = load_space(p["study"]["space"])
    cfg = space.resolve(next(space.combinations(), {})).replace(device=device)
    t = time.perf_counter()
    torch.manual_seed(0)
    G = build_generator(cfg).to(device)
    ev = Evaluator(cfg, device=device)
    built = []
    if cfg.eval_at_end:
        ev.evaluate(G)
        built.append(f"extractor {ev.extractor.name} + real statistics")
    if cfg.downstream_protocols:
        from trainers.evaluation.protocols import run_downstream

        run_downstream(cfg, G, device=device, cache_dir=ev.cache_dir)
        built.append(f"TRTR baseline ({cfg.classifier})")
    secs = time.perf_counter() - t
    emit(row("study", "cache warm-up", OK, f"{secs:.3g} s",
             f"space {space.name}: {', '.join(built) or 'nothing to build'} (not counted in the studies' wall time)",
             seconds=secs))


STEP_FUNCTIONS: dict[str, Callable[[dict, Callable[[dict], None]], None]] = {
    "cuda_tests": step_cuda_tests, "epoch_time": step_epoch, "fid": step_fid, "memory": step_memory,
    "study": step_study, "study_warm": step_study_warm,
}


# ----------------------------------------------------------------------------------------
# The plan: what each step runs on a GPU and in the dry run.
def plan(dry: bool) -> list[dict]:
    """Steps in order: id (for --only), fn (what runs), step (the table's name), the settings it must give a row
    each, its time cap (s) and its parameters."""
    if dry:
        bench = {"batch": 4, "features": 16, "iters": 2, "warmup": 1, "compile_backend": "eager", "textbook_images": 32}
        epoch = {"preset": "belmekki_adas_elu_ttur", "batch": 16, "iters": 4, "compute_iters": 2, "warmup": 1,
                 "limit": 256, "overrides": {"resolution": 32, "g_features": 16, "d_features": 16}}
        fid = {"n": 64, "untrained_domain": True}
        memory = {"args": ["--resolutions", "32", "--features", "16", "32"], "batch_size": 8}
        study = {"space": "smoke", "warm_caches": False,  # the dry run evaluates nothing: no caches to warm
                 "args": ["--search", "random", "--num-samples", "1", "--set", "iterations=4",
                          "--set", "report_every=2", "--set", "downstream=", "--set", "eval_at_end=false",
                          "--set", "data_limit=64"]}
        gpus: list[float] = [0.0]
        caps = {"cuda_tests": 90, "bench": 120, "epoch_time": 90, "fid": 90, "memory": 60, "warm": 60, "study": 120,
                "compile": 90}
    else:
        bench = {"batch": 128, "features": 64, "iters": 30, "warmup": 5, "compile_backend": "inductor",
                 "textbook_images": 1024, "textbook_iters": 8}  # 2 workers decode ~100 Kaggle JPEGs/s
        epoch = {"preset": "belmekki_adas_elu_ttur", "batch": 128, "iters": 80, "compute_iters": 30}
        fid = {"n": 2048}
        memory = {"args": [], "batch_size": 8}
        study = {"space": "smoke", "warm_caches": True, "args": []}
        gpus = [1.0, 0.5, 0.25]
        caps = {"cuda_tests": 60, "bench": 75, "epoch_time": 60, "fid": 60, "memory": 60, "warm": 60, "study": 60,
                "compile": 90}
    eager = ["fp32", "bf16", "channels_last", "textbook"]
    steps = [
        {"id": "cuda_tests", "fn": "cuda_tests", "step": "cuda_tests", "settings": ["pytest -k cuda"],
         "cap": caps["cuda_tests"]},
        {"id": "bench", "fn": "bench", "step": "bench_training", "settings": eager, "cap": caps["bench"],
         "variants": eager, "bench": bench},
        {"id": "epoch_time", "fn": "epoch_time", "step": "epoch_time",
         "settings": ["trial loop fp32", "trial loop amp", "what bounds it"], "cap": caps["epoch_time"],
         "epoch": epoch},
        {"id": "fid", "fn": "fid", "step": "fid", "settings": ["inception-2048", "domain"], "cap": caps["fid"],
         "fid": fid},
        {"id": "memory", "fn": "memory", "step": "memory", "settings": ["gan-study memory"], "cap": caps["memory"],
         "memory": memory},
    ]
    if study["warm_caches"]:
        steps.append({"id": "study-warm", "fn": "study_warm", "step": "study", "settings": ["cache warm-up"],
                      "cap": caps["warm"], "study": study})
    for g in gpus:
        steps.append({"id": f"study-g{g:g}", "fn": "study", "step": "study", "settings": [f"gpus-per-trial {g:g}"],
                      "gpus": g, "cap": caps["study"], "study": study})
    steps.append({"id": "compile", "fn": "bench", "step": "bench_training", "settings": ["compile", "cudagraphs"],
                  "cap": caps["compile"], "variants": ["compile", "cudagraphs"], "bench": bench})
    return steps


# ----------------------------------------------------------------------------------------
# Driver
def device_info(dry: bool) -> dict[str, Any]:
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    info: dict[str, Any] = {"mode": "dry-run" if dry else "gpu", "torch": torch.__version__,
                            "cuda_runtime": torch.version.cuda, "python": platform.python_version(),
                            "host": platform.node(), "cpu_count": os.cpu_count(), "git": _git_describe()}
    if not dry and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        name = torch.cuda.get_device_name(0)
        info.update(device="cuda", device_name=name, device_count=torch.cuda.device_count(),
                    memory_gib=round(props.total_memory / 2**30, 1), capability=f"{props.major}.{props.minor}",
                    bf16_peak_tflops=bf16_peak_tflops(name))
    else:
        import bench_training as bt

        info.update(device="cpu", device_name=_cpu_name(), device_count=0, bf16_peak_tflops=None,
                    fp32_matmul_gflops=round(bt.matmul_gflops(1024, 3), 1), torch_threads=torch.get_num_threads())
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def _git_describe() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def run_step(spec: dict, common: dict, work: Path, logs: Path, timeout: float) -> list[dict]:
    """Run one step in its own process group under `timeout`; always returns a row per expected setting."""
    sid, timeout = spec["id"], max(timeout, 1.0)
    log = logs / f"{sid}.log"
    records = work / f"{sid}.jsonl"
    records.unlink(missing_ok=True)
    params = {**{k: v for k, v in common.items() if k != "env"}, **spec, "log": str(log), "records": str(records),
              "work": str(work)}
    if spec["fn"] == "bench":
        cmd = _bench_cmd(params, spec["variants"])
    else:
        pfile = work / f"{sid}.params.json"
        pfile.write_text(json.dumps(params))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", spec["fn"], "--_params", str(pfile)]
    t = time.perf_counter()
    status = None
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
                                env=common["env"])
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            rc, status = None, TIMEOUT
    secs = time.perf_counter() - t
    recs = []
    for line in records.read_text().splitlines() if records.is_file() else []:
        try:
            recs.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by the kill
            pass
    rows = bench_rows(recs, params) if spec["fn"] == "bench" else recs
    if status == TIMEOUT:
        err = f"no result within the step's {timeout:.0f} s limit; last output: {_last_line(_tail(log))[:200]}"
    elif rc != 0:
        status, err = FAILED, _last_line(_tail(log)) or f"exit {rc}"
    else:
        status, err = FAILED, "the step ended without a row for this setting"
    seen = {r["setting"] for r in rows}
    for setting in spec["settings"]:
        if setting not in seen:
            rows.append(row(spec["step"], setting, status, "", err))
    for r in rows:
        r.setdefault("values", {})["step_seconds"] = round(secs, 2)
    return rows


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _tail(path: Path, n: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - n))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def add_ratios(rows: list[dict]) -> None:
    """Cross-row ratios: each bench variant vs the textbook loop and vs fp32; each study vs 1 GPU per trial."""
    bench = {r["setting"]: r for r in rows if r["step"] == "bench_training" and r["status"] == OK}
    text = bench.get("textbook", {}).get("values", {}).get("images_per_s")
    fp32 = bench.get("fp32", {}).get("values", {}).get("images_per_s")
    best_eager = max((bench[k]["values"]["images_per_s"] for k in ("fp32", "bf16", "channels_last") if k in bench),
                     default=None)
    for name, r in bench.items():
        v = r["values"]
        parts = []
        if name != "textbook" and text:
            v["ratio_vs_textbook"] = v["images_per_s"] / text
            parts.append(f"x{v['ratio_vs_textbook']:.2f} textbook")
        if name not in ("fp32", "textbook") and fp32:
            v["ratio_vs_fp32"] = v["images_per_s"] / fp32
            parts.append(f"x{v['ratio_vs_fp32']:.2f} fp32")
        if name in ("compile", "cudagraphs") and best_eager:
            v["ratio_vs_best_eager"] = v["images_per_s"] / best_eager
            helps = "helps" if v["ratio_vs_best_eager"] > 1.05 else "does not help"
            parts.append(f"x{v['ratio_vs_best_eager']:.2f} best eager ({helps})")
        r["ratio"] = "; ".join(parts)
    studies = {r["values"].get("gpus_per_trial"): r for r in rows if r["step"] == "study" and r["status"] == OK}
    base = studies.get(1.0, {}).get("values", {}).get("trials_per_gpu_hour")
    for g, r in studies.items():
        rate = r["values"].get("trials_per_gpu_hour")
        if base and rate and g != 1.0:
            r["values"]["ratio_vs_1_gpu"] = rate / base
            r["ratio"] = f"x{rate / base:.2f} vs 1 GPU per trial"


def render_table(rows: list[dict], info: dict) -> str:
    peak = info.get("bf16_peak_tflops")
    head = (f"Device check ({info['mode']}): {info.get('device_name')} | torch {info['torch']} (CUDA "
            f"{info.get('cuda_runtime')}) | bf16 peak {f'{peak:g} TFLOP/s' if peak else 'unknown (not in the table)'}"
            f" | git {info.get('git') or '?'} | {info.get('total_s', 0):.0f} s")
    if info.get("fp32_matmul_gflops"):
        head += f" | CPU fp32 matmul {info['fp32_matmul_gflops']:g} GFLOP/s"
    lines = [head, "", "| step | setting | status | result | ratio / notes |", "|---|---|---|---|---|"]
    for r in rows:
        cells = [r["step"], r["setting"], r["status"], r["result"] or "-",
                 "; ".join(x for x in (r.get("ratio"), r["notes"]) if x) or "-"]
        lines.append("| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(outdir: Path, info: dict, rows: list[dict]) -> None:
    payload = {"device": info, "rows": rows}
    tmp = outdir / (JSON_FILE + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(outdir / JSON_FILE)
    (outdir / TABLE_FILE).write_text(render_table(rows, info))


def find_data(arg: str | None, dry: bool) -> str:
    """The real data: --data (a Kaggle tree or an .npz from --export-npz), else $GAN_STUDY_KAGGLE, else
    ../shared/data/chest_xray (not in a dry run); "" = the phantom."""
    cands = [arg] if arg else ([os.environ.get(ENV_KAGGLE)] + ([] if dry else [
        str(ROOT.parent / "shared" / "data" / "chest_xray"), str(ROOT / "shared" / "data" / "chest_xray")]))
    for c in cands:
        if c and ((Path(c) / "train").is_dir() or (c.endswith(".npz") and Path(c).is_file())):
            return str(Path(c).resolve())
    if arg:
        sys.exit(f"device_check: no Kaggle-layout tree ({arg}/train/<CLASS>/*) or .npz file at {arg}")
    return ""


def export_npz(tree: str, path: Path, resolution: int = 64) -> int:
    """Write the Kaggle tree's splits at `resolution` as a MedMNIST-style .npz (~25 MB at 64 px), small enough to
    carry to a GPU machine that cannot see the tree; `--data FILE.npz` then trains on the same images."""
    import numpy as np

    from trainers.data import load_split

    if not tree or not Path(tree).is_dir():
        sys.exit("device_check --export-npz: needs a Kaggle tree (--data or $GAN_STUDY_KAGGLE)")
    arrays = {}
    for split in ("train", "val", "test"):
        ds = load_split(tree, split, resolution)
        if tuple(ds.class_names) != ("NORMAL", "PNEUMONIA"):
            sys.exit(f"device_check --export-npz: classes {ds.class_names}, expected NORMAL, PNEUMONIA")
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = ds.images, ds.labels.astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB): " +
          ", ".join(f"{s} {len(arrays[s + '_labels'])}" for s in ("train", "val", "test")))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("outdir", nargs="?", default=None,
                    help="where the JSON and the table go (default: $OUT, else runs/device-check)")
    ap.add_argument("--dry-run", action="store_true", help="the same steps on the CPU at toy sizes")
    ap.add_argument("--data", default=None, help=f"Kaggle-layout tree or an .npz from --export-npz (default: "
                    f"${ENV_KAGGLE}, else ../shared/data/chest_xray; the phantom when absent, said in the table)")
    ap.add_argument("--export-npz", default="", metavar="FILE", help="write the Kaggle tree at 64 px as FILE.npz "
                    "(to carry to a GPU machine) and exit")
    ap.add_argument("--only", default="", help="comma list of step ids to run: cuda_tests, bench, epoch_time, fid, "
                    "memory, study-warm, study-g1, study-g0.5, study-g0.25 (dry run: study-g0), compile")
    ap.add_argument("--budget-s", type=float, default=None,
                    help=f"time for the whole check (default {GPU_BUDGET_S} on a GPU, {DRY_BUDGET_S} dry)")
    ap.add_argument("--keep-work", action="store_true", help="keep the scratch folder (study dirs) under OUTDIR/work")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    ap.add_argument("--_params", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        return child(args._child, Path(args._params))

    if args.export_npz:
        return export_npz(find_data(args.data, dry=False), Path(args.export_npz))
    t_start = time.perf_counter()
    dry = args.dry_run
    outdir = Path(args.outdir or os.environ.get("OUT") or ROOT / "runs" / "device-check").resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    logs = outdir / "logs"
    logs.mkdir(exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if dry:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run is the CPU path, even on a GPU machine
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        # One intra-op thread: on a small shared machine, OpenMP threads that spin-wait for a busy core make
        # a toy step ~30x slower (measured on the 2-core development machine under load).
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
    info = device_info(dry)
    if not dry and info["device"] != "cuda":
        print("device_check: no CUDA device is visible; run `benchmarks/device_check.sh --dry-run` for the CPU "
              "toy run", file=sys.stderr)
        return 2
    data = find_data(args.data, dry)
    info["data"] = (f"Kaggle tree {data}" if data and Path(data).is_dir() else f"npz {Path(data).name}" if data else
                    "phantom (dry run)" if dry else f"phantom (no Kaggle tree: set {ENV_KAGGLE} or --data)")
    info["inception_weights"] = os.environ.get(ENV_INCEPTION) or None
    budget = args.budget_s or (DRY_BUDGET_S if dry else GPU_BUDGET_S)
    common = {"dry_run": dry, "device": info["device"], "data": data, "data_label": info["data"],
              "peak_tflops": info.get("bf16_peak_tflops"), "outdir": str(outdir), "env": env}
    steps = plan(dry)
    if args.only:
        wanted = {s.strip() for s in args.only.split(",") if s.strip()}
        unknown = wanted - {s["id"] for s in steps}
        if unknown:
            ap.error(f"--only: unknown step ids {sorted(unknown)}; allowed: {', '.join(s['id'] for s in steps)}")
        steps = [s for s in steps if s["id"] in wanted]
    work_ctx = tempfile.TemporaryDirectory(prefix="device-check-") if not args.keep_work else None
    work = Path(work_ctx.name) if work_ctx else outdir / "work"
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    try:
        for spec in steps:
            left = budget - (time.perf_counter() - t_start)
            timeout = min(spec["cap"], left - 5)
            print(f"[device_check] {spec['id']} (limit {max(timeout, 0):.0f} s) ...", file=sys.stderr, flush=True)
            if timeout < 10:
                new = [row(spec["step"], s, TIMEOUT, "", f"not run: the check's {budget:.0f} s budget was spent")
                       for s in (spec["settings"] or ["-"])]
            else:
                new = run_step(spec, common, work, logs, timeout)
            for r in new:
                print(f"[device_check]   {r['step']} | {r['setting']} | {r['status']} | {r['result']}", file=sys.stderr,
                      flush=True)
            rows.extend(new)
            info["total_s"] = time.perf_counter() - t_start
            add_ratios(rows)
            write_outputs(outdir, info, rows)
    finally:
        if work_ctx:
            work_ctx.cleanup()
    info["total_s"] = time.perf_counter() - t_start
    add_ratios(rows)
    write_outputs(outdir, info, rows)
    print(render_table(rows, info))
    print(f"wrote {outdir / JSON_FILE} and {outdir / TABLE_FILE}")
    bad = [r for r in rows if r["status"] not in (OK, SKIPPED)]
    return 1 if bad else 0


def child(step: str, params_file: Path) -> int:
    p = json.loads(params_file.read_text())
    records = Path(p["records"])

    def emit(r: dict) -> None:
        with open(records, "a") as f:
            f.write(json.dumps(r, default=str) + "\n")

    try:
        STEP_FUNCTIONS[step](p, emit)
    except Exception:  # noqa: BLE001 - printed; the driver turns the last line into the row's note
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
