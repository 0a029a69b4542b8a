"""File names of the results store, in one place: a study directory's (STUDY_DIR: study.json, the journal,
the Parquet tables), a trial directory's (`gan-study trial --out DIR`, STUDY_DIR/trials/<id>) and
`gan-study memory`'s table.

They live here, on the ground floor, because every layer reads them: the trainers write the trial files
(and must not import `study`), the study driver writes the study files, and the analysis reads both
(it depends only downward, never on `study`). `study/layout.py` re-exports the study-level names.
Kept free of heavy imports (no torch): Ray workers, the study driver and the analysis import it.
"""
# ---- a study directory (docs/RESULTS_SCHEMA.md)
STUDY_FILE = "study.json"  # the study spec
JOURNAL_FILE = "history.jsonl"  # append-only journal: the source of truth
HISTORY_FILE = "history.parquet"  # one row per report
TRIALS_FILE = "trials.parquet"  # one row per trial
TRIALS_DIRNAME = "trials"  # trials/<trial_id>/: samples, metrics.jsonl, checkpoint
RAY_DIRNAME = "ray"  # local Ray Tune storage: experiment state, Ray's copies of checkpoints
LIVE_DIRNAME = "live"  # live/: dashboard.html and live.json of `gan-study watch` / `run --live`

# ---- a trial directory
CONFIG_FILE = "config.json"  # the trial's flat TrialConfig (`gan-study trial`)
METRICS_FILE = "metrics.jsonl"  # one line per report
METRICS_PARQUET_FILE = "metrics.parquet"  # METRICS_FILE as a table (`gan-study trial`)
ITERATIONS_FILE = "iterations.csv"  # one line per iteration: the raw per-step signals
SUMMARY_FILE = "summary.json"  # the last report's metrics
SAMPLES_DIR = "samples"  # fixed-latent sample grids, one PNG per report
CHECKPOINT_DIRNAME = "checkpoint"  # holds CHECKPOINT_FILENAME; Ray ships this directory as the trial's checkpoint
CHECKPOINT_FILENAME = "checkpoint.pt"
MEMORY_FILE = "memory.parquet"  # `gan-study memory`'s default table, which the analysis reads from a study dir
