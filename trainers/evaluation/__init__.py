"""Evaluation: FID/KID/precision-recall/diversity/memorisation with a named feature extractor,
and downstream classifiers (TRTR, TSTR, minority augmentation).

Example:
    >>> from trainers.evaluation import Evaluator  # doctest: +SKIP
    >>> Evaluator(cfg).evaluate(G)     # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

# Lazy exports: importing one submodule (e.g. `protocols`) runs this file, and must not load `evaluator`
# and its metric modules with it.
_EXPORTS = {
    "Evaluator": "trainers.evaluation.evaluator",
    "calculate_metrics": "trainers.evaluation.evaluator",
    "check_images": "trainers.evaluation.sampling",
    "sample_images": "trainers.evaluation.sampling",
}
__all__ = ["Evaluator", "calculate_metrics", "check_images", "sample_images"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trainers.evaluation' has no attribute {name!r}")
