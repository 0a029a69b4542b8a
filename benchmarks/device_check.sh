#!/usr/bin/env bash
# The GPU check, one command: CUDA tests, training throughput (fp32/bf16/channels_last/compile vs the
# textbook loop, against the card's bf16 peak), belmekki2022 epoch time and what bounds it, FID of 2,048
# samples, the memory curve and a short study at --gpus-per-trial 1/0.5/0.25. Prints one table and writes
# OUTDIR/device_check.json (OUTDIR: the argument, else $OUT, else runs/device-check). Under 8 minutes on
# one H100. --dry-run: the same steps on the CPU at toy sizes (about a minute; tests/test_device_check.py).
#   benchmarks/device_check.sh [--dry-run] [--data KAGGLE_TREE] [--only STEP,...] [OUTDIR]
# Details: benchmarks/device_check.py (python3 benchmarks/device_check.py --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The project's interpreter, not whatever python3 is first on PATH (a fresh machine's system Python has no
# torch): $PYTHON when set (the tests pass theirs), else the README's .venv, else python3.
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" benchmarks/device_check.py "$@"
