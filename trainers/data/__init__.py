"""Chest X-ray data: one call, `load_split`, for every source, decoded once and cached on disk.

Example:
    >>> ds = load_split("phantom", "train", 32)
    >>> ds.images.shape, ds.class_names
    ((2000, 32, 32), ('NORMAL', 'PNEUMONIA'))
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trainers.data import folder, npz, phantom, sheets
from trainers.data.cache import cached_arrays, default_cache_dir
from trainers.data.decode import preprocess
from trainers.data.image_set import ImageSet, _hash
from trainers.data.notes import DataWarning, listing, warn
from trainers.data.sheets import split as sheet_split
from trainers.data.sheets.task import Task
from trainers.data.splits import patient_id
from trainers.errors import DataError

__all__ = ["ImageSet", "DataWarning", "load_split", "load_reference_split", "default_cache_dir", "task_options",
           "SPLITS"]
REFERENCE_SEED = 0  # the phantom drawn for reference statistics, whatever the trial's seed
SPLITS = ("train", "val", "test")
CACHE_VERSION = 2  # bump when preprocessing or the entry format changes (2: a directory of .npy, memory-mapped)
_warned: set[str] = set()  # per process: a sheet's missing files are told once, not once per split loaded


def load_split(
    source: str,
    split: str,
    resolution: int,
    *,
    hist_eq: bool = False,
    class_subset: str = "",
    limit: int = 0,
    cache_dir: str | Path | None = None,
    skip_unreadable: bool = False,
    seed: int = 0,
    carve: bool = True,
    data_task: str = Task.finding,
    data_uncertain: str = Task.uncertain,
    data_views: str = Task.views,
) -> ImageSet:
    """Load one preprocessed split.

    Args:
        source: "phantom", "pneumoniamnist", a Kaggle-layout folder, a MedMNIST-style .npz path, a label-sheet
            folder (NIH ChestX-ray14, CheXpert, MIMIC-CXR-JPG, RSNA; forceable as `nih:ROOT` etc.) or a CSV manifest.
        split: "train", "val" or "test".
        resolution: output side in pixels (antialiased bicubic resize).
        hist_eq: histogram-equalise after resizing (seed 001).
        class_subset: keep one class by name ("" = all).
        limit: keep N images chosen by a seeded permutation (0 = all), in file order.
        cache_dir: where decoded splits are cached (default $GAN_STUDY_CACHE or ~/.cache/gan-study).
        skip_unreadable: skip files that cannot be decoded (counted in `ImageSet.skipped`, named in
            `ImageSet.decode_notes` and in a `DataWarning`) instead of failing.
        seed: seeds the patient-grouped validation carve and `limit`.
        carve: False keeps a carved source's train and tiny val pooled (train split only): the whole
            labelled training data, the same for every seed (see `load_reference_split`).
        data_task, data_uncertain, data_views: how a label sheet becomes two classes (`sheets.task`); a source
            with class folders or class labels accepts only the defaults.
    """
    if split not in SPLITS:
        raise DataError(f"split={split!r} is not allowed; allowed values: {', '.join(SPLITS)}")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    task = Task(data_task, data_uncertain, data_views)
    sheet_format, sheet_path = sheets.resolve(source) if source not in ("phantom", "pneumoniamnist") else (None, None)
    if sheet_format is None and task != Task():
        raise DataError(f"data_task/data_uncertain/data_views apply to label sheets ({sheets.signatures()}); "
                        f"{source} has fixed classes: leave them at their defaults")
    if sheet_format is not None:
        sheet = sheets.read_sheet(sheet_format, sheet_path, task)
        if sheet.missing and sheet.fingerprint not in _warned:
            _warned.add(sheet.fingerprint)
            warn(sheet.missing_note())
        carved = split in ("train", "val") and sheet_split.carves_validation(sheet)
        if carved and not carve:
            if split != "train":
                raise DataError("carve=False applies to the train split only")
            split_seed: int | None = None
            source_fp = f"sheet-{sheet.fingerprint}-pooled"
        else:
            split_seed = seed
            source_fp = f"sheet-{sheet.fingerprint}" + (f"-seed{seed}" if carved else "")
        build = lambda work: _sheet_arrays(  # noqa: E731
            sheet, split, resolution, hist_eq, skip_unreadable, split_seed, work)
    elif source == "phantom":
        source_fp = f"phantom-v{phantom.VERSION}-seed{seed}"
        build = lambda work: _phantom_arrays(split, resolution, hist_eq, seed)  # noqa: E731
    elif source == "pneumoniamnist" or source.endswith(".npz"):
        path = npz.find_pneumoniamnist(resolution, cache) if source == "pneumoniamnist" else Path(source)
        if not path.is_file():
            raise DataError(f"data file {path} does not exist")
        source_fp = f"npz-{npz.file_fingerprint(path)}"
        build = lambda work: _npz_arrays(path, split, resolution, hist_eq)  # noqa: E731
    else:
        root = Path(source)
        check_folder_source(root, source)
        layout, folder_fp = folder.scan(root)
        # The seed only matters where train/val are carved by patient; test is shared across seeds.
        carved = split in ("train", "val") and folder.carves_validation(layout)
        if carved and not carve:
            if split != "train":
                raise DataError("carve=False applies to the train split only")
            split_seed: int | None = None
            source_fp = f"folder-{folder_fp}-pooled"
        else:
            split_seed = seed
            source_fp = f"folder-{folder_fp}" + (f"-seed{seed}" if carved else "")
        build = lambda work: _folder_arrays(  # noqa: E731
            layout, root, split, resolution, hist_eq, skip_unreadable, split_seed, work)
    key = _hash(CACHE_VERSION, source_fp, split, resolution, hist_eq, skip_unreadable)
    arrays = cached_arrays(cache / "data" / key, build)  # images: a read-only memmap shared on the node
    skipped = int(arrays["skipped"])
    decode_notes = tuple(str(n) for n in arrays.get("decode_notes", ()))  # absent in entries cached before
    told = [folder.read_note(n) for n in decode_notes]
    unreadable = [text for kind, text in told if kind == folder.UNREADABLE_NOTE]
    if skipped:
        warn(f"{source}: skipped {skipped} unreadable image(s) in {split}" + (f": {listing(unreadable, skipped)}"
                                                                            if unreadable else ""))
    warned = [text for kind, text in told if kind == folder.WARNING_NOTE]
    if warned:
        warn(f"{source}: {len(warned)} image(s) in {split} decoded with a warning (check them): {listing(warned)}")
    ds = ImageSet(
        images=arrays["images"],
        labels=arrays["labels"].astype(np.int64),
        class_names=tuple(str(c) for c in arrays["class_names"]),
        fingerprint=key,
        patient_ids=arrays["patient_ids"] if arrays["patient_ids"].size else None,
        skipped=skipped,
        source=str(source),
        decode_notes=decode_notes,
    )
    if class_subset:
        ds = ds.subset_class(class_subset)
    if limit and limit < len(ds):
        keep = np.sort(np.random.default_rng(seed).permutation(len(ds))[:limit])
        ds = ds.select(keep, f"limit={limit},seed={seed}")
    if len(ds) == 0:
        why = f" after class_subset={class_subset!r}" if class_subset else ""
        if sheet_format is not None and not why:
            left = ", ".join(f"{n} {r}" for r, n in sheet.left_out.items())
            why = (f": {', '.join(p.name for p in sheet.files)} in {sheet.root} list {sheet.images_listed} images, "
                   f"{len(sheet.paths)} kept for the task, none in {split} ({sheet.split_note}); "
                   f"left out: {left or 'none'}")
        raise DataError(f"{source} {split} split is empty{why}")
    return ds


def load_reference_split(
    source: str,
    resolution: int,
    *,
    hist_eq: bool = False,
    class_subset: str = "",
    cache_dir: str | Path | None = None,
    skip_unreadable: bool = False,
    **task: str,
) -> ImageSet:
    """The FID yardstick's real images: the source's whole labelled training split.

    Independent of a trial's seed, data_limit and validation carve, so every trial on one source,
    resolution and preprocessing is measured against the same images (and the same extractor).
    A Kaggle tree whose val is carved gives train and its tiny val pooled; the phantom gives its
    REFERENCE_SEED draw. `class_subset` keeps one class (a NORMAL-only generator meets NORMAL images).
    """
    return load_split(source, "train", resolution, hist_eq=hist_eq, class_subset=class_subset, cache_dir=cache_dir,
                      skip_unreadable=skip_unreadable, seed=REFERENCE_SEED, carve=False, **task)


def check_folder_source(root: Path, source: str) -> None:
    """DataError, one line, for a path that is no source: missing, a file of another kind, a folder without train/."""
    if not root.exists():
        raise DataError(
            f"data source {source!r} does not exist; use 'phantom', 'pneumoniamnist', an .npz file, "
            "a folder <root>/{train,val,test}/<CLASS>/<images>, a CSV manifest or a label-sheet folder "
            f"({sheets.signatures()})"
        )
    if root.is_file():
        raise DataError(f"data source {root} is a file but neither a .csv manifest nor an .npz; point --data at "
                        f"one of those or at the dataset's folder ({sheets.signatures()})")
    if not (root / "train").is_dir():
        inside = sheets.nearby(root)
        raise DataError(f"data folder {root} has no train/ folder and no label sheet"
                        + (f"; it holds {listing(inside)}: point --data there" if inside else
                           f"; expected <root>/{{train,val,test}}/<CLASS>/* or one of: {sheets.signatures()}"))


def task_options(cfg) -> dict[str, str]:
    """A TrialConfig's data_task, data_uncertain and data_views, as load_split keywords."""
    return {"data_task": cfg.data_task, "data_uncertain": cfg.data_uncertain, "data_views": cfg.data_views}


def _phantom_arrays(split: str, resolution: int, hist_eq: bool, seed: int) -> dict[str, np.ndarray]:
    images, labels = phantom.phantom_split(split, resolution, seed)
    if hist_eq:
        images = np.stack([preprocess(im, resolution, hist_eq) for im in images])
    return _pack(images, labels, phantom.CLASS_NAMES, None, 0)


def _npz_arrays(path: Path, split: str, resolution: int, hist_eq: bool) -> dict[str, np.ndarray]:
    images, labels, names = npz.read_npz_split(path, split)
    if images.shape[1] != resolution or hist_eq:
        images = np.stack([preprocess(im, resolution, hist_eq) for im in images])
    return _pack(images, labels, names, None, 0)


def _folder_arrays(layout: dict, root: Path, split: str, resolution: int, hist_eq: bool, skip: bool,
                   seed: int | None, work: Path) -> dict:
    paths, labels, names = folder.split_files(layout, root, split, seed)
    notes: list[str] = []
    images, keep = folder.decode_files(paths, resolution, hist_eq, skip, work_dir=work, notes=notes)  # resumable
    patients = np.array([patient_id(p) for p, k in zip(paths, keep) if k], dtype=str)
    return _pack(images, labels[keep], names, patients, int((~keep).sum()), notes)


def _sheet_arrays(sheet, split: str, resolution: int, hist_eq: bool, skip: bool, seed: int | None,
                  work: Path) -> dict:
    index = sheet_split.split_index(sheet, split, seed)
    paths = [Path(sheet.paths[i]) for i in index]
    notes: list[str] = []
    try:
        images, keep = folder.decode_files(paths, resolution, hist_eq, skip, work_dir=work, notes=notes)  # resumable
    except DataError as exc:  # name the sheet row too
        row = next((sheet.where(i) for i, p in zip(index, paths) if str(p) in str(exc)), "")
        raise DataError(f"{exc} ({row})" if row else str(exc)) from None
    if notes:  # name the sheet row of each file skipped or decoded with a warning
        rows = {str(p): sheet.where(i) for i, p in zip(index, paths)}
        notes = [folder.note(kind, f"{path} ({rows[path]})" if path in rows else path, text)
                 for kind, path, text in (n.split("\t", 2) for n in notes)]
    return _pack(images, sheet.labels[index][keep], sheet.class_names, sheet.patients[index][keep],
                 int((~keep).sum()), notes)


def _pack(images, labels, names, patients, skipped, notes=()) -> dict[str, np.ndarray]:
    if not isinstance(images, np.memmap):  # a memmap was written by the decoder: moved, not copied
        images = np.ascontiguousarray(images, dtype=np.uint8)
    return {
        "images": images,
        "labels": np.asarray(labels, dtype=np.int64),
        "class_names": np.array(names, dtype=str),
        "patient_ids": np.array([], dtype=str) if patients is None else patients,
        "skipped": np.array(skipped),
        "decode_notes": np.array(list(notes), dtype=str),  # folder.note(): files skipped or decoded with a warning
    }
