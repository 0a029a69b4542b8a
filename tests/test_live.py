"""The live dashboard (study/live.py, `gan-study watch`, `gan-study run --live`): counts from the journal read
incrementally, a page with a progress header even before any result, regeneration at most every `every_s`,
atomic files, a server on 127.0.0.1 that stops with the study; and in headless Chromium, a page kept open
during a real smoke study whose trial count grows, reloading itself, with no JavaScript error."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fixtures_analysis import make_study  # tests/ is on sys.path (rootdir conftest, no package)
from test_dashboard_browser import CHROMIUM

from analysis.dashboard import FIGURE_COUNT_META
from study.cli import main
from study.layout import JOURNAL_FILE, LIVE_DIRNAME
from study.live import PAGE_FILE, STATE_FILE, JournalCounter, LiveDashboard, LiveOptions, counts_text, \
    live_dashboard, serve
from study.spec import new_spec
from trainers.errors import UserError


def _journal(study_dir: Path, *records: dict | str) -> None:
    """Append records (dicts as JSON lines; a str as written, e.g. a torn line) to the study's journal."""
    with open(study_dir / JOURNAL_FILE, "a") as f:
        for r in records:
            f.write(r if isinstance(r, str) else json.dumps(r) + "\n")


def _trial(tid: str, status: str) -> dict:
    return {"event": "trial", "trial_id": tid, "status": status, "reason": "", "config": {}}


def _smoke_dir(tmp_path: Path) -> Path:
    spec = new_spec(out=str(tmp_path / "smoke"), space="smoke")
    Path(spec.study_dir).mkdir(parents=True)
    spec.save()
    return Path(spec.study_dir)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5) -> tuple[int, dict, bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003 - see the 302 itself
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), b""


def _serving(url: str) -> bool:
    try:
        return _get(url, timeout=2)[0] == 200
    except OSError:
        return False


def _wait_for(predicate, timeout: float, what: str):  # noqa: ANN001, ANN202
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# ---------------------------------------------------------------------- without Ray
def test_counts_come_from_the_journal_read_incrementally(tmp_path):
    _journal(tmp_path, {"event": "study", "total_trials": 6}, _trial("a", "running"), _trial("b", "running"),
             _trial("c", "pending"), '{"event": "trial", "trial_id": "a", "status": "fini')  # torn: a crash mid-line
    counter = JournalCounter(tmp_path)
    counter.refresh()
    counts = counter.counts()
    assert (counts["finished"], counts["running"], counts["pending"]) == (0, 2, 4)  # c + 3 not created yet
    _journal(tmp_path, 'shed", "reason": "", "config": {}}\n', _trial("b", "errored"))
    counter.refresh()
    assert counts_text(counter.counts()) == "1 finished, 1 errored, 0 running, 4 pending"
    (tmp_path / JOURNAL_FILE).write_text(json.dumps(_trial("z", "running")) + "\n")  # replaced by a shorter file
    counter.refresh()
    assert counts_text(counter.counts()) == "0 finished, 1 running, 0 pending"


def test_the_page_has_the_header_before_any_result_and_regenerates_only_when_due(tmp_path):
    study = _smoke_dir(tmp_path)
    dash = LiveDashboard(study, every_s=3600)
    assert dash.step()  # the first look writes a page at once, with nothing to analyse yet
    page = (study / LIVE_DIRNAME / PAGE_FILE).read_text()
    assert "0 finished, 0 running, 0 pending" in page and "No results yet" in page
    assert '<div id="gs-live" data-version="1"' in page
    assert not dash.step()  # nothing changed: nothing rewritten

    _journal(study, {"event": "study", "total_trials": 4}, _trial("a", "running"))
    assert not dash.step()  # changed, but the last page is younger than every_s: the counts alone move on
    state = json.loads((study / LIVE_DIRNAME / STATE_FILE).read_text())
    assert state["counts_text"] == "0 finished, 1 running, 3 pending" and state["version"] == 1 and state["open"]
    assert dash.step(final=True)  # the last look at the study ignores the rate limit
    assert json.loads((study / LIVE_DIRNAME / STATE_FILE).read_text())["version"] == 2
    assert "0 finished, 1 running, 3 pending" in dash.page.read_text()
    # atomic writes: temp files beside the targets are renamed into place, none is left behind
    assert sorted(p.name for p in (study / LIVE_DIRNAME).iterdir()) == [PAGE_FILE, STATE_FILE]


def test_the_page_of_a_study_with_results_is_the_analysis_dashboard(tmp_path):
    study = make_study(tmp_path, seeds=(0,), losses=("bce",), with_memory=False)
    _journal(study, {"event": "study", "total_trials": 12}, *(_trial(f"t{i:04d}", "finished") for i in range(8)))
    dash = LiveDashboard(study, every_s=0)
    dash.step()
    page = dash.page.read_text()
    figures = int(re.search(rf'<meta name="{FIGURE_COUNT_META}" content="(\d+)"', page).group(1))
    assert figures >= 5 and 'class="plotly-graph-div"' in page
    assert "8 finished, 0 running, 4 pending" in page and 'fetch("live.json"' in page


def test_the_server_listens_on_localhost_and_sends_nothing_cacheable(tmp_path):
    (tmp_path / PAGE_FILE).write_bytes(b"<html>page</html>")
    (tmp_path / STATE_FILE).write_text('{"version": 1}')
    server = serve(tmp_path, port=0)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        status, headers, _ = _get(f"http://127.0.0.1:{port}/")
        assert status == 302 and headers["Location"] == f"/{PAGE_FILE}"
        status, headers, body = _get(f"http://127.0.0.1:{port}/{STATE_FILE}")
        assert status == 200 and body == b'{"version": 1}' and headers["Cache-Control"] == "no-store"
        assert _get(f"http://127.0.0.1:{port}/{PAGE_FILE}")[2] == b"<html>page</html>"
        (tmp_path / PAGE_FILE).unlink()  # before the watcher's first page: a stand-in that reloads itself
        status, _, body = _get(f"http://127.0.0.1:{port}/{PAGE_FILE}")
        assert status == 200 and b"being written" in body and b'http-equiv="refresh"' in body
        with pytest.raises(UserError, match=rf"^--port {port}: cannot listen on 127.0.0.1:{port} \(.*\); choose"):
            LiveOptions(port=port).check()
    finally:
        server.shutdown()
        server.server_close()


def test_a_taken_port_is_refused_before_the_study_launches(tmp_path, capsys):
    study = _smoke_dir(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        out = tmp_path / "s"
        assert main(["run", "--space", "smoke", "--out", str(out), "--live", "--port", str(port)]) == 2
        assert main(["resume", str(study), "--live", "--port", str(port)]) == 2
    for command, err in zip(("run", "resume"), capsys.readouterr().err.strip().split("\n"), strict=True):
        assert err.startswith(f"gan-study {command}: error: --port {port}: cannot listen on 127.0.0.1:{port}"), err
    assert not out.exists()


def test_watch_once_and_errors(tmp_path, capsys):
    study = _smoke_dir(tmp_path)
    assert main(["watch", str(study), "--once"]) == 0
    assert (study / LIVE_DIRNAME / PAGE_FILE).is_file()
    assert main(["watch", str(tmp_path / "nothing")]) == 2
    assert "is not a study directory (no study.json)" in capsys.readouterr().err


def test_the_watcher_beside_a_study_follows_it_and_stops_with_it(tmp_path, capsys):
    """What --live does around a study: a `gan-study watch` process serving the counts as the journal grows,
    stopped (after writing its last page) when the block ends."""
    study = _smoke_dir(tmp_path)
    options = LiveOptions(port=_free_port(), every_s=1)
    state_url = f"http://127.0.0.1:{options.port}/{STATE_FILE}"
    with live_dashboard(study, options) as url:
        assert url == f"http://127.0.0.1:{options.port}/"
        _wait_for(lambda: _get(state_url)[0] == 200, 60, "the watcher to serve live.json")
        _journal(study, {"event": "study", "total_trials": 4}, _trial("a", "running"), _trial("b", "finished"))
        _wait_for(lambda: b"1 finished, 1 running, 2 pending" in _get(state_url)[2], 20, "the new counts")
        watchers = [p for p in _children() if "watch" in p[1]]
        assert len(watchers) == 1
    assert not any("watch" in p[1] for p in _children())  # stopped when the study ended
    with pytest.raises(OSError):
        urllib.request.urlopen(state_url, timeout=2)
    assert "1 finished, 1 running, 2 pending" in (study / LIVE_DIRNAME / PAGE_FILE).read_text()  # its last page
    out = capsys.readouterr().out
    assert f"live dashboard: {url}" in out and "live dashboard stopped" in out


def _children() -> list[tuple[int, str]]:
    """(pid, command line) of this process's live (not zombie) children."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                found.append((int(proc.name), (proc / "cmdline").read_text().replace("\0", " ")))
        except (OSError, ValueError, IndexError):
            continue
    return found


# ---------------------------------------------------------------------- headless Chromium during a study
class DevTools:
    """A minimal Chrome DevTools Protocol client over --remote-debugging-pipe (JSON messages ending in NUL on
    file descriptors 3 and 4), so the test needs no websocket package: one page, kept open."""

    def __init__(self, profile: Path) -> None:
        import fcntl

        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        # above 9, so the shell's redirections onto 3 and 4 cannot clobber them
        to_chrome_r, from_chrome_w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w))
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}', CHROMIUM, *args],
            pass_fds=(to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf, self._id, self.events = b"", 0, []
        page = next(t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable", session=True)

    def send(self, method: str, params: dict | None = None, *, session: bool = False, timeout: float = 30) -> dict:
        import select

        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
                self.events.append(reply)
            if select.select([self._r], [], [], 0.5)[0]:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise EOFError("Chromium closed the DevTools pipe")
                self._buf += chunk
        raise TimeoutError(method)

    def evaluate(self, expression: str):  # noqa: ANN201
        """The value of `expression` in the page, or None while the page is (re)loading."""
        try:
            return self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                             session=True)["result"].get("value")
        except RuntimeError:  # the execution context went away with a reload
            return None

    def errors(self) -> list[tuple[float, str]]:
        """(epoch seconds, text) of the uncaught exceptions, console.error/assert calls and browser errors
        (failed loads) seen so far."""
        found = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                found.append((p["timestamp"], json.dumps(p["exceptionDetails"])))
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                found.append((p["timestamp"], json.dumps(p.get("args"))))
            elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                found.append((p["entry"]["timestamp"], f'{p["entry"].get("text", "")} {p["entry"].get("url", "")}'))
        return [(t / 1000, text[:500]) for t, text in found]  # CDP timestamps: milliseconds since the epoch

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


HEADER = "document.getElementById('gs-live-counts') && [document.getElementById('gs-live-counts').textContent, " \
         "document.getElementById('gs-live').dataset.version, performance.timeOrigin]"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install -y chromium)")
def test_a_page_left_open_during_a_study_follows_it_without_javascript_errors(tmp_path):
    """`gan-study run --live` on a toy smoke study (4 trials, 2 at a time); one Chromium page stays open."""
    port = _free_port()
    out = tmp_path / "smoke"
    cmd = [sys.executable, "-m", "study.cli", "run", "--space", "smoke", "--data", "phantom", "--out", str(out),
           "--set", "iterations=20", "--set", "data_limit=128", "--set", "downstream=", "--set", "eval_samples=32",
           "--quiet", "--live", "--port", str(port), "--live-every", "2"]
    log = tmp_path / "run.log"  # a file, not a pipe: Ray's output must never block the driver on a full pipe
    with open(log, "w") as sink:
        study = subprocess.Popen(cmd, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT)
    browser = None
    try:
        state_url = f"http://127.0.0.1:{port}/{STATE_FILE}"
        _wait_for(lambda: _serving(state_url) or study.poll() is not None, 120, "the live dashboard")
        assert study.poll() is None, log.read_text()[-3000:]
        browser = DevTools(tmp_path / "profile")
        browser.send("Page.navigate", {"url": f"http://127.0.0.1:{port}/"}, session=True)
        seen: list[tuple[str, str, float]] = []  # (counts text, page version, page load time)
        down_at = None  # when the watcher stopped serving (the study ended)
        deadline = time.monotonic() + 300
        while down_at is None:
            assert time.monotonic() < deadline, f"the study did not end in 300 s; the page saw {seen}"
            header = browser.evaluate(HEADER)
            if header and (not seen or tuple(header) != seen[-1]):
                seen.append(tuple(header))
            if not _serving(state_url):
                down_at = time.time()
            time.sleep(0.5)
        browser.evaluate("setTimeout(() => notDefinedAnywhere(), 0)")  # the canary: errors do reach us
        _wait_for(lambda: browser.evaluate("1") and any("notDefinedAnywhere" in e for _, e in browser.errors()), 10,
                  "the canary's exception")
        errors = [(t, e) for t, e in browser.errors() if "notDefinedAnywhere" not in e]
        study.wait(timeout=300)
    finally:
        if study.poll() is None:
            study.send_signal(signal.SIGINT)
            study.wait(timeout=120)
        if browser is not None:
            browser.close()
    output = log.read_text()
    assert study.returncode == 0, output[-3000:]
    finished = [int(text.split()[0]) for text, _, _ in seen]
    assert finished and finished[0] < 4 and max(finished) > finished[0], f"the count did not grow: {seen}"
    assert len({load for _, _, load in seen}) >= 2, f"the page never reloaded itself: {seen}"
    # Once the study is over its watcher stops, and the page's next poll of live.json (or its reload) fails:
    # the browser logs the failed load. Errors before that: none.
    ended = [e for t, e in errors if t > down_at - 5 and re.search(r"ERR_CONNECTION_(REFUSED|RESET)", e)]
    during = [e for _, e in errors if e not in ended]
    assert not during, "\n".join(during)
    assert "live dashboard stopped" in output
    assert "4 finished, 0 running, 0 pending" in (out / LIVE_DIRNAME / PAGE_FILE).read_text()
