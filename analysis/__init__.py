"""Statistics, tables and an HTML dashboard from GAN studies (`gan-study analyze`).

Notebook use:
    >>> from analysis import analyze, render_report                  # doctest: +SKIP
    >>> a = analyze(["runs/smoke"], n_resamples=500)                 # doctest: +SKIP
    >>> print(render_report(a))                                      # doctest: +SKIP

Statistics alone: `analysis.stats.corr_test(x, y, method="spearman", covariates=None, clusters=None)`
(`clusters`: a configuration label per row, so seeds are resampled together; docs/STATISTICS.md).
"""
from __future__ import annotations

from typing import Any

# Lazy exports: `import analysis` stays cheap (no plotly) for code that only needs stats.
_EXPORTS = {
    "analyze": "analysis.pipeline",
    "Analysis": "analysis.pipeline",
    "load_studies": "analysis.load",
    "corr_test": "analysis.stats",
    "render_report": "analysis.report",
    "render_dashboard": "analysis.dashboard",
    "write_csvs": "analysis.export",
}
__all__ = ["Analysis", "analyze", "corr_test", "load_studies", "render_dashboard", "render_report", "write_csvs"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
