"""`gan-study rescore`: re-score every finished trial's kept generator with another feature extractor and write
the new columns beside the old.

    gan-study rescore runs/confirm --extractor domain --extractor-seed 1,2
    gan-study rescore results/belmekki2022_cpu --extractor xrv --weights ~/weights/xrv-densenet121.pt
    gan-study rescore runs/confirm --extractor inception --weights pt_inception-2015-12-05-6726825d.pth
    gan-study rescore runs/confirm --extractor raddino --weights ~/weights/rad-dino/   # a local HF snapshot

Generators come from DIR/generators/<trial_id>.pt (kept at export: trainers.evaluation.kept_generators) or else
from the trial checkpoints DIR/trials/<id>/checkpoint/checkpoint.pt. Each trial is sampled exactly as its
evaluation was (N, latent seed, class labels) and scored against the same N reference images: every metric of
`Evaluator.evaluate` on features (FID, KID, precision/recall, density/coverage, FID against the test split
beside the training split at the same n, held-out calibrated memorisation shares) is written as
`<metric>@<tag>` (tag: domain, domain-seed1, xrv, inception-2048, raddino). Once per trial, independent of the
extractor: the memorisation shares in pixels (plain `memorisation_pixel_*` columns) and the 8 closest
synthetic/training pairs (DIR/memorisation/<trial_id>.npz, shown by the dashboard). Columns go into
DIR/rescore.parquet (kept across re-runs; `analyze` reads it) and DIR/trials.parquet beside the trial's own.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from trainers.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="DIR", help="a study directory (a run's --out or an exported results/ one)")
    parser.add_argument("--extractor", required=True, help="domain | xrv | inception | raddino")
    parser.add_argument("--extractor-seed", default="0",
                        help="the domain extractor's training seed; comma-separated for several (1,2); trials use 0")
    parser.add_argument("--weights", help="local weights: a file for inception/xrv, a directory for raddino "
                                          "(else $GAN_STUDY_INCEPTION_WEIGHTS / $GAN_STUDY_XRV_WEIGHTS / "
                                          "$GAN_STUDY_RAD_DINO_WEIGHTS)")
    parser.add_argument("--inception-dims", type=int, default=2048, choices=(64, 192, 768, 2048))
    parser.add_argument("--data", help="where the study's data is on this machine, when the recorded path is not")
    parser.add_argument("--no-pixels", action="store_true",
                        help="skip the pixel-space memorisation shares and the nearest pairs")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")


def main(args: argparse.Namespace) -> int:
    from trainers.layout import TRIALS_FILE
    from trainers.evaluation.extractors import ExtractorChoice
    from trainers.evaluation.outputs import RESCORE_FILE

    study_dir = Path(args.study).expanduser()
    choices = [ExtractorChoice(args.extractor, seed, args.weights, args.inception_dims)
               for seed in _seeds(args.extractor_seed)]
    trials = _finished_trials(study_dir)
    frame, notes = rescore_study(study_dir, trials, choices, data=args.data, pixels=not args.no_pixels,
                                 device=args.device)
    write_columns(study_dir, frame)
    print(render_table(trials, frame, choices))
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {len(frame.columns) - 1} columns for {len(frame)} trial(s) to {study_dir / RESCORE_FILE} "
          f"and {study_dir / TRIALS_FILE}")
    return 0


def rescore_study(study_dir: Path, trials: Any, choices: list, *, data: str | None = None, pixels: bool = True,
                  device: str = "cpu", cache_dir: str | Path | None = None) -> tuple[Any, list[str]]:
    """(one row per re-scored trial: trial_id and the new columns, notes) for the finished `trials`."""
    import pandas as pd

    from analysis.yardstick import resolve_data
    from trainers import metric_keys as K
    from trainers.config import TrialConfig
    from trainers.evaluation.kept_generators import generator_files, load_generator_file
    from trainers.evaluation.memorisation import save_pairs
    from trainers.evaluation.outputs import PAIRS_DIRNAME
    from trainers.evaluation.rescore import Rescorer, setting_of

    dirs = dict(zip(trials["trial_id"].astype(str), trials.get("trial_dir", trials["trial_id"]).astype(str)))
    files = generator_files(study_dir, dirs)
    if not files:
        raise UserError(f"{study_dir} keeps no generator of its {len(dirs)} finished trial(s): neither generators/"
                        "<trial_id>.pt nor trials/<id>/checkpoint/checkpoint.pt (export with "
                        "trainers.evaluation.kept_generators.keep_generators to keep them)")
    left_out = len(dirs) - len(files)
    notes = [f"{left_out} finished trial(s) without a kept generator left out"] if left_out else []
    recorded = trials.set_index(trials["trial_id"].astype(str))
    rescorers: dict[tuple, Rescorer] = {}
    rows = []
    for i, (tid, file) in enumerate(sorted(files.items()), 1):
        G, cfg, _ = load_generator_file(file, device)
        cfg = TrialConfig.from_dict({**cfg.to_dict(), "data": resolve_data(data or cfg.data)})
        n = recorded.at[tid, K.EVAL_N] if K.EVAL_N in recorded.columns else None
        n = int(n) if pd.notna(n) else cfg.eval_samples  # the N the trial measured with
        row: dict[str, Any] = {"trial_id": tid}
        images = None
        for choice in choices:
            key = (setting_of(cfg, n), choice)
            if key not in rescorers:
                same = next((r for (s, _), r in rescorers.items() if s == key[0]), None)
                rescorers[key] = Rescorer(cfg, n, choice, device=device, cache_dir=cache_dir,
                                          reference=same.reference_all if same else None,
                                          heldout=same.heldout if same else None)
                if rescorers[key].heldout_missing:
                    notes.append(f"{cfg.data}: {rescorers[key].heldout_missing}: test-split FID and memorisation "
                                 "shares are NaN")
            r = rescorers[key]
            images = r.images(G, cfg) if images is None else images
            scored = r.score(images)
            row.update({f"{k}{K.RESCORE_SEP}{choice.tag}": v for k, v in scored.items() if k in K.RESCORED_METRICS})
        if pixels and images is not None:
            row.update(r.pixel_memorisation(images))
            if _finite(images):
                save_pairs(study_dir / PAIRS_DIRNAME / f"{tid}.npz", r.pairs(images))
        rows.append(row)
        print(f"re-scored {i}/{len(files)}: {tid}", file=sys.stderr)
    frame = pd.DataFrame(rows)
    return frame, notes + [note for c in choices if (note := reproduction_note(recorded, frame, c.tag))]


def reproduction_note(recorded: Any, frame: Any, tag: str) -> str:
    """How closely an extractor that *is* the trials' own by name re-scores their recorded FIDs, and whether its
    weights are theirs (a retrained domain extractor can differ: other thread counts, other hardware)."""
    from trainers import metric_keys as K

    sep = K.RESCORE_SEP
    need = [f"{K.EVAL_EXTRACTOR}{sep}{tag}", f"{K.FID}{sep}{tag}", f"{K.EVAL_EXTRACTOR_SHA256}{sep}{tag}"]
    if any(c not in frame.columns for c in need) or any(c not in recorded.columns for c in (K.FID, K.EVAL_EXTRACTOR)):
        return ""
    rows = frame.set_index("trial_id")
    own = recorded.reindex(rows.index)
    same = rows[need[0]].astype(str) == own[K.EVAL_EXTRACTOR].astype(str)
    if not same.any():
        return ""
    rel = ((rows.loc[same, need[1]] - own.loc[same, K.FID]).abs() / own.loc[same, K.FID].abs()).max()
    if K.EVAL_EXTRACTOR_SHA256 in own.columns and own.loc[same, K.EVAL_EXTRACTOR_SHA256].notna().all():
        theirs = sorted(set(own.loc[same, K.EVAL_EXTRACTOR_SHA256].astype(str)) - {""})
        ours = sorted(set(rows.loc[same, need[2]].astype(str)))
        if theirs and theirs != ours:
            return (f"{tag}: named as the trials' extractor but its weights differ (here {', '.join(ours)}, the "
                    f"trials' {', '.join(theirs)}; a retrained domain extractor depends on thread count and "
                    f"hardware): FIDs differ from the recorded ones by up to {rel:.1%}; point GAN_STUDY_CACHE at the "
                    "study machine's cache to re-score with its extractor")
    return f"{tag}: re-scores the recorded FIDs of {int(same.sum())} trial(s) within {rel:.1e} (relative)"



def _finite(images: Any) -> bool:
    import torch

    return bool(torch.isfinite(images).all())


def write_columns(study_dir: Path, frame: Any) -> None:
    """Merge `frame` (trial_id + columns) into DIR/rescore.parquet (all rows kept) and DIR/trials.parquet
    (its rows), replacing columns of the same name; both written atomically."""
    import pandas as pd

    from trainers.layout import TRIALS_FILE
    from trainers.atomic import atomic_path
    from trainers.evaluation.outputs import RESCORE_FILE

    new = [c for c in frame.columns if c != "trial_id"]
    for name, how in ((RESCORE_FILE, "outer"), (TRIALS_FILE, "left")):
        path = study_dir / name
        if not path.is_file():
            if name == RESCORE_FILE:
                _write(frame, path, atomic_path)
            continue
        old = pd.read_parquet(path)
        old = old.drop(columns=[c for c in new if c in old.columns])
        key = old["trial_id"].astype(str)
        merged = old.assign(trial_id=key).merge(frame.assign(trial_id=frame["trial_id"].astype(str)),
                                                on="trial_id", how=how)
        _write(merged, path, atomic_path)


def _write(df: Any, path: Path, atomic_path: Any) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def _finished_trials(study_dir: Path) -> Any:
    import pandas as pd

    from trainers.layout import TRIALS_FILE
    from trainers import metric_keys as K

    path = study_dir / TRIALS_FILE
    if not study_dir.is_dir():
        raise UserError(f"study directory {study_dir} does not exist")
    if not path.is_file():
        raise UserError(f"{study_dir} has no {TRIALS_FILE}: not a study directory with results")
    trials = pd.read_parquet(path)
    if K.STATUS in trials.columns:
        trials = trials[trials[K.STATUS].astype(str) == K.STATUS_FINISHED]
    if trials.empty:
        raise UserError(f"{study_dir} has no finished trial to re-score")
    return trials.reset_index(drop=True)


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--extractor-seed {text!r}: give an integer or comma-separated integers (1,2)") from None
    if not seeds:
        raise UserError("--extractor-seed is empty")
    return list(dict.fromkeys(seeds))


def render_table(trials: Any, frame: Any, choices: list) -> str:
    """One line per trial: the recorded FID, each re-scored FID and test-split FID, the copy shares and flags."""
    from trainers import metric_keys as K

    recorded = trials[K.FID] if K.FID in trials.columns else [math.nan] * len(trials)
    fid = dict(zip(trials["trial_id"].astype(str), recorded))
    header = ["trial", "FID (recorded)"]
    for c in choices:
        header += [f"FID {c.tag}", f"FID test {c.tag}", f"share<p1 {c.tag} (held-out)", f"flag {c.tag}"]
    pixel = K.MEMORISATION_PIXEL_SHARE_P1 in frame.columns
    if pixel:
        header += ["pixel share<p1 (held-out)", "pixel flag"]
    lines = []
    for _, r in frame.iterrows():
        cells = [str(r["trial_id"]), _f(fid.get(str(r["trial_id"]), math.nan))]
        for c in choices:
            g = lambda k: r.get(f"{k}{K.RESCORE_SEP}{c.tag}", math.nan)  # noqa: E731
            cells += [_f(g(K.FID)), f"{_f(g(K.FID_TEST))} (n={_f(g(K.EVAL_TEST_N), 0)})",
                      f"{_f(g(K.MEMORISATION_SHARE_P1))} ({_f(g(K.MEMORISATION_HELDOUT_SHARE_P1))})",
                      _flag(g(K.MEMORISATION_FLAGGED))]
        if pixel:
            cells += [f"{_f(r[K.MEMORISATION_PIXEL_SHARE_P1])} ({_f(r[K.MEMORISATION_PIXEL_HELDOUT_SHARE_P1])})",
                      _flag(r[K.MEMORISATION_PIXEL_FLAGGED])]
        lines.append(cells)
    widths = [max(len(x) for x in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*cells).rstrip() for cells in lines])


def _f(v: Any, digits: int = 3) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if not math.isfinite(v) else f"{v:.{digits}f}"


def _flag(v: Any) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if not math.isfinite(v) else ("COPIES" if v >= 0.5 else "no")
