"""Which label-sheet format a `--data` source is: by its signature files, or forced with a prefix.

`nih:ROOT`, `chexpert:ROOT`, `mimic:ROOT`, `rsna:ROOT`, `csv:FILE` force a format (its files must be
there); a plain path is recognised by the files listed in FORMATS, a `.csv` file is a manifest, and a
folder with none of them is the Kaggle/Kermany class-folder tree. A format is recognised by any of its files,
so a damaged copy (a sheet missing, a column renamed) is read as that format, whose reader then says what is
wrong with which file, rather than as a class-folder tree with a baffling message.
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

from trainers.data.sheets import chexpert, csv_manifest, mimic, nih, rsna

FORMATS: dict[str, ModuleType] = {"mimic": mimic, "nih": nih, "chexpert": chexpert, "rsna": rsna, "csv": csv_manifest}


def split_prefix(source: str) -> tuple[str, str]:
    """('nih:', 'ROOT') for a forced format, ('', source) otherwise."""
    prefix, sep, rest = source.partition(":")
    if sep and prefix in FORMATS and rest and not rest.startswith("//"):
        return prefix + ":", rest
    return "", source


def resolve(source: str) -> tuple[str | None, Path]:
    """(format or None for a non-sheet source, path)."""
    prefix, rest = split_prefix(source)
    path = Path(rest).expanduser()
    if prefix:
        return prefix[:-1], path
    if path.is_file() and csv_manifest.detect(path):
        return "csv", path
    if path.is_dir():
        for name, module in FORMATS.items():
            if name != "csv" and module.detect(path):
                return name, path
    return None, path


def signatures() -> str:
    """What each format is recognised by, for messages."""
    return "; ".join(f"{m.TITLE}: {m.SIGNATURE}" for m in FORMATS.values())


def nearby(folder: Path, limit: int = 64) -> list[str]:
    """Sub-folders of `folder` that are a source (a label-sheet folder or a class-folder tree), for messages."""
    found = []
    try:
        entries = sorted(e for _, e in zip(range(limit), folder.iterdir()) if e.is_dir())
    except OSError:
        return []
    for d in entries:
        fmt = next((name for name, m in FORMATS.items() if name != "csv" and m.detect(d)), None)
        if fmt or (d / "train").is_dir():
            found.append(f"{d} ({FORMATS[fmt].TITLE if fmt else 'class folders'})")
    return found
