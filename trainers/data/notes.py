"""What the data loader tells a user without stopping: images a sheet lists but the disk lacks, files skipped
as unreadable, files decoded with a library's warning. Each is one line naming the files (the first few and
the count), raised as a `DataWarning`, which Python prints as that one line, without a source line.
"""
from __future__ import annotations

import warnings
from typing import Sequence

SHOWN = 3  # files named in one line; the rest are counted


class DataWarning(UserWarning):
    """Something in the data a user should know about; the message names the files."""


def listing(items: Sequence[str], total: int | None = None, shown: int = SHOWN) -> str:
    """'a; b; c and 4 more' of `total` (default len(items)); items are 'PATH (SHEET row N)' or 'PATH: reason'."""
    total = len(items) if total is None else total
    head = "; ".join(items[:shown])
    return head + (f" and {total - min(shown, len(items))} more" if total > min(shown, len(items)) else "")


def warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)


def _formatwarning(message, category, filename, lineno, line=None):
    if isinstance(category, type) and issubclass(category, DataWarning):
        return f"warning: {message}\n"  # one line: the message names the files, the source line would not
    return _plain_formatwarning(message, category, filename, lineno, line)


_plain_formatwarning = warnings.formatwarning
warnings.formatwarning = _formatwarning
