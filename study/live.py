"""A live dashboard of a running study: `gan-study run ... --live` and `gan-study watch STUDY_DIR`.

A watcher process polls the study's files (the journal history.jsonl, trials.parquet, history.parquet) about
once a second. When they change it rewrites STUDY_DIR/live/live.json (trials finished/running/pending and the
time) and, at most every `every_s` seconds, regenerates STUDY_DIR/live/dashboard.html with the analysis of the
finished trials (the dashboard of `gan-study analyze`, with fewer resamples). Both files are written atomically,
so the page is never half-written. It serves STUDY_DIR/live/ over HTTP on 127.0.0.1 (only this machine; an SSH
tunnel brings it to a laptop). The page shows a header with the counts, polls live.json, updates the header
and reloads itself when a newer page exists; opened as a file it reloads every `every_s` seconds.

The watcher is its own process at low priority (`--live` starts one next to the driver and stops it when
the study ends), so neither the analysis nor the serving ever holds up the Ray driver's callbacks.

    gan-study run --space smoke --out runs/smoke --live           # then open http://127.0.0.1:8600/
    gan-study watch runs/smoke                                     # a study already running (or finished)
"""
from __future__ import annotations

import functools
import html
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from study.layout import HISTORY_FILE, JOURNAL_FILE, LIVE_DIRNAME, TRIALS_FILE
from trainers import metric_keys as K
from trainers.atomic import atomic_path
from trainers.errors import DataError, UserError

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8600  # clear of Ray's dashboard (8265) and the usual notebook/web ports
DEFAULT_EVERY_S = 10.0  # least time between two page regenerations
POLL_S = 1.0  # how often the watcher looks at the study's files (a stat() each)
PAGE_POLL_MS = 2000  # how often an open page asks for live.json (a few hundred bytes)
PAGE_FILE = "dashboard.html"
STATE_FILE = "live.json"
WATCHED = (JOURNAL_FILE, TRIALS_FILE, HISTORY_FILE)
STOP_TIMEOUT_S = 120.0  # for the watcher's last page after the study ends
ORDER = (K.STATUS_FINISHED, K.STATUS_DIVERGED, K.STATUS_STOPPED, K.STATUS_ERRORED, K.STATUS_RUNNING,
         K.STATUS_PENDING)


@dataclass(frozen=True)
class LiveOptions:
    """Where `--live` serves the page and how often it regenerates it."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    every_s: float = DEFAULT_EVERY_S

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def check(self) -> None:
        """Refuse bad options and a port already taken, before the study launches."""
        if self.every_s <= 0:
            raise UserError(f"--live-every {self.every_s:g} must be > 0 seconds")
        if not 0 < self.port < 65536:
            raise UserError(f"--port {self.port} must be between 1 and 65535")
        check_port(self.host, self.port)


# ---------------------------------------------------------------------- counts
class JournalCounter:
    """Trial counts by status from the journal, read incrementally: each refresh parses only the lines
    appended since the last one (a study's journal grows to many MB), up to the last complete line."""

    def __init__(self, study_dir: str | Path) -> None:
        from study.tables import StudyTables

        self.path = Path(study_dir) / JOURNAL_FILE
        self._new_tables = lambda: StudyTables(Path(study_dir).name, study_dir)
        self.tables = self._new_tables()
        self._offset = 0

    def refresh(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size < self._offset:  # replaced by a shorter file (a copy, a restore): start over
            self.tables, self._offset = self._new_tables(), 0
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read(size - self._offset)
        complete = chunk[:chunk.rfind(b"\n") + 1]  # a torn last line waits for its end
        self._offset += len(complete)
        for line in complete.splitlines():
            try:
                self.tables.apply(json.loads(line))
            except (ValueError, KeyError):
                continue

    def counts(self) -> dict[str, int]:
        """Trials per status; pending includes trials the search will still create."""
        counts = dict.fromkeys(ORDER, 0)
        for state in self.tables.trials.values():
            counts[state["status"]] = counts.get(state["status"], 0) + 1
        counts[K.STATUS_PENDING] += max(0, self.tables.total_trials - len(self.tables.trials))
        return counts


def counts_text(counts: dict[str, int]) -> str:
    """'3 finished, 2 running, 7 pending', with diverged/stopped/errored only when there are any."""
    always = (K.STATUS_FINISHED, K.STATUS_RUNNING, K.STATUS_PENDING)
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in ORDER if s in always or counts.get(s))


# ---------------------------------------------------------------------- the page
HEAD = """<link rel="icon" href="data:,"><noscript><meta http-equiv="refresh" content="{every}"></noscript>
<style>#gs-live{{position:sticky;top:0;z-index:10;background:#fff8db;border:1px solid #e3cf8a;border-radius:4px;
padding:.4rem .8rem;font-size:.95rem}} #gs-live .note{{margin-left:.6rem}}</style>"""
BANNER = """<div id="gs-live" data-version="{version}" data-poll-ms="{poll_ms}" data-reload-ms="{reload_ms}">
<strong>Live</strong>: <span id="gs-live-counts">{counts}</span>
&mdash; updated <span id="gs-live-updated">{updated}</span>
<span class="note" id="gs-live-note">figures from {generated}, of finished trials; regenerated at most every {every} s
(<code>gan-study analyze</code> for the full report)</span></div>
<script>
(() => {{
  const box = document.getElementById("gs-live");
  const show = (id, text) => {{ document.getElementById(id).textContent = text; }};
  if (location.protocol === "file:") {{  // no server to ask: the file on disk is rewritten in place
    setTimeout(() => location.reload(), Number(box.dataset.reloadMs));
    return;
  }}
  let failures = 0;
  async function poll() {{
    try {{
      const response = await fetch("{state}", {{cache: "no-store"}});
      if (!response.ok) throw new Error("HTTP " + response.status);
      const state = await response.json();
      failures = 0;
      if (state.version !== Number(box.dataset.version)) {{ location.reload(); return; }}
      show("gs-live-counts", state.counts_text);
      show("gs-live-updated", state.updated);
      box.dataset.polls = String(Number(box.dataset.polls || 0) + 1);
    }} catch (err) {{
      failures += 1;
      show("gs-live-note", "the watcher does not answer (the study ended or gan-study watch stopped): " +
           "this is the last page it wrote");
      if (failures >= 3) return;
    }}
    setTimeout(poll, Number(box.dataset.pollMs));
  }}
  setTimeout(poll, Number(box.dataset.pollMs));
}})();
</script>"""
PLACEHOLDER = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>{head}</head>
<body style="font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:1200px">{banner}
<h1>{title}</h1><p>{message}</p></body></html>"""


class LiveDashboard:
    """Keeps OUT/dashboard.html and OUT/live.json current for one study directory (see the module docstring).

    Args:
        study_dir: the study (STUDY_DIR).
        out: where the page goes (default STUDY_DIR/live).
        every_s: least time between two page regenerations.
        resamples: bootstrap resamples and permutations of the live analysis (fewer than `gan-study analyze`'s
            2000: the page is a progress view, regenerated often).
    """

    def __init__(self, study_dir: str | Path, out: str | Path | None = None, *, every_s: float = DEFAULT_EVERY_S,
                 resamples: int = 200) -> None:
        self.study_dir = Path(study_dir).resolve()
        self.out = Path(out) if out else self.study_dir / LIVE_DIRNAME
        self.every_s, self.resamples = every_s, resamples
        self.counter = JournalCounter(self.study_dir)
        self.version = 0
        self.updated = ""  # when the counts last changed (local time)
        self.generated = ""  # when the page was last regenerated
        self._counted: tuple | None = None  # file signatures at the last count / page
        self._paged: tuple | None = None
        self._last_page = -float("inf")
        self._last_error = ""

    @property
    def page(self) -> Path:
        return self.out / PAGE_FILE

    def step(self, *, final: bool = False) -> bool:
        """One look at the study: new counts when its files changed; a new page when they changed since the
        last one and `every_s` has passed (or now, when `final`). Returns True when the page was rewritten."""
        sig = self._signature()
        if sig != self._counted or not self.updated:
            self._counted = sig
            self.counter.refresh()
            self.updated = time.strftime("%H:%M:%S")
            self._write_state()
        if sig == self._paged or not (final or time.monotonic() - self._last_page >= self.every_s):
            return False
        self._paged = sig
        self._regenerate()
        return True

    def run(self, stop: threading.Event, *, parent_pid: int | None = None) -> None:
        """Step every POLL_S seconds until `stop` is set (or the parent process is gone), then write the last
        page. An error in one step is logged and the watcher goes on."""
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - a live view must outlive a bad moment of the study's files
                logger.exception("live dashboard: update failed; trying again")
            if parent_pid is not None and os.getppid() != parent_pid:
                break  # the driver that started us died (kill -9): nobody will stop us otherwise
            stop.wait(POLL_S)
        self.step(final=True)

    # ------------------------------------------------------------------ internals
    def _signature(self) -> tuple:
        sig = []
        for name in WATCHED:
            try:
                st = (self.study_dir / name).stat()
                sig.append((st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                sig.append(None)
        return tuple(sig)

    def _state(self) -> dict[str, Any]:
        counts = self.counter.counts()
        return {"version": self.version, "counts": counts, "counts_text": counts_text(counts),
                "open": bool(counts[K.STATUS_RUNNING] or counts[K.STATUS_PENDING]), "updated": self.updated,
                "generated": self.generated, "every_s": self.every_s}

    def _write_state(self) -> None:
        _write_atomic(self.out / STATE_FILE, json.dumps(self._state()))

    def _regenerate(self) -> None:
        self._last_page = time.monotonic()
        self.version += 1
        self.generated = time.strftime("%H:%M:%S")
        state = self._state()
        every = f"{self.every_s:g}"
        head = HEAD.format(every=max(1, round(self.every_s)))
        banner = BANNER.format(version=self.version, poll_ms=PAGE_POLL_MS, reload_ms=int(self.every_s * 1000),
                               counts=html.escape(state["counts_text"]), updated=self.updated,
                               generated=self.generated, every=every, state=STATE_FILE)
        page = self._render(head, banner)
        _write_atomic(self.page, page)
        self._write_state()  # after the page: a browser told of the new version finds it on disk

    def _render(self, head: str, banner: str) -> str:
        """The analysis dashboard of the finished trials; a page with the header alone while there is
        nothing to analyse yet (or the analysis failed: then the page says why)."""
        title = f"GAN study: {self.study_dir.name} (live)"
        try:
            from analysis.dashboard import render_dashboard
            from analysis.pipeline import analyze

            with warnings.catch_warnings():  # small samples warn every time: not for a terminal every 10 s
                warnings.simplefilter("ignore")
                result = analyze([self.study_dir], n_resamples=self.resamples, n_permutations=self.resamples,
                                 include_reference=False, yardstick=False)
                return render_dashboard(result, title=title, head=head, banner=banner)[0]
        except DataError:
            message = "No results yet: figures appear here once trials report."
        except Exception as exc:  # noqa: BLE001 - keep serving counts; say what went wrong once
            line = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if line != self._last_error:
                logger.exception("live dashboard: the analysis failed; the page shows the counts only")
                self._last_error = line
            message = f"The analysis of the results so far failed ({html.escape(line)}); the counts above are current."
        return PLACEHOLDER.format(title=html.escape(title), head=head, banner=banner, message=message)


def _write_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------- serving
STARTING = (b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Live dashboard</title>'
            b'<link rel="icon" href="data:,"><meta http-equiv="refresh" content="1"></head>'
            b"<body><p>The first page of the live dashboard is being written&hellip;</p></body></html>")


class _Handler(SimpleHTTPRequestHandler):
    """Static files of the live directory; / goes to the dashboard, which reads "being written" (and reloads
    itself) until the watcher wrote its first page; never cached (the files change)."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path in ("", "/"):
            self.send_response(302)
            self.send_header("Location", f"/{PAGE_FILE}")
            self.end_headers()
        elif path == f"/{PAGE_FILE}" and not (Path(self.directory) / PAGE_FILE).is_file():
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(STARTING)))
            self.end_headers()
            self.wfile.write(STARTING)
        else:
            super().do_GET()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - one line per request is noise here
        pass


def check_port(host: str, port: int) -> None:
    """A one-line UserError when nothing could listen on host:port (taken, or not an address of this machine)."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise _port_error(host, port, exc) from None


def _port_error(host: str, port: int, exc: OSError) -> UserError:
    return UserError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                     "choose another --port (or --host)")


def serve(directory: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """Serve `directory` on host:port from a daemon thread; `server.shutdown()` stops it. Port 0 picks a free
    one (`server.server_address[1]`)."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    try:
        server = ThreadingHTTPServer((host, port), functools.partial(_Handler, directory=str(directory)))
    except OSError as exc:
        raise _port_error(host, port, exc) from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="live-dashboard-http", daemon=True).start()
    return server


@contextmanager
def live_dashboard(study_dir: str | Path, options: LiveOptions) -> Iterator[str]:
    """Run `gan-study watch STUDY_DIR` beside the block (the study): a separate process at low priority, in
    its own session so the terminal's Ctrl-C goes to the study alone; stopped when the block ends, after it
    wrote the last page. Yields the URL."""
    cmd = [sys.executable, "-m", "study.watch_command", str(study_dir), "--host", options.host, "--port",
           str(options.port), "--every", f"{options.every_s:g}", "--quiet", "--parent-pid", str(os.getpid())]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    print(f"live dashboard: {options.url} (regenerated at most every {options.every_s:g} s)", flush=True)
    try:
        yield options.url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the watcher writes its last page, then exits
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        page = Path(study_dir) / LIVE_DIRNAME / PAGE_FILE
        print(f"live dashboard stopped; its last page is {page} (gan-study watch {study_dir} serves it again)",
              flush=True)


# ---------------------------------------------------------------------- command-line options
def add_serve_arguments(parser: Any) -> None:
    """--host, --port (shared by `watch` and the --live of `run`/`resume`)."""
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address the live dashboard listens on (default {DEFAULT_HOST}: this machine only; "
                             "reach it from elsewhere through an SSH tunnel)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"its port (default {DEFAULT_PORT})")


def add_live_arguments(parser: Any) -> None:
    """--live and its options, for `gan-study run` and `resume`."""
    parser.add_argument("--live", action="store_true",
                        help="keep a dashboard of the running study current and serve it on http://HOST:PORT/")
    add_serve_arguments(parser)
    parser.add_argument("--live-every", type=float, default=DEFAULT_EVERY_S, metavar="SECONDS",
                        help=f"least time between two regenerations of the page (default {DEFAULT_EVERY_S:g})")


def live_kwargs(args: Any) -> dict[str, Any]:
    """--live and its options as keywords of the API's run_study/resume_study ({} without --live)."""
    if not args.live:
        return {}
    return {"live": True, "host": args.host, "port": args.port, "live_every_s": args.live_every}
