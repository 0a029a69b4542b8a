"""study package: Ray Tune studies of GAN configurations.

The Python API (study/api.py): `from study import run_study, resume_study, load_study, Study`.
Exported lazily, so that Ray workers and light modules importing `study.layout` do not pay for pandas.
(`study.runner.run_study(spec)` is the lower-level runner taking a StudySpec.)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from study.api import Study, load_study, resume_study, run_study

__all__ = ["Study", "load_study", "resume_study", "run_study"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from study import api

        return getattr(api, name)
    raise AttributeError(f"module 'study' has no attribute {name!r}")
