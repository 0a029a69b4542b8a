"""File names inside a study directory STUDY_DIR (docs/RESULTS_SCHEMA.md), in one place.

Kept free of heavy imports: Ray workers import it at trial start.
"""
STUDY_FILE = "study.json"  # the study spec
JOURNAL_FILE = "history.jsonl"  # append-only journal: the source of truth
HISTORY_FILE = "history.parquet"  # one row per report
TRIALS_FILE = "trials.parquet"  # one row per trial
TRIALS_DIRNAME = "trials"  # trials/<trial_id>/: samples, metrics.jsonl, checkpoint
RAY_DIRNAME = "ray"  # local Ray Tune storage: experiment state, Ray's copies of checkpoints
LIVE_DIRNAME = "live"  # live/: dashboard.html and live.json of `gan-study watch` / `run --live`
