"""File names the trainers write, in one place: a trial directory's (`gan-study trial --out DIR`,
STUDY_DIR/trials/<id>) and `gan-study memory`'s table.

Study-level names (study.json, the journal, the Parquet tables) live in `study/layout.py`; these are
here because trainers must not import `study`. Kept free of heavy imports (no torch): the study
driver and the analysis read them too.
"""
CONFIG_FILE = "config.json"  # the trial's flat TrialConfig (`gan-study trial`)
METRICS_FILE = "metrics.jsonl"  # one line per report
METRICS_PARQUET_FILE = "metrics.parquet"  # METRICS_FILE as a table (`gan-study trial`)
ITERATIONS_FILE = "iterations.csv"  # one line per iteration: the raw per-step signals
SUMMARY_FILE = "summary.json"  # the last report's metrics
SAMPLES_DIR = "samples"  # fixed-latent sample grids, one PNG per report
CHECKPOINT_DIRNAME = "checkpoint"  # holds CHECKPOINT_FILENAME; Ray ships this directory as the trial's checkpoint
CHECKPOINT_FILENAME = "checkpoint.pt"
MEMORY_FILE = "memory.parquet"  # `gan-study memory`'s default table, which the analysis reads from a study dir
