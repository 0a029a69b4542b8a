"""How long `gan-study analyze` takes on a 68-trial study (tests/fixtures_analysis.make_study: 64 finished, one
running, one errored, 2 pending; 4 losses, Table I cells, TSTR and augmentation columns) at the default
resampling, as a ratio to the same analysis at 200 resamples/permutations, both measured in this run. The
yardstick floor is left out (--no-yardstick): it is computed once per data set and cached.
Usage: python3 benchmarks/bench_analyze.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fixtures_analysis import make_study  # noqa: E402

from study.cli import main as cli  # noqa: E402

FAST = ["--resamples", "200", "--permutations", "200"]


def seconds(study: Path, out: Path, extra: list[str]) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli(["analyze", str(study), "-o", str(out), "--no-yardstick", *extra]) == 0
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        study = make_study(Path(tmp) / "runs")
        seconds(study, Path(tmp) / "warm", FAST)  # imports, caches
        fast = [seconds(study, Path(tmp) / f"fast{i}", FAST)
                for i in range(args.repeats)]
        full = [seconds(study, Path(tmp) / f"full{i}", []) for i in range(args.repeats)]
    f, d = statistics.median(fast), statistics.median(full)
    print(f"analyze, 68-trial study, median of {args.repeats}: default resampling {d:.1f} s; "
          f"200 resamples/permutations {f:.1f} s; ratio {d / f:.2f}x")


if __name__ == "__main__":
    main()
