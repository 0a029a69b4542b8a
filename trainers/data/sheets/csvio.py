"""Reading label sheets: CSV (optionally gzipped) with named columns, errors that name the file and the row.

Rows are numbered as a spreadsheet shows them: the header is row 1, the first image row 2.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
from pathlib import Path
from typing import Iterator, Sequence

from trainers.errors import DataError


def sheet_error(path: Path, row: int, message: str) -> DataError:
    return DataError(f"{path} row {row}: {message}")


def read_rows(path: Path, required: Sequence[str], whole_rows: bool = False
              ) -> tuple[dict[str, int], Iterator[tuple[int, list[str]]]]:
    """(column -> index, iterator of (row number, fields)); DataError naming a missing column, a short row, or a
    sheet with a header and no rows (raised once the iterator is exhausted).

    Columns are found by exact name, so headers whose names contain commas (NIH's
    `OriginalImage[Width,Height]`) or end in a trailing comma do not matter as long as the needed
    columns come before them or the row has as many fields as the header. `whole_rows`: every row must have
    a field for every column (a label sheet whose every column is read).
    """
    if not path.is_file():
        raise DataError(f"label sheet {path} does not exist")
    f = gzip.open(path, "rt", newline="", encoding="utf-8-sig") if path.suffix == ".gz" else \
        open(path, newline="", encoding="utf-8-sig")
    reader = csv.reader(f)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        f.close()
        raise DataError(f"label sheet {path} is empty; expected a header row with {', '.join(required)}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        f.close()
        raise DataError(f"cannot read label sheet {path}: {exc.__class__.__name__}: {exc}") from None
    columns = {name: i for i, name in reversed(list(enumerate(header))) if name}
    missing = [c for c in required if c not in columns]
    if missing:
        f.close()
        raise DataError(f"{path} row 1: no column {missing[0]!r} (needed: {', '.join(required)}); its header: "
                        f"{','.join(header)}; restore the file as the dataset ships it")
    need = len(header) if whole_rows else max(columns[c] for c in required) + 1 if required else 0

    def rows() -> Iterator[tuple[int, list[str]]]:
        n = 0
        with f:
            try:
                for fields in reader:
                    if not fields or (len(fields) == 1 and not fields[0].strip()):
                        continue  # blank line
                    if len(fields) < need:
                        raise sheet_error(path, reader.line_num,
                                          f"has {len(fields)} fields; the header has {len(header)}")
                    n += 1
                    yield reader.line_num, fields
            except (OSError, UnicodeDecodeError, csv.Error, EOFError) as exc:
                raise sheet_error(path, reader.line_num, f"{exc.__class__.__name__}: {exc}") from None
        if not n:
            raise DataError(f"label sheet {path} has no rows, only its header (row 1); copy the complete file "
                            "again (a download or an edit cut it short)")

    return columns, rows()


def coded(path: Path, row: int, column: str, text: str) -> float | None:
    """A CheXpert-coded label: 1.0, 0.0, -1.0 or blank (None); DataError naming the cell otherwise."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value not in (1.0, 0.0, -1.0):
        raise sheet_error(path, row, f"{column}={text!r} is not 1.0, 0.0, -1.0 (uncertain) or blank")
    return value


CODES = frozenset({"1.0", "0.0", "-1.0", "", "1", "0", "-1"})


def check_codes(path: Path, row: int, names: Sequence[str], values: Sequence[str]) -> None:
    """Every value a CheXpert code (one set test per row; `coded` names the first bad cell)."""
    if not CODES.issuperset(values):
        for name, text in zip(names, values):
            coded(path, row, name, text)


def files_fingerprint(paths: Sequence[Path]) -> str:
    """Name, size and mtime of the sheet files (what a changed download changes)."""
    h = hashlib.sha1()
    for p in paths:
        st = p.stat()
        h.update(f"{p.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]
