"""The dashboard in a real browser: headless Chromium renders every figure with no JavaScript error.

Chromium's --dump-dom prints the DOM after --virtual-time-budget of virtual time, so the plots have been
drawn; each rendered plotly figure holds `svg.main-svg` elements. With --enable-logging=stderr every
console message and uncaught exception appears on stderr as an `INFO:CONSOLE` line. A canary page with a
deliberate error, run alongside, proves that this log channel works on the machine at hand, so a silent
log cannot pass as "no errors".
"""
from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fixtures_analysis import make_study  # tests/ is on sys.path (rootdir conftest, no package)

from analysis.dashboard import FIGURE_COUNT_META
from study.cli import main

pytestmark = pytest.mark.browser
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
CANARY = "<html><body><script>console.log('canary-ok'); notDefinedAnywhere();</script></body></html>"
ERROR_PATTERN = re.compile(r"Uncaught|Error|error|WARN|Failed to load", re.ASCII)


class PlotCounter(HTMLParser):
    """Counts plotly figure divs and the `main-svg` SVGs inside each."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs_per_plot: list[int] = []
        self._depth = 0  # div nesting inside the current plot div (0 = outside any)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "div" and "plotly-graph-div" in classes:
            self.svgs_per_plot.append(0)
            self._depth = 1
        elif tag == "div" and self._depth:
            self._depth += 1
        if tag == "svg" and "main-svg" in classes and self._depth:
            self.svgs_per_plot[-1] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._depth:
            self._depth -= 1


def _chromium(page: Path, profile: Path) -> subprocess.Popen:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
           "--dump-dom", page.as_uri()]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install -y chromium)")
def test_every_figure_renders_without_javascript_errors(tmp_path):
    study = make_study(tmp_path / "runs")
    out = tmp_path / "out"
    assert main(["analyze", str(study), "-o", str(out), "--resamples", "200", "--permutations", "200"]) == 0
    canary = tmp_path / "canary.html"
    canary.write_text(CANARY)
    procs = {"dashboard": _chromium(out / "dashboard.html", tmp_path / "p1"),
             "canary": _chromium(canary, tmp_path / "p2")}  # in parallel: the two starts dominate the time
    results = {name: p.communicate(timeout=120) for name, p in procs.items()}

    canary_log = _console(results["canary"][1])
    assert any("canary-ok" in line for line in canary_log), "console logging does not reach stderr here"
    assert any("Uncaught" in line for line in canary_log)

    dom, stderr = results["dashboard"]
    assert procs["dashboard"].returncode == 0, stderr[-2000:]
    expected = int(re.search(rf'<meta name="{FIGURE_COUNT_META}" content="(\d+)"', dom).group(1))
    counter = PlotCounter()
    counter.feed(dom)
    assert expected >= 12
    assert len(counter.svgs_per_plot) == expected
    rendered = sum(1 for n in counter.svgs_per_plot if n > 0)
    assert rendered == expected, f"only {rendered}/{expected} figures drew an SVG: {counter.svgs_per_plot}"
    errors = [line for line in _console(stderr) if ERROR_PATTERN.search(line)]
    assert not errors, "\n".join(errors)
