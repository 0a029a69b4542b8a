"""`gan-study data SRC`: what a `--data` source holds, as a trial would load it, in one table.

Prints the format found (or forced with `nih:ROOT`, ...), the task (`--set data_task=...`), how the splits
are made, what the sheet's rows count, images per split and class, patients, and the images left out and why,
naming the first few missing files with their sheet rows. `--decode` also decodes every split into the cache
at the config's resolution (what a trial then reuses), counts unreadable files and names them, and names the
files a decoder warned about (one line each, not a library's warning).

    gan-study data /data/nih --set data_task=Effusion
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np

from trainers.config import TrialConfig, parse_overrides
from trainers.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="phantom | pneumoniamnist | .npz | Kaggle tree | label-sheet folder "
                                       "(nih:, chexpert:, mimic:, rsna: force a format) | manifest .csv")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config keys that shape the data: data_task, data_uncertain, data_views, seed, "
                             "resolution (for --decode), hist_eq")
    parser.add_argument("--decode", action="store_true",
                        help="decode every split into the cache (as a trial would) and count unreadable files")


def main(args: argparse.Namespace) -> int:
    cfg = TrialConfig.from_dict({**parse_overrides(args.overrides), "data": args.source})
    print(render(describe(cfg, args.decode)))
    return 0


def describe(cfg: TrialConfig, decode: bool = False) -> dict:
    """{'head': [(label, text)], 'classes': names, 'splits': {split: (counts, patients)}, 'left_out': {...},
    'listed': images the sheet lists or None, 'notes': [(label, one line)]}."""
    from trainers.data import SPLITS, DataWarning, folder, load_split, sheets, task_options
    from trainers.data.notes import listing
    from trainers.data.sheets.split import split_index
    from trainers.data.sheets.task import UNREADABLE, Task

    task = Task(cfg.data_task, cfg.data_uncertain, cfg.data_views)
    fmt, path = sheets.resolve(cfg.data) if cfg.data not in ("phantom", "pneumoniamnist") else (None, None)
    out: dict = {"head": [("source", cfg.data)], "splits": {}, "left_out": {}, "listed": None, "notes": []}
    if fmt is not None:
        sheet = sheets.read_sheet(fmt, path, task)
        out["head"] += [("format", f"{sheet.title} ({fmt}): {', '.join(p.name for p in sheet.files)}"),
                        ("rows", sheet.count_note),
                        ("task", sheet.task_note), ("splits", f"{sheet.split_note} (seed {cfg.seed})")]
        out["classes"], out["left_out"], out["listed"] = sheet.class_names, dict(sheet.left_out), sheet.images_listed
        if sheet.missing:
            out["notes"].append(("missing", sheet.missing_note()))
        for s in SPLITS:
            idx = split_index(sheet, s, cfg.seed)
            out["splits"][s] = (np.bincount(sheet.labels[idx], minlength=len(sheet.class_names)),
                                set(sheet.patients[idx]))
    elif path is not None and path.is_dir():
        from trainers.data import check_folder_source

        check_folder_source(path, cfg.data)
        if task != Task():
            raise UserError(f"data_task/data_uncertain/data_views apply to label sheets; {cfg.data} has class folders")
        layout, _ = folder.scan(path)
        out["head"] += [("format", "Kaggle/Kermany class folders <root>/{train,val,test}/<CLASS>/"),
                        ("splits", "folders" + ("; val carved from train by patient" if folder.carves_validation(layout)
                                                else "") + f" (seed {cfg.seed})")]
        out["classes"] = tuple(sorted(layout["train"]))
        for s in SPLITS:
            if s in layout or s == "val":
                paths, labels, _ = folder.split_files(layout, path, s, cfg.seed)
                out["splits"][s] = (np.bincount(labels, minlength=len(out["classes"])),
                                    {folder.patient_id(p) for p in paths})
    else:
        out["head"].append(("format", {"phantom": "phantom (procedural, not medical data)",
                                       "pneumoniamnist": "PneumoniaMNIST"}.get(cfg.data, "MedMNIST-style .npz")))
        decode = True
    if decode:
        unreadable, named, warned = 0, [], []
        for s in SPLITS:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DataWarning)  # told below, in the table's own lines
                    ds = load_split(cfg.data, s, cfg.resolution, hist_eq=cfg.hist_eq, seed=cfg.seed,
                                    skip_unreadable=True, **task_options(cfg))
            except UserError:
                if s in out["splits"] or not (fmt is None and path is not None and path.is_dir()):
                    raise
                continue  # a split the source does not have (a Kaggle tree without test/)
            out["classes"] = ds.class_names
            patients = set(ds.patient_ids) if ds.patient_ids is not None else set()
            out["splits"][s] = (np.bincount(ds.labels, minlength=len(ds.class_names)), patients)
            unreadable += ds.skipped
            for kind, text in map(folder.read_note, ds.decode_notes):
                (named if kind == folder.UNREADABLE_NOTE else warned).append(text)
        out["left_out"][UNREADABLE] = unreadable
        out["head"].append(("decoded", f"into the cache at {cfg.resolution} px"))
        if unreadable:
            out["notes"].append(("unreadable", f"{unreadable} image(s) skipped: " + (
                listing(named, unreadable) if named else "names not in this cache entry (decoded by an older "
                                                         "version); clear $GAN_STUDY_CACHE/data to list them")))
        if warned:
            out["notes"].append(("warnings", f"{len(warned)} image(s) decoded with a warning (check them): "
                                             + listing(warned)))
    return out


def render(d: dict) -> str:
    from trainers.data.sheets.task import UNREADABLE

    names = list(d["classes"])
    width = max([len(k) for k in d["left_out"]] + [20]) + 11
    cols = names + ["images", "patients"]
    lines = [f"{k:<8} {v}" for k, v in d["head"]]
    lines.append("")
    lines.append(" " * width + "".join(f"{c:>{max(10, len(c) + 2)}}" for c in cols))

    def row(label: str, values: list) -> str:
        return f"{label:<{width}}" + "".join(f"{v!s:>{max(10, len(c) + 2)}}" for c, v in zip(cols, values))

    all_patients: set = set()
    totals = np.zeros(len(names), dtype=np.int64)
    for s, (counts, patients) in d["splits"].items():
        lines.append(row(s, [int(c) for c in counts] + [int(counts.sum()), len(patients) or "-"]))
        totals += counts
        all_patients |= patients
    lines.append(row("total", [int(c) for c in totals] + [int(totals.sum()), len(all_patients) or "-"]))
    blank = [""] * len(names)
    for reason, n in d["left_out"].items():
        lines.append(row(f"left out: {reason}", blank + [n, ""]))
    if UNREADABLE not in d["left_out"]:
        lines.append(row(f"left out: {UNREADABLE}", blank + ["?", ""]) + "  (not decoded: add --decode)")
    if d["listed"] is not None:
        lines.append(row("images listed (kept + left out)", blank + [d["listed"], ""]))
    if d["notes"]:
        lines.append("")
        lines += [f"{label:<10} {text}" for label, text in d["notes"]]
    return "\n".join(lines)

