"""Fabricated study directories in the exact docs/RESULTS_SCHEMA.md layout, for analysis tests.

Ground truth built in: within each loss type FID falls as the D-loss mean rises (r < 0), but the hinge
loss has both a larger D-loss scale and worse FIDs, so pooling loss types naively flips the sign;
AdaS, ELU and TTUR lower FID; TSTR accuracy falls with FID; augmentation gains ~3 points.
Besides finished trials the study holds a running, an errored (NaN metrics), a diverged and a
pending trial, and a sample PNG per report.
"""
from __future__ import annotations

import itertools
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from trainers import metric_keys as mk
from trainers.config import TrialConfig

CLASSES = ("NORMAL", "PNEUMONIA")
TEST_SUPPORT = {"NORMAL": 234, "PNEUMONIA": 390}
LOSS_SCALE = {"bce": (0.7, 0.25, 80.0), "hinge": (2.0, 0.6, 200.0)}  # D-loss mean, its spread, base FID
REPORTS = 5
REPORT_EVERY = 100
FID_AT = (2, 4, 5)  # 1-based reports where FID was measured


def make_study(
    root: Path,
    name: str = "fabricated",
    *,
    seeds: tuple[int, ...] = (0, 1),
    losses: tuple[str, ...] = ("bce", "hinge"),
    with_fid: bool = True,
    with_downstream: bool = True,
    with_memory: bool = True,
    extra_trials: bool = True,
    rng_seed: int = 0,
    plan: dict | None = None,
    plan_recorded_at: str = "2023-11-01T00:00:00Z",
) -> Path:
    """Write STUDY_DIR with study.json, history.parquet, trials.parquet, memory.parquet and samples.

    `plan`: an analysis plan (analysis/plan.py) recorded in study.json at `plan_recorded_at` (UTC); the
    default time lies before the fabricated reports (from 2023-11-14), so the plan is pre-registered.
    """
    study_dir = Path(root) / name
    study_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(rng_seed)
    history: list[dict] = []
    trials: list[dict] = []
    grid = itertools.product(("adam", "adas"), ("relu", "elu"), (False, True), (32, 64), losses, seeds)
    for i, (opt, act, ttur, batch, loss, seed) in enumerate(grid):
        cfg = _config(opt, act, ttur, batch, loss, seed, with_downstream)
        quality = (opt == "adas") * 0.5 + (act == "elu") * 0.25 + ttur * 0.4 + rng.normal(0, 0.5)
        _trial(study_dir, f"t{i:04d}", cfg, quality, rng, history, trials, with_fid, with_downstream)
    if extra_trials:
        base = _config("adam", "relu", False, 64, losses[0], 9, with_downstream)
        _trial(study_dir, "run0", base, 0.0, rng, history, trials, with_fid, with_downstream, status="running")
        _trial(study_dir, "err0", base, 0.0, rng, history, trials, with_fid, with_downstream, status="errored")
        _trial(study_dir, "div0", base, 0.0, rng, history, trials, with_fid, with_downstream, status="diverged")
        trials.append({**_common(name, "pend0", base), mk.STATUS: "pending", mk.REASON: "", "reports": 0})
    for row in history + trials:
        row.setdefault("study", name)
    pd.DataFrame(history).to_parquet(study_dir / "history.parquet", index=False)
    pd.DataFrame(trials).to_parquet(study_dir / "trials.parquet", index=False)
    if with_memory:
        memory_frame().to_parquet(study_dir / "memory.parquet", index=False)
    spec = {"name": name, "space": "fabricated", "num_samples": 1}
    if plan is not None:
        from analysis.plan import parse_plan, record_plan

        spec["plan"] = {**record_plan(parse_plan(plan), source="test"), "recorded_at": plan_recorded_at}
    (study_dir / "study.json").write_text(json.dumps(spec))
    return study_dir


def memory_frame() -> pd.DataFrame:
    """`gan-study memory` output: BN costs 7% at 32 feature maps down to 1.2% at 320 (seed 002 Fig. 8)."""
    rows = []
    for net, res, feat, norm in itertools.product(("G", "D"), (64, 128),
                                                  range(32, 321, 32), ("batch", "none")):
        mem_bn = 0.02 * feat**1.6 * (res / 64) ** 2
        saving = 0.07 - (0.07 - 0.012) * (feat - 32) / (320 - 32)
        mem = mem_bn if norm == "batch" else mem_bn * (1 - saving)
        rows.append({"network": net, "resolution": res, "features": feat, "norm": norm, "params": int(feat**2 * 50),
                         "param_mb": feat**2 * 50 * 4 / 2**20, "activation_mb_per_image": mem * 0.8,
                         "mem_per_image_mb": mem, "device": "cpu", "method": "saved_tensors"})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------
def _config(opt: str, act: str, ttur: bool, batch: int, loss: str, seed: int, downstream: bool) -> dict:
    cfg = TrialConfig(
        optimizer=opt, g_activation=act, d_activation="elu" if act == "elu" else "leaky_relu",
        lr_d=4e-4 if ttur else 2e-4, batch_size=batch, loss=loss, seed=seed, d_norm="batch" if loss != "wgan_gp"
        else "layer", iterations=REPORTS * REPORT_EVERY, report_every=REPORT_EVERY, fid_every=2,
        conditioning="acgan" if downstream else "none", downstream="tstr,augment" if downstream else "",
    )
    return cfg.to_dict() | {"ttur": cfg.ttur}


def _common(study: str, trial_id: str, cfg: dict) -> dict:
    return {"study": study, "trial_id": trial_id, **{f"config/{k}": v for k, v in cfg.items()}}


def _trial(study_dir: Path, trial_id: str, cfg: dict, quality: float, rng: np.random.Generator,
           history: list[dict], trials: list[dict], with_fid: bool, with_downstream: bool,
           status: str = mk.STATUS_FINISHED) -> None:
    mean0, spread, base_fid = LOSS_SCALE[cfg["loss"]]
    z = quality + rng.normal(0, 0.3)
    final_fid = max(5.0, base_fid - 25.0 * z + rng.normal(0, 6.0))
    d_mean = mean0 + spread * z / 1.5 + rng.normal(0, spread * 0.15)
    var_scale, dx_shift = rng.uniform(0.5, 1.5), rng.normal(0, 0.05)
    n_reports = {mk.STATUS_FINISHED: REPORTS, "running": 3, "errored": 2, "diverged": 4}[status]
    rows = []
    for rep in range(1, n_reports + 1):
        frac = rep / REPORTS
        broken = status == "errored"  # every report NaN: the trial failed from the start
        row = {**_common(study_dir.name, trial_id, cfg), "timestamp": 1.7e9 + rep * 10.0}
        loss_d = d_mean * (0.6 + 0.5 * frac) + rng.normal(0, 0.02)
        row |= {mk.ITERATION: rep * REPORT_EVERY, mk.EPOCH: rep * 0.5, mk.LOSS_D: loss_d,
                mk.LOSS_G: 2.0 - loss_d + rng.normal(0, 0.05), mk.D_X: 0.7 - 0.1 * frac + dx_shift,
                mk.D_G_Z: 0.2 + 0.1 * frac - dx_shift,
                mk.GRAD_NORM_D: 1.0, mk.GRAD_NORM_G: 1.0, mk.D_LOSS_MEAN: d_mean * (0.6 + 0.4 * frac),
                mk.D_LOSS_VAR: (spread * 0.5 * var_scale) ** 2, mk.D_LOSS_STD: spread * 0.5 * var_scale,
                mk.G_LOSS_MEAN: 2.0 - d_mean,
                mk.T0: 150.0 + 50 * (cfg["batch_size"] == 64) if rep > 1 else np.nan,
                mk.IMAGES_PER_S: 30.0, mk.PEAK_MEMORY_MB: 500.0, mk.PARAMS_G: 3.5e6, mk.PARAMS_D: 2.8e6,
                mk.WALL_S: rep * 10.0, mk.STATUS: "running", mk.REASON: "",
                mk.SAMPLE_PATH: f"trials/{trial_id}/samples/step_{rep * REPORT_EVERY:07d}.png"}
        if broken:
            for key in (mk.LOSS_D, mk.LOSS_G, mk.D_X, mk.D_G_Z, mk.D_LOSS_MEAN, mk.D_LOSS_VAR, mk.D_LOSS_STD):
                row[key] = np.nan
        if with_fid and rep in FID_AT and not broken and status != "running":
            fid = final_fid * (1.0 + 0.8 * (1.0 - frac)) if status == mk.STATUS_FINISHED else np.nan
            row |= {mk.FID: fid, mk.KID_MEAN: fid / 4000.0, mk.KID_STD: 0.001, mk.PRECISION: 0.6, mk.RECALL: 0.5,
                    mk.EVAL_EXTRACTOR: "domain:fabricated", mk.EVAL_N: 1024}
        rows.append(row)
        _sample_png(study_dir / row[mk.SAMPLE_PATH], z, rep)
    last = rows[-1]
    last[mk.STATUS] = status
    last[mk.REASON] = {"errored": "RuntimeError: CUDA error", "diverged": "both losses rose 20x"}.get(status, "")
    if with_downstream and status == mk.STATUS_FINISHED:
        last |= _downstream(final_fid, rng)
    history.extend(rows)
    summary = pd.DataFrame(rows).ffill().iloc[-1].to_dict()  # last non-null value of every column
    fids = [r.get(mk.FID, np.nan) for r in rows]
    best = int(np.nanargmin(fids)) if np.isfinite(fids).any() else None
    summary |= {mk.STATUS: status, mk.REASON: last[mk.REASON], "iterations_done": last[mk.ITERATION],
                "reports": len(rows), "best_fid": fids[best] if best is not None else np.nan,
                "best_kid_mean": rows[best][mk.KID_MEAN] if best is not None else np.nan,
                "best_fid_iteration": rows[best][mk.ITERATION] if best is not None else np.nan,
                "trial_dir": f"trials/{trial_id}"}
    summary.pop("timestamp", None)
    trials.append(summary)


def _downstream(fid: float, rng: np.random.Generator) -> dict:
    acc = float(np.clip(0.92 - 0.0015 * fid + rng.normal(0, 0.02), 0.5, 0.99))
    out = {mk.TSTR_PREFIX + mk.ACCURACY: acc, mk.TSTR_PREFIX + mk.BALANCED_ACCURACY: acc - 0.02,
           mk.TSTR_PREFIX + mk.ROC_AUC: acc + 0.05}
    recall = {"NORMAL": acc - 0.1, "PNEUMONIA": min(0.99, acc + 0.06)}
    tp = {c: round(recall[c] * TEST_SUPPORT[c]) for c in CLASSES}
    cm = {("NORMAL", "NORMAL"): tp["NORMAL"], ("NORMAL", "PNEUMONIA"): TEST_SUPPORT["NORMAL"] - tp["NORMAL"],
          ("PNEUMONIA", "PNEUMONIA"): tp["PNEUMONIA"],
          ("PNEUMONIA", "NORMAL"): TEST_SUPPORT["PNEUMONIA"] - tp["PNEUMONIA"]}
    for (t, p), v in cm.items():
        out[f"{mk.TSTR_PREFIX}cm_{t}_{p}"] = float(v)
    for c in CLASSES:
        predicted = sum(v for (t, p), v in cm.items() if p == c)
        prec, rec = cm[(c, c)] / predicted, cm[(c, c)] / TEST_SUPPORT[c]
        out |= {f"{mk.TSTR_PREFIX}precision_{c}": prec, f"{mk.TSTR_PREFIX}recall_{c}": rec,
                f"{mk.TSTR_PREFIX}f1_{c}": 2 * prec * rec / (prec + rec)}
    trtr = 0.85 + rng.normal(0, 0.01)
    gain = 0.03 + rng.normal(0, 0.01)
    out |= {mk.TRTR_PREFIX + mk.ACCURACY: trtr, mk.AUGMENT_PREFIX + mk.ACCURACY: trtr + gain, mk.AUGMENT_GAIN: gain}
    return out


def _sample_png(path: Path, z: float, rep: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(str(path).encode()))
    img = np.clip(rng.normal(128 + 20 * z, 40 / rep, size=(32, 32)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)  # 2-D uint8 -> grayscale "L"


def replay_through_store(src: Path, dst: Path) -> Path:
    """Rebuild a fabricated study with the real results writer (study.tables), as a live study would be."""
    import math
    import shutil

    from study.tables import StudyTables, write_tables

    history, trials = pd.read_parquet(src / "history.parquet"), pd.read_parquet(src / "trials.parquet")
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "trials", dst / "trials", dirs_exist_ok=True)
    plain = lambda v: v.item() if hasattr(v, "item") else v
    tables = StudyTables(dst.name, dst)
    for _, row in trials.iterrows():
        cfg = {k.removeprefix("config/"): plain(v) for k, v in row.items()
               if k.startswith("config/") and k != "config/ttur"}
        tables.apply({"event": "trial", "trial_id": row["trial_id"], "status": "running", "reason": "", "config": cfg})
    for _, row in history.iterrows():
        metrics = {k: plain(v) for k, v in row.items() if not k.startswith("config/")
                   and k not in ("study", "trial_id", "timestamp")}
        metrics = {k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isnan(v))}
        tables.apply({"event": "report", "trial_id": row["trial_id"], "timestamp": row["timestamp"],
                      "metrics": metrics})
    for _, row in trials.iterrows():  # statuses only the driver knows (errored, pending)
        if row[mk.STATUS] in ("errored", "pending"):
            tables.apply({"event": "trial", "trial_id": row["trial_id"], "status": row[mk.STATUS],
                          "reason": row[mk.REASON] or ""})
    write_tables(tables, dst)
    return dst


# ----------------------------------------------------------------------
NULL_FACTORS = (("optimizer", ("adam", "adas")), ("batch_size", (16, 32, 64, 128)))  # 8 configurations


def clustered_trials(rng: np.random.Generator, *, factors=NULL_FACTORS, n_seeds: int = 3, effect: float = 0.0,
                     seed_sd: float = 0.2, factor_shift: float = 0.0) -> pd.DataFrame:
    """Trials of every factor combination x n_seeds, in the analysed-trials layout (config/... columns).

    Each configuration draws a random effect on the D-loss mean (a) and on FID (b) with corr(a, b) =
    `effect`; seeds add independent noise (sd `seed_sd`, so seeds of a configuration are near-repeats).
    `factor_shift` adds the same factor-driven term to both variables (a confounder: partial r is 0).
    TSTR accuracy is an independent copy of the FID process, for the downstream test.
    """
    combos = list(itertools.product(*(levels for _, levels in factors)))
    n = len(combos)
    a = rng.normal(size=n)
    b = effect * a + np.sqrt(1.0 - effect**2) * rng.normal(size=n)
    c = rng.normal(size=n)
    shift = factor_shift * np.array([sum(i * (j + 1) for j, i in enumerate(_level_index(combo, factors)))
                                     for combo in combos], dtype=float)
    rows = []
    for i, combo in enumerate(combos):
        for s in range(n_seeds):
            noise = rng.normal(0.0, seed_sd, size=3)
            rows.append({**{C_CFG + k: v for (k, _), v in zip(factors, combo)}, C_CFG + "seed": s,
                         C_CFG + "loss": "bce", "_trial": f"c{i}s{s}", "trial_id": f"c{i}s{s}",
                         mk.D_LOSS_MEAN: a[i] + shift[i] + noise[0],
                         mk.FID: 100.0 + 10.0 * (b[i] + shift[i] + noise[1]),
                         mk.TSTR_PREFIX + mk.ACCURACY: 0.8 + 0.05 * (c[i] + noise[2])})
    return pd.DataFrame(rows)


C_CFG = "config/"


def _level_index(combo: tuple, factors) -> list[int]:
    return [list(levels).index(v) for v, (_, levels) in zip(combo, factors)]
