"""`gan-study trial`: train one configuration without Ray and write its results to a directory.

Writes OUT/config.json, OUT/metrics.jsonl and OUT/metrics.parquet (one row per report),
OUT/iterations.csv (one row per iteration), OUT/summary.json, OUT/samples/*.png and
OUT/checkpoint/checkpoint.pt. Running it again on the same OUT resumes the run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trainers import metric_keys as K
from trainers.config import TrialConfig, load_config
from trainers.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--preset", default=None, help="named configuration (see trainers/presets.py); default 'smoke'")
    src.add_argument("--config", default=None, help="flat JSON/YAML file of TrialConfig keys")
    parser.add_argument("--data", default=None, help="phantom | pneumoniamnist | path to a Kaggle tree or .npz")
    parser.add_argument("--out", required=True, help="output directory (re-running resumes)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set iterations=500 (repeatable)")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`key=value` strings -> dict; values are typed later by TrialConfig.from_dict."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} must look like key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


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
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.json")
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

    summary = train(cfg, out, reporter=report, resume=not args.fresh)
    _write_parquet(out)
    status = summary.get(K.STATUS, "?")
    print(f"{status}" + (f": {summary.get(K.REASON)}" if summary.get(K.REASON) else "") + f"; results in {out}")
    return 0 if status in (K.STATUS_FINISHED, K.STATUS_DIVERGED) else 1


def _write_parquet(out: Path) -> None:
    import pandas as pd

    lines = (out / "metrics.jsonl").read_text().splitlines() if (out / "metrics.jsonl").exists() else []
    if lines:
        pd.DataFrame([json.loads(ln) for ln in lines]).to_parquet(out / "metrics.parquet", index=False)


if __name__ == "__main__":
    from study.cli import main as cli_main

    sys.exit(cli_main(["trial", *sys.argv[1:]]))
