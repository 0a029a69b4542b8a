"""File names of the re-scoring outputs in a study directory (STUDY_DIR/...), in one place and free of heavy
imports (the analysis and the dashboard read them without torch)."""

GENERATORS_DIRNAME = "generators"  # <trial_id>.pt: the trial's final generator, float16 (kept_generators.py)
RESCORE_FILE = "rescore.parquet"  # one row per re-scored trial: trial_id and `<metric>@<tag>` / pixel columns
PAIRS_DIRNAME = "memorisation"  # <trial_id>.npz: the closest synthetic/training pairs (memorisation.save_pairs)
