"""File names inside a study directory STUDY_DIR (docs/RESULTS_SCHEMA.md).

Defined in `trainers/layout.py` (the ground floor, beside the trial file names, so the analysis reads them
without importing `study`) and re-exported here, so `from study.layout import STUDY_FILE` keeps working.
Kept free of heavy imports: Ray workers import it at trial start.
"""
from trainers.layout import (HISTORY_FILE, JOURNAL_FILE, LIVE_DIRNAME, RAY_DIRNAME, STUDY_FILE, TRIALS_DIRNAME,
                             TRIALS_FILE)

__all__ = ["HISTORY_FILE", "JOURNAL_FILE", "LIVE_DIRNAME", "RAY_DIRNAME", "STUDY_FILE", "TRIALS_DIRNAME",
           "TRIALS_FILE"]
