"""Cheaper evaluation for tests that check something other than the extractor or KID themselves."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def one_epoch_extractors() -> Iterator[None]:
    """Domain extractors train 1 epoch and KID uses 5 subsets inside the block."""
    from trainers.evaluation import defaults as D
    from trainers.evaluation import evaluator
    from trainers.evaluation.kid import kid

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(D, "DOMAIN_EPOCHS", 1)
        mp.setattr(evaluator, "kid", lambda real, fake: kid(real, fake, subsets=5))
        yield
