"""`gan-study trial`: train one configuration without Ray and write its results to a directory.

Writes OUT/config.json, OUT/metrics.jsonl and OUT/metrics.parquet (one row per report),
OUT/iterations.csv (one row per iteration), OUT/summary.json, OUT/samples/*.png and
OUT/checkpoint/checkpoint.pt. Running it again on the same OUT resumes the run; with another config
it stops and names the keys that differ (`--fresh` deletes the old run and starts over), so config.json
always describes the weights beside it.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from trainers import metric_keys as K
from trainers.config import TrialConfig, load_config, parse_overrides
from trainers.errors import UserError
from trainers.layout import (CHECKPOINT_DIRNAME, CONFIG_FILE, ITERATIONS_FILE, METRICS_FILE, METRICS_PARQUET_FILE,
                             SAMPLES_DIR, SUMMARY_FILE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--preset", default=None, help="named configuration (see trainers/presets.py); default 'smoke'")
    src.add_argument("--config", default=None, help="flat JSON/YAML file of TrialConfig keys")
    parser.add_argument("--data", default=None, help="phantom | pneumoniamnist | path to a Kaggle tree, .npz, "
                                                     "label-sheet folder (nih:, chexpert:, mimic:, rsna:) or .csv")
    parser.add_argument("--out", required=True, help="output directory (re-running resumes)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set iterations=500 (repeatable)")
    parser.add_argument("--fresh", action="store_true",
                        help="delete a previous run in --out (checkpoint, logs, samples) and start over")


def build_config(args: argparse.Namespace) -> TrialConfig:
    overrides = parse_overrides(args.overrides)
    if args.data:
        overrides["data"] = args.data
    if args.config:
        return load_config(args.config, overrides)
    from trainers.presets import get_preset

    return get_preset(args.preset or "smoke").replace(**overrides) if overrides else get_preset(args.preset or "smoke")


def main(args: argparse.Namespace) -> int:
    from trainers.loop import train

    cfg = build_config(args)
    out = Path(args.out)
    if args.fresh:
        clear_run(out)
    else:
        check_resumable(out, cfg)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / CONFIG_FILE)
    print(f"trial {cfg.name}: {cfg.resolution}px {cfg.optimizer} lr_g={cfg.lr_g} lr_d={cfg.lr_d} "
          f"{cfg.iterations} iterations on {cfg.data} -> {out}", flush=True)

    def report(metrics: dict, ckpt: Path | None) -> None:
        fid = metrics.get(K.FID)
        print(
            f"  it {metrics[K.ITERATION]:>6}  loss_d {metrics[K.LOSS_D]:.4f}  loss_g {metrics[K.LOSS_G]:.4f}  "
            f"D(x) {metrics[K.D_X]:.3f}  D(G(z)) {metrics[K.D_G_Z]:.3f}  d_loss_mean {metrics[K.D_LOSS_MEAN]:.4f}  "
            f"{metrics[K.IMAGES_PER_S]:.0f} img/s" + (f"  FID {fid:.2f}" if fid is not None else ""),
            flush=True,
        )

    summary = train(cfg, out, reporter=report, resume=True)
    _write_parquet(out)
    status = summary.get(K.STATUS, "?")
    print(f"{status}" + (f": {summary.get(K.REASON)}" if summary.get(K.REASON) else "") + f"; results in {out}")
    return 0 if status in (K.STATUS_FINISHED, K.STATUS_DIVERGED) else 1


def check_resumable(out: Path, cfg: TrialConfig) -> None:
    """Refuse to continue a checkpoint of another config in `out` (one line naming the differing keys)."""
    from trainers.checkpoint import RESUMABLE_KEYS, checkpoint_path, config_changes, load_checkpoint

    ckpt = checkpoint_path(out)
    if not ckpt.is_file():
        return
    changes = config_changes(load_checkpoint(ckpt).get("config", {}), cfg.to_dict())
    if changes:
        diff = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())
        raise UserError(f"{out} holds a run of another config ({diff}); rerun with its settings to resume "
                        f"(only {', '.join(RESUMABLE_KEYS)} may change), or add --fresh to delete it and start over")


def clear_run(out: Path) -> None:
    """Delete what a previous run wrote to `out` (and nothing else the directory holds)."""
    for name in (CHECKPOINT_DIRNAME, SAMPLES_DIR):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in (CONFIG_FILE, METRICS_FILE, METRICS_PARQUET_FILE, ITERATIONS_FILE, SUMMARY_FILE):
        (out / name).unlink(missing_ok=True)


def _write_parquet(out: Path) -> None:
    import pandas as pd

    log = out / METRICS_FILE
    lines = log.read_text().splitlines() if log.exists() else []
    if lines:
        pd.DataFrame([json.loads(ln) for ln in lines]).to_parquet(out / METRICS_PARQUET_FILE, index=False)


if __name__ == "__main__":
    from study.cli import main as cli_main

    sys.exit(cli_main(["trial", *sys.argv[1:]]))
