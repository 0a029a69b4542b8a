"""`gan-study reproduce`: every seed paper's experiment runs end to end (smoke scale on the phantom),
resumes instead of re-running, and writes comparison.md with a verdict per claim."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from study.papers import PAPERS
from study.reproduce_command import COMPARISON_FILE, REPORT_SUBDIR, plan_text, reproduce

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
VERDICT = re.compile(r"\| \*\*(direction reproduced(, magnitude (consistent|differs))?|contradicted|inconclusive|not comparable)\*\* \|")


@pytest.mark.parametrize("paper", list(PAPERS))
def test_every_paper_reproduces_end_to_end_at_smoke_scale(paper, local_ray, tmp_path):
    out = tmp_path / paper
    assert reproduce(paper, out=out, scale="smoke", n_resamples=200, progress=False) == 0
    text = (out / COMPARISON_FILE).read_text()
    assert text.startswith(f"# Seed {PAPERS[paper].seed} ({paper}) reproduced at smoke scale")
    assert "A pipeline check, not evidence" in text
    assert len(VERDICT.findall(text)) >= 2, text
    assert (out / REPORT_SUBDIR / "dashboard.html").is_file() and (out / REPORT_SUBDIR / "report.md").is_file()
    # The same command again finds the finished study: no trial runs twice, the outputs are rewritten.
    study_dir = out / PAPERS[paper].space_for("smoke")
    journal = (study_dir / "history.jsonl").read_text()
    (out / COMPARISON_FILE).unlink()
    assert reproduce(paper, out=out, scale="smoke", n_resamples=200, progress=False) == 0
    assert (study_dir / "history.jsonl").read_text() == journal
    assert (out / COMPARISON_FILE).read_text() == text


def test_plan_validates_every_trial_and_estimates_cost():
    text = plan_text(PAPERS["belmekki2022"], "smoke")
    assert "2 trials, every config valid" in text and "TFLOP" in text and "H100-hours" in text


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "study.cli", "reproduce", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_cli_names_the_valid_papers_and_needs_data_at_gpu_scale(tmp_path):
    bad = _cli("nope", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        "gan-study reproduce: error: unknown paper 'nope'; valid papers: " + ", ".join(PAPERS))
    gpu = _cli("belmekki2022", "--scale", "gpu", "--out", str(tmp_path / "y"))
    assert gpu.returncode == 2 and "--scale gpu needs --data" in gpu.stderr
    helptext = _cli("--help").stdout
    assert all(name in helptext for name in PAPERS) and "smoke" in helptext
