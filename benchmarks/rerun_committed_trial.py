"""Re-run one committed trial from its recorded configuration and compare what it computes with the
committed row: does a fresh clone reproduce the reference study's numbers, not only its code path?

Usage: python3 benchmarks/rerun_committed_trial.py [--study belmekki2022_cpu] [--trial TRIAL_ID] [--out DIR]
Prints each compared metric (committed, rerun, difference). Exact equality is expected on the same CPU
architecture and torch build; another build may differ in the last bits and, through chaotic GAN
training, more.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# committed trials.parquet column -> the key of train()'s summary
RENAMED = {"iterations_done": "iteration"}
COMPARED = ("iterations_done", "d_loss_mean", "d_loss_var", "g_loss_mean", "t0", "loss_d", "loss_g", "fid", "kid_mean")


def main() -> int:
    import pandas as pd

    from trainers.config import TrialConfig
    from trainers.loop import train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="belmekki2022_cpu")
    ap.add_argument("--trial", default="", help="trial_id (default: the committed trial with the shortest wall time)")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    trials = pd.read_parquet(ROOT / "results" / args.study / "trials.parquet")
    row = trials.loc[trials["trial_id"] == args.trial].iloc[0] if args.trial else trials.sort_values("wall_s").iloc[0]
    fields = {c.removeprefix("config/"): v for c, v in row.items() if c.startswith("config/") and c != "config/ttur"}
    fields = {k: (v.item() if hasattr(v, "item") else v) for k, v in fields.items() if not _missing(v)}
    data = Path(fields["data"])
    fields["data"] = str(data if data.is_absolute() else (ROOT / data).resolve())
    cfg = TrialConfig.from_dict(fields)
    out = Path(args.out or tempfile.mkdtemp(prefix="rerun-"))
    print(f"re-running {args.study}/{row['trial_id']} ({cfg.optimizer}, {cfg.g_activation}, seed {cfg.seed}) in {out}")
    summary = train(cfg, out)
    worst = 0.0
    for key in COMPARED:
        a, b = float(row[key]), float(summary.get(RENAMED.get(key, key), math.nan))
        diff = 0.0 if a == b or (math.isnan(a) and math.isnan(b)) else abs(a - b)
        worst = max(worst, diff / max(abs(a), 1e-12))
        print(f"{key:>16}: committed {a:.10g}  rerun {b:.10g}  |diff| {diff:.3g}")
    print(f"largest relative difference: {worst:.3g}" + ("  (identical)" if worst == 0 else ""))
    return 0


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


if __name__ == "__main__":
    sys.exit(main())
