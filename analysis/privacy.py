"""Memorisation in the analysis (issue 23 section 2): each trial's share of synthetic images closer to a training
image than held-out real images are (feature space at every evaluation; pixels after `gan-study rescore`), beside
the held-out reference share, and the closest synthetic/training pairs of the best trials, as pictures.

Pairs are read from STUDY_DIR/memorisation/<trial_id>.npz (written by `gan-study rescore`); with compute=True a
best trial whose generator is kept (trial checkpoint or generators/<id>.pt) and whose data is on this machine gets
its pairs computed and written there (pixels only: no extractor is trained).
"""
from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import columns as C
from trainers import metric_keys as mk
from trainers.evaluation.outputs import PAIRS_DIRNAME

BEST_TRIALS = 3  # trials whose nearest pairs the dashboard shows, best FID first
TILE_PX = 64  # each image is drawn at least this large (nearest-neighbour upscaling keeps pixels visible)
FEATURE_COLUMNS = {"share < p1": mk.MEMORISATION_SHARE_P1, "held-out share < p1": mk.MEMORISATION_HELDOUT_SHARE_P1,
                   "share < p5": mk.MEMORISATION_SHARE_P5, "held-out share < p5": mk.MEMORISATION_HELDOUT_SHARE_P5,
                   "flagged": mk.MEMORISATION_FLAGGED}
PIXEL_COLUMNS = {"pixel share < p1": mk.MEMORISATION_PIXEL_SHARE_P1,
                 "pixel held-out share < p1": mk.MEMORISATION_PIXEL_HELDOUT_SHARE_P1,
                 "pixel share < p5": mk.MEMORISATION_PIXEL_SHARE_P5,
                 "pixel held-out share < p5": mk.MEMORISATION_PIXEL_HELDOUT_SHARE_P5,
                 "pixel flagged": mk.MEMORISATION_PIXEL_FLAGGED}


def feature_suffix(df: pd.DataFrame) -> str:
    """Whose feature-space shares to show: the trials' own ("") when measured at their evaluations, else those of
    the first re-scored extractor tag ("@domain") for studies evaluated before these metrics existed."""
    if mk.MEMORISATION_SHARE_P1 in df.columns and df[mk.MEMORISATION_SHARE_P1].notna().any():
        return ""
    prefix = mk.MEMORISATION_SHARE_P1 + mk.RESCORE_SEP
    tags = sorted(c[len(prefix):] for c in df.columns if str(c).startswith(prefix) and df[c].notna().any())
    return mk.RESCORE_SEP + tags[0] if tags else ""


def memorisation_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial with a measured share (best FID first): FID, the shares beside their held-out
    references, and the flags (1 = more copies than chance). Empty when no trial has one."""
    suffix = feature_suffix(df)
    label = f" ({suffix[1:]})" if suffix else ""
    features = {name + label: col + suffix for name, col in FEATURE_COLUMNS.items()}
    cols = {k: v for k, v in {**features, **PIXEL_COLUMNS}.items() if v in df.columns and df[v].notna().any()}
    if not cols or df.empty:
        return pd.DataFrame()
    measured = df.loc[df[list(cols.values())].notna().any(axis=1)]
    if mk.FID in measured.columns:
        measured = measured.sort_values(mk.FID, kind="stable", na_position="last")
    out = pd.DataFrame({"trial": measured[C.TRIAL_KEY].astype(str).to_numpy()})
    if mk.FID in measured.columns:
        out["FID"] = measured[mk.FID].to_numpy()
    for name, col in cols.items():
        out[name] = measured[col].to_numpy()
    return out.reset_index(drop=True)


def summary_line(df: pd.DataFrame) -> str:
    """'2 of 12 trials flagged in feature space, 1 of 12 in pixels' (or '' when nothing was measured)."""
    parts = []
    suffix = feature_suffix(df)
    where = f"in the feature space of {suffix[1:]}" if suffix else "in the extractor's feature space"
    for col, where in ((mk.MEMORISATION_FLAGGED + suffix, where), (mk.MEMORISATION_PIXEL_FLAGGED, "in pixels")):
        if col in df.columns and df[col].notna().any():
            v = df[col].dropna()
            parts.append(f"{int((v >= 0.5).sum())} of {len(v)} trials flagged {where}")
    return "; ".join(parts)


@dataclass
class PairsRecord:
    """The nearest pairs of one trial, for the dashboard."""

    trial: str
    fid: float
    pairs: Any  # trainers.evaluation.memorisation.NearestPairs
    flagged: float = math.nan  # feature-space flag of the trial (1 = copies)
    pixel_flagged: float = math.nan


def nearest_pair_records(trials: pd.DataFrame, *, best: int = BEST_TRIALS, compute: bool = False,
                         device: str = "cpu") -> tuple[list[PairsRecord], list[str]]:
    """(pairs of the `best` lowest-FID trials that have them, notes on those without)."""
    if trials.empty or mk.FID not in trials.columns or C.STUDY_DIR not in trials.columns:
        return [], []
    ranked = trials.dropna(subset=[mk.FID]).sort_values(mk.FID, kind="stable").head(best)
    records, missing = [], []
    for _, row in ranked.iterrows():
        study_dir, tid = Path(str(row[C.STUDY_DIR])), str(row[C.TRIAL_ID])
        path = study_dir / PAIRS_DIRNAME / f"{tid}.npz"
        pairs, why = None, ""
        if path.is_file():
            from trainers.evaluation.memorisation import load_pairs

            pairs = load_pairs(path)
        elif compute:
            pairs, why = _compute_pairs(study_dir, row, path, device)
        if pairs is None:
            missing.append(f"{row[C.TRIAL_KEY]}{' (' + why + ')' if why else ''}")
            continue
        records.append(PairsRecord(str(row[C.TRIAL_KEY]), float(row[mk.FID]), pairs,
                                   float(row.get(mk.MEMORISATION_FLAGGED, math.nan)),
                                   float(row.get(mk.MEMORISATION_PIXEL_FLAGGED, math.nan))))
    if not missing:
        return records, []
    return records, [f"no nearest synthetic/training pairs for {', '.join(missing)}: they need the trial's generator "
                     f"(`gan-study rescore DIR --extractor domain` writes DIR/{PAIRS_DIRNAME}/<trial_id>.npz)"]


def _compute_pairs(study_dir: Path, row: pd.Series, path: Path, device: str) -> tuple[Any, str]:
    """Pairs from the trial's kept generator and its data, written to `path`; (None, why) when impossible."""
    from trainers.errors import UserError
    from trainers.evaluation.kept_generators import generator_files

    tid = str(row[C.TRIAL_ID])
    files = generator_files(study_dir, {tid: str(row.get(C.TRIAL_DIR, "") or "")})
    if tid not in files:
        return None, "generator not kept"
    try:
        from analysis.yardstick import resolve_data
        from trainers.config import TrialConfig
        from trainers.evaluation.extractors import ExtractorChoice
        from trainers.evaluation.kept_generators import load_generator_file
        from trainers.evaluation.memorisation import save_pairs
        from trainers.evaluation.rescore import Rescorer

        G, cfg, _ = load_generator_file(files[tid], device)
        cfg = TrialConfig.from_dict({**cfg.to_dict(), "data": resolve_data(cfg.data)})
        n = row.get(mk.EVAL_N)
        n = int(n) if pd.notna(n) else cfg.eval_samples
        r = Rescorer(cfg, n, ExtractorChoice("domain"), device=device)  # the extractor is never built for pairs
        images = r.images(G, cfg)
        pairs = r.pairs(images)
        save_pairs(path, pairs)
        return pairs, ""
    except Exception as exc:  # noqa: BLE001 - the pairs are an extra: they never stop the analysis
        text = str(exc).splitlines()[0][:160] if str(exc) else ""
        return None, (text if isinstance(exc, UserError) else f"{exc.__class__.__name__}: {text}")


def pairs_png(pairs: Any, tile: int = TILE_PX) -> bytes:
    """A PNG: synthetic images on the top row, each one's nearest training image below it."""
    from PIL import Image

    k, h, w = pairs.fake.shape
    scale = max(1, math.ceil(tile / max(h, w)))
    gap = 4
    canvas = Image.new("L", (k * (w * scale + gap) - gap, 2 * h * scale + gap), color=255)
    for i in range(k):
        for r, img in enumerate((pairs.fake[i], pairs.train[i])):
            tile_img = Image.fromarray(np.asarray(img, dtype=np.uint8)).resize((w * scale, h * scale), Image.NEAREST)
            canvas.paste(tile_img, (i * (w * scale + gap), r * (h * scale + gap)))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def pairs_data_uri(pairs: Any) -> str:
    return "data:image/png;base64," + base64.b64encode(pairs_png(pairs)).decode("ascii")


def pairs_caption(rec: PairsRecord) -> str:
    """What a reviewer needs beside the picture: the trial, its FID, the distances and their held-out yardstick."""
    d = rec.pairs.distances
    held = rec.pairs.heldout_thresholds
    scale = (f"; held-out images lie at >= {held[min(held)]:.2f} from their nearest training image for 99% of "
             f"them (1st percentile)" if held else "")
    flags = [f"{where}: {'COPIES flagged' if v >= 0.5 else 'not flagged'}"
             for v, where in ((rec.flagged, "features"), (rec.pixel_flagged, "pixels")) if math.isfinite(v)]
    return (f"{rec.trial}, FID {rec.fid:.2f}: top row synthetic, bottom row the nearest training image; pixel "
            f"distances {d.min():.2f}-{d.max():.2f}{scale}" + (f" ({'; '.join(flags)})" if flags else ""))
