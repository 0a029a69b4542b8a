"""`gan-study yardstick`: how far apart two samples of real X-rays are with a study's FID extractor (the
floor a perfect generator would score), and whether retraining the domain extractor with another seed
reorders a study's configurations.

    gan-study yardstick --data ../shared/data/pneumoniamnist.npz --resolution 32 --n 1024
    gan-study yardstick --study runs/belmekki --out runs/belmekki/yardstick.json

Without --study: the floor of one setting (--data, --resolution, --extractor, --n). With --study: the
setting(s) the study's results record, the floor of each, and the extractor-seed check from each finished
trial's final generator (STUDY_DIR/trials/<id>/checkpoint/checkpoint.pt), re-scored with extractor seeds
0, 1, 2. Its pass threshold (`analysis.yardstick.SPEARMAN_PASS`) is a constant fixed before any result.
Definitions: docs/STATISTICS.md, "Yardstick".
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from trainers.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="phantom | pneumoniamnist | a folder | an .npz (required without --study; "
                                       "with it, where the study's data is on this machine)")
    parser.add_argument("--resolution", type=int, help="pixels (default 64 without --study)")
    parser.add_argument("--extractor", help="domain | inception | ... (default domain without --study)")
    parser.add_argument("--inception-dims", type=int, default=2048)
    parser.add_argument("--hist-eq", action="store_true", help="histogram-equalised preprocessing")
    parser.add_argument("--class-subset", default="", help="one class's reference images (a class_subset study)")
    parser.add_argument("--n", type=int, help="N images per side (default 1024 without --study)")
    parser.add_argument("--study", help="a study directory: take its measurement setting(s) and re-score its trials")
    parser.add_argument("--seeds", default="0,1,2", help="extractor seeds of the robustness check (must include 0)")
    parser.add_argument("--out", help="write everything as JSON to this file")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")


def main(args: argparse.Namespace) -> int:
    from analysis import yardstick as Y
    from trainers.evaluation.yardstick import SEEDED_EXTRACTORS, Setting

    seeds = _seeds(args.seeds)
    entries: list[dict[str, Any]] = []
    if args.study:
        trials, study_dir = _study_trials(args.study)
        settings = Y.settings_from_trials(trials)
        if not settings:
            raise UserError(f"{study_dir} has no finished trial with a FID, eval_extractor and eval_n")
        for setting, name in settings:
            setting = _override(setting, args)
            floor = Y.yardstick_floor(setting, study_extractor=name, device=args.device, refresh=True)
            entry: dict[str, Any] = {"floor": floor, "study_extractor": name}
            # A pretrained extractor has no seed to vary: its trials get the held-out reference only.
            seeded = setting.extractor in SEEDED_EXTRACTORS
            entry.update(_robustness(study_dir, trials, setting, name, seeds if seeded else [0], args.device))
            if not seeded and "robustness" in entry:
                entry["robustness"].note = (f"extractor {setting.extractor!r} is pretrained: no seed to vary "
                                            "(held-out reference only)")
            entries.append(entry)
    else:
        if not args.data:
            raise UserError("give --data SRC (or --study DIR)")
        if args.n is not None and args.n < 2:
            raise UserError(f"--n {args.n} must be >= 2")
        setting = Setting(data=Y.resolve_data(args.data), resolution=args.resolution or 64, n=args.n or 1024,
                          extractor=args.extractor or "domain", inception_dims=args.inception_dims,
                          hist_eq=args.hist_eq, class_subset=args.class_subset)
        _check_config(setting)
        entries.append({"floor": Y.yardstick_floor(setting, device=args.device, refresh=True), "study_extractor": "",
                        "robustness_skipped": "no --study: no generated images to re-score"})
    print(render_table(entries))
    if args.out:
        out = Path(args.out).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(to_json(entries, args), indent=1, default=_json_default) + "\n")
        print(f"wrote {out}")
    return 0


# ---------------------------------------------------------------------------------------------- study
def _study_trials(study: str) -> tuple[Any, Path]:
    from analysis.load import load_studies
    from trainers.errors import DataError

    study_dir = Path(study).expanduser()
    try:
        data = load_studies([study_dir])
    except DataError as exc:
        raise UserError(str(exc)) from None
    return data.analysed(), study_dir


def _override(setting: Any, args: argparse.Namespace) -> Any:
    """The study's setting; --data may say where its data is here, other options must agree with it."""
    from dataclasses import replace

    from analysis.yardstick import resolve_data

    for opt, value, recorded in (("--resolution", args.resolution, setting.resolution), ("--n", args.n, setting.n),
                                 ("--extractor", args.extractor, setting.extractor)):
        if value is not None and value != recorded:
            raise UserError(f"{opt} {value} differs from the study's {recorded}; drop {opt} to use the study's")
    return replace(setting, data=resolve_data(args.data)) if args.data else setting


def _check_config(setting: Any) -> None:
    from trainers.errors import ConfigError

    try:
        setting.config()
    except ConfigError as exc:
        raise UserError(str(exc)) from None


def _robustness(study_dir: Path, trials: Any, setting: Any, name: str, seeds: list[int], device: str) -> dict:
    """Re-score each finished trial of this setting with every extractor seed (from its final generator)."""
    from analysis import columns as C
    from analysis import yardstick as Y
    from study.generate_command import load_generator
    from trainers import metric_keys as mk
    from trainers.evaluation.yardstick import Yardstick, generator_images, rescore_images
    from trainers.layout import CHECKPOINT_DIRNAME, CHECKPOINT_FILENAME

    df = trials[(trials[mk.EVAL_EXTRACTOR].astype(str) == name) & (trials[mk.EVAL_N] == setting.n)]
    df = df.dropna(subset=[mk.FID]).reset_index(drop=True)
    labels = dict(zip(df[C.TRIAL_ID].astype(str), Y.configuration_labels(df)))
    found, missing = {}, []
    for tid, rel in zip(df[C.TRIAL_ID].astype(str), df.get(C.TRIAL_DIR, df[C.TRIAL_ID]).astype(str)):
        ck = study_dir / rel / CHECKPOINT_DIRNAME / CHECKPOINT_FILENAME
        (found.__setitem__(tid, ck) if ck.is_file() else missing.append(tid))
    if not found:
        return {"robustness_skipped": f"no trial checkpoint under {study_dir}/trials/<id>/{CHECKPOINT_DIRNAME}/ "
                                      f"(generators not kept): re-scoring needs each trial's final generator"}
    yard = Yardstick(setting, device=device)
    if yard.extractor(0).name != name:
        print(f"note: today's code names this setting's extractor {yard.extractor(0).name}; the study recorded {name}",
              file=sys.stderr)
    images = {}
    for i, (tid, ck) in enumerate(sorted(found.items()), 1):
        G, cfg, _ = load_generator(ck, device)
        images[tid] = generator_images(yard, G, cfg, device=device)
        print(f"re-scoring {i}/{len(found)}: {tid}", file=sys.stderr)
    scores = rescore_images(yard, images, seeds)
    recorded = dict(zip(df[C.TRIAL_ID].astype(str), df[mk.FID].astype(float)))
    rob = Y.robustness(scores, {t: labels[t] for t in scores}, recorded_fid=recorded)
    if missing:
        rob.note = (rob.note + "; " if rob.note else "") + f"{len(missing)} trial(s) without a checkpoint left out"
    return {"robustness": rob, "scores": scores, "extractor_names": {s: yard.extractor(s).name for s in seeds}}


def _seeds(text: str) -> list[int]:
    try:
        seeds = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise UserError(f"--seeds {text!r}: give comma-separated integers such as 0,1,2") from None
    if 0 not in seeds:
        raise UserError(f"--seeds {text!r} must include 0, the seed the trials were measured with")
    return seeds


# ---------------------------------------------------------------------------------------------- output
def render_table(entries: list[dict[str, Any]]) -> str:
    """One table: the floor rows and the robustness rows of every setting (numbered above it)."""
    from analysis.yardstick import SPEARMAN_PASS, _f

    head, rows = [], []
    for i, e in enumerate(entries, 1):
        floor, s = e["floor"], e["floor"].setting
        alias = (f" (the study recorded {e['study_extractor']})"
                 if e["study_extractor"] and e["study_extractor"] != floor.extractor_name else "")
        head.append(f"[{i}] extractor {floor.extractor_name}{alias}, N = {s.n}, {s.resolution} px, data {s.data}"
                    f"{', class ' + s.class_subset if s.class_subset else ''}: reference split {floor.reference_size} "
                    f"images, test split {floor.test_size}")
        for r in floor.rows:
            value = "—" if r.skipped else f"{_f(r.fid_mean)} ± {_f(r.fid_sd)} [{_f(r.fid_min)}, {_f(r.fid_max)}]"
            rows.append((str(i), f"floor: {r.comparison}", f"{r.n} ({r.n_label})", value, r.skipped or r.note))
        rob = e.get("robustness")
        if rob is None:
            rows.append((str(i), "extractor-seed robustness", "", "not computed", e.get("robustness_skipped", "")))
            continue
        k = f"{len(rob.configurations)} configs"
        for pair, rho in rob.spearman.items():
            rows.append((str(i), f"Spearman, extractor seeds {pair}", k, _f(rho), f"pass if >= {SPEARMAN_PASS}"))
        rows.append((str(i), f"{rob.icc_kind} of FID across seeds", k, _f(rob.icc), f"on log FID: {_f(rob.icc_log)}"))
        rows.append((str(i), "test-split vs train-split reference, Spearman", k, _f(rob.spearman_test_vs_train),
                     "seed 0, both at the test n"))
        rows.append((str(i), "verdict", "", "PASS" if rob.passed else ("FAIL" if rob.passed is False else "—"),
                     rob.verdict + (f"; {rob.note}" if rob.note and rob.passed is not None else "")))
    header = ("#", "measure", "n per side", "FID mean ± sd [min, max] / value", "note")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    table = [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths))]
    return "\n".join(head + table + [fmt.format(*r).rstrip() for r in rows])


def to_json(entries: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    from analysis.yardstick import ICC_KIND, SCHEMA, SPEARMAN_PASS, robustness_to_dict
    from study.export_results import portable

    settings = []
    for e in entries:
        item: dict[str, Any] = {"floor": portable(e["floor"].to_dict()), "study_extractor": e["study_extractor"]}
        if "robustness" in e:
            item["robustness"] = robustness_to_dict(e["robustness"])
            item["scores"] = {t: {str(s): v for s, v in by.items()} for t, by in e["scores"].items()}
            item["extractor_names"] = {str(s): n for s, n in e["extractor_names"].items()}
        else:
            item["robustness_skipped"] = e.get("robustness_skipped", "")
        settings.append(item)
    return {"schema": SCHEMA, "spearman_pass": SPEARMAN_PASS, "icc_kind": ICC_KIND,
            "command": "gan-study yardstick " + " ".join(_argv(args)), "settings": settings}


def _argv(args: argparse.Namespace) -> list[str]:
    from study.export_results import portable

    out = []
    for opt in ("data", "resolution", "extractor", "n", "study", "seeds", "out"):
        v = getattr(args, opt)
        if v is not None:
            out += [f"--{opt}", str(portable(str(Path(v).resolve())) if opt in ("data", "study", "out")
                                    and Path(v).exists() else v)]
    return out


def _json_default(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")
