"""benchmarks/device_check.sh: the GPU check cannot rot between loans.

* The dry run (the same steps on the CPU at toy sizes) gives a row for every step, each ok or skipped
  with a reason, in the JSON and in the printed table.
* The driver's contract: a step that overruns its limit or crashes is a row saying so; lookups of the
  card's bf16 peak; ratios across rows.
* Tests marked `cuda` (skipped without a CUDA device) are the CUDA paths the check's `cuda_tests` step runs
  on a lent GPU, where a skip counts as a failure.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import device_check as dc  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.slow
def test_dry_run_gives_a_row_for_every_step(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--dry-run", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = json.loads((out / dc.JSON_FILE).read_text())
    assert payload["device"]["mode"] == "dry-run" and payload["device"]["device"] == "cpu"
    rows = payload["rows"]
    expected = [(s["step"], setting) for s in dc.plan(dry=True) for setting in s["settings"]]
    got = [(r["step"], r["setting"]) for r in rows]
    assert sorted(got) == sorted(expected)
    for r in rows:
        assert r["status"] in (dc.OK, dc.SKIPPED), r
        if r["status"] == dc.SKIPPED:
            assert r["notes"], r  # a skip says why
    by = {(r["step"], r["setting"]): r for r in rows}
    assert by[("fid", "inception-2048")]["status"] == dc.SKIPPED or "GAN_STUDY_INCEPTION_WEIGHTS" in str(payload)
    assert by[("bench_training", "fp32")]["values"]["images_per_s"] > 0
    assert by[("bench_training", "bf16")]["values"]["ratio_vs_textbook"] > 0
    assert by[("epoch_time", "what bounds it")]["result"] in ("data", "launches", "loop overhead", "compute")
    assert by[("study", "gpus-per-trial 0")]["values"]["finished"] == 1
    assert (out / "memory.parquet").is_file() and (out / "study-g0-trials.parquet").is_file()
    table = proc.stdout
    assert "| step | setting | status | result | ratio / notes |" in table
    for step, setting in expected:
        assert f"| {step} | {setting} |" in table
    assert (out / dc.TABLE_FILE).read_text() in table


def test_a_step_over_its_limit_is_a_timeout_row_and_a_crash_a_failed_row(tmp_path):
    common = {"dry_run": True, "device": "cpu", "data": "", "data_label": "phantom", "peak_tflops": None,
              "outdir": str(tmp_path), "env": None}
    bench = {"batch": 2, "features": 16, "iters": 1, "warmup": 1, "compile_backend": "eager", "textbook_images": 8}
    slow = {"id": "bench", "fn": "bench", "step": "bench_training", "settings": ["fp32", "bf16"], "cap": 1,
            "variants": ["fp32", "bf16"], "bench": bench}
    rows = dc.run_step(slow, common, tmp_path, tmp_path, timeout=0.5)  # importing torch alone takes longer
    assert [(r["setting"], r["status"]) for r in rows] == [("fp32", dc.TIMEOUT), ("bf16", dc.TIMEOUT)]
    assert "s limit" in rows[0]["notes"]
    broken = {"id": "x", "fn": "no_such_step", "step": "fid", "settings": ["domain"], "cap": 60}
    rows = dc.run_step(broken, common, tmp_path, tmp_path, timeout=60)
    assert [(r["setting"], r["status"]) for r in rows] == [("domain", dc.FAILED)]
    assert "KeyError: 'no_such_step'" in rows[0]["notes"]  # the error's last line


def test_bf16_peak_lookup_and_cross_row_ratios():
    assert dc.bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert dc.bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert dc.bf16_peak_tflops("NVIDIA H200") == 989.0
    assert dc.bf16_peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert dc.bf16_peak_tflops("Tesla T4") is None
    rows = [dc.row("bench_training", "fp32", dc.OK, images_per_s=100.0),
            dc.row("bench_training", "bf16", dc.OK, images_per_s=300.0),
            dc.row("bench_training", "textbook", dc.OK, images_per_s=50.0),
            dc.row("bench_training", "compile", dc.OK, images_per_s=600.0),
            dc.row("study", "gpus-per-trial 1", dc.OK, trials_per_gpu_hour=100.0, gpus_per_trial=1.0),
            dc.row("study", "gpus-per-trial 0.5", dc.OK, trials_per_gpu_hour=180.0, gpus_per_trial=0.5)]
    dc.add_ratios(rows)
    dc.add_ratios(rows)  # idempotent: the driver recomputes after every step
    v = {r["setting"]: r for r in rows}
    assert v["bf16"]["values"]["ratio_vs_textbook"] == 6.0 and v["bf16"]["values"]["ratio_vs_fp32"] == 3.0
    assert v["compile"]["values"]["ratio_vs_best_eager"] == 2.0 and "helps" in v["compile"]["ratio"]
    assert v["gpus-per-trial 0.5"]["values"]["ratio_vs_1_gpu"] == 1.8
    assert v["bf16"]["ratio"].count("textbook") == 1
    table = dc.render_table(rows, {"mode": "gpu", "device_name": "X", "torch": "2", "bf16_peak_tflops": None})
    assert table.count("\n| bench_training |") == 4 and "unknown" in table


# ----------------------------------------------------------------------------------------
# CUDA paths (run by the device check's cuda_tests step; skipped here without a GPU)
@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("amp", [False, True])
def test_gpu_training_loop_reports_cuda_memory_and_finite_losses(tmp_path, amp):
    from trainers import metric_keys as K
    from trainers.config import TrialConfig
    from trainers.loop import train

    cfg = TrialConfig(data="phantom", data_limit=64, resolution=32, g_features=16, d_features=16, batch_size=8,
                      iterations=6, report_every=3, eval_at_end=False, fid_every=0, sample_grid=4, device="cuda",
                      amp=amp)
    summary = train(cfg, tmp_path)
    assert summary[K.STATUS] == K.STATUS_FINISHED
    assert all(torch.isfinite(torch.tensor(summary[k])) for k in (K.LOSS_D, K.LOSS_G, K.D_LOSS_MEAN))
    assert 0 < summary[K.PEAK_MEMORY_MB] < 2048  # CUDA max allocated, not the process's RSS
    assert summary[K.IMAGES_PER_S] > 0


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("variant", ["fp32", "bf16", "channels_last"])
def test_gpu_bench_variants_step_on_device(variant):
    import bench_training as bt

    from trainers.presets import get_preset

    amp, channels_last, _ = bt.VARIANTS[variant]
    cfg = get_preset("dcgan", {"batch_size": 8, "g_features": 16, "d_features": 16, "device": "cuda"})
    r = bt.measure_compute(cfg, "cuda", amp=amp, channels_last=channels_last, iters=2, warmup=1)
    assert r["finite"] and r["images_per_s"] > 0 and r["tflops"] > 0 and r["peak_memory_mb"] > 0


@pytest.mark.cuda
@needs_cuda
def test_gpu_fid_path_samples_and_extracts_on_device():
    from trainers import metric_keys as K
    from trainers.config import TrialConfig
    from trainers.evaluation import calculate_metrics, sample_images
    from trainers.evaluation.evaluator import reference_set
    from trainers.models import build_generator

    cfg = TrialConfig(data="phantom", resolution=32, g_features=16, d_features=16, eval_samples=64,
                      allow_low_n=True, device="cuda")
    G = build_generator(cfg).cuda()
    fake = sample_images(G, 64, cfg, "cuda")
    real = reference_set(cfg).to_tensor()[:64]
    m = calculate_metrics(real, fake.cpu(), extractor=dc._UntrainedDomain(32, "cuda"))
    assert m[K.FID] >= 0 and m[K.EVAL_N] == 64


def test_the_script_runs_the_project_venv_not_the_first_python3_on_path(tmp_path):
    """A fresh machine's system python3 has no torch: with $PYTHON unset the script must take .venv/bin/python."""
    if not (ROOT / ".venv" / "bin" / "python").is_file():
        pytest.skip("no .venv in this checkout (the README's first command makes it)")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text("#!/bin/sh\necho 'the system python3 was used' >&2\nexit 97\n")
    (fake / "python3").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    env["PATH"] = f"{fake}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--dry-run" in proc.stdout, proc.stderr[-2000:]
