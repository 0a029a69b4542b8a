"""Evaluation: FID/KID/precision-recall/diversity/memorisation with a named feature extractor,
and downstream classifiers (TRTR, TSTR, minority augmentation).

Example:
    >>> from trainers.evaluation import Evaluator  # doctest: +SKIP
    >>> Evaluator(cfg).evaluate(G)     # doctest: +SKIP
"""
from trainers.evaluation.evaluator import Evaluator, calculate_metrics, check_images, sample_images

__all__ = ["Evaluator", "calculate_metrics", "check_images", "sample_images"]
