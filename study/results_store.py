"""The results store: a Ray Tune callback in the driver that journals every report and keeps the
Parquet tables of docs/RESULTS_SCHEMA.md current.

Every event is appended to STUDY_DIR/history.jsonl and fsynced before the callback returns, so a
crash (even kill -9 of the driver) loses at most the report in flight. The Parquet files are views
rebuilt from that journal and replaced atomically, after each report (at most once per
`min_write_interval_s`, to keep big studies cheap) and always when a trial ends and when the
experiment ends (also after Ctrl-C).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune import result as ray_result
from ray.tune.experiment import Trial

from search_spaces.design import DESIGN_ID
from search_spaces.space import SearchSpace, flat_point
from study.layout import HISTORY_FILE, JOURNAL_FILE, STUDY_FILE, TRIALS_DIRNAME, TRIALS_FILE
from study.tables import TERMINAL, StudyTables, read_journal, write_tables
from trainers import metric_keys as K
from trainers.layout import METRICS_FILE

logger = logging.getLogger(__name__)

# Keys Ray adds to every result; everything else in a result came from the trainer.
RAY_KEYS = set(ray_result.AUTO_RESULT_KEYS) | set(ray_result.DEBUG_METRICS) | {
    ray_result.DONE, ray_result.SHOULD_CHECKPOINT, ray_result.EXPERIMENT_TAG, ray_result.TIME_THIS_ITER_S,
    ray_result.TIMESTEPS_THIS_ITER, ray_result.EPISODES_THIS_ITER,
}


class ResultsStore(tune.Callback):
    """Journal + Parquet tables for one study directory.

    Args:
        study_dir: STUDY_DIR on the driver.
        space: turns a trial's flat Ray config into its TrialConfig (the `config/<field>` columns).
        scheduler: name used in the reason of trials a scheduler stopped early.
        min_write_interval_s: least time between two Parquet rewrites triggered by reports.
        mirror_uri: optional storage URI (s3://...) the small study files are copied to.
    """

    def __init__(self, study_dir: str, space: SearchSpace, *, scheduler: str = "fifo",
                 min_write_interval_s: float = 1.0, mirror_uri: str = "") -> None:
        self.study_dir = str(study_dir)
        self.space = space
        self.scheduler = scheduler
        self.min_write_interval_s = min_write_interval_s
        self.mirror_uri = mirror_uri
        self._init_state()

    def _init_state(self) -> None:
        self.tables = StudyTables(Path(self.study_dir).name, self.study_dir)
        self._last_write = 0.0
        self._last_mirror = 0.0
        self._loaded = False

    # The Tuner pickles its callbacks into the experiment (tuner.pkl): keep only the settings.
    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("study_dir", "space", "scheduler", "min_write_interval_s", "mirror_uri")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_state()

    # ------------------------------------------------------------------ Tune hooks
    def setup(self, **info: Any) -> None:
        self.load()
        # With a design every trial is known in advance (a resume from the results store runs only the rest).
        total = self.space.grid_size() if self.space.design is not None else info.get("total_num_samples")
        if isinstance(total, int) and total > 0 and total != self.tables.total_trials:
            self._append({"event": "study", "timestamp": time.time(), "total_trials": total})

    def load(self) -> None:
        """Replay the journal (a resumed study continues its tables)."""
        if self._loaded:
            return
        Path(self.study_dir).mkdir(parents=True, exist_ok=True)
        for record in read_journal(self.journal_path):
            self.tables.apply(record)
        self._loaded = True
        self._recover_from_trial_logs()

    def _recover_from_trial_logs(self) -> None:
        """Journal reports a killed driver never received.

        Each trial also logs its reports to trials/<id>/metrics.jsonl before sending them. After a crash a
        trial continues from its newest checkpoint, so reports made after Ray's last snapshot would
        otherwise be missing; they are read back here, before any trial restarts (and truncates its log).
        """
        for tid, known in list(self.tables.reports.items()) + [
                (t, {}) for t in self.tables.trials if t not in self.tables.reports]:
            log = Path(self.study_dir) / TRIALS_DIRNAME / tid / METRICS_FILE
            for record in read_journal(log):
                it = record.get(K.ITERATION)
                if it is None or int(it) in known:
                    continue
                if isinstance(record.get(K.SAMPLE_PATH), str):
                    record[K.SAMPLE_PATH] = self.tables.relative(record[K.SAMPLE_PATH])
                self._append({"event": "report", "trial_id": tid, "timestamp": log.stat().st_mtime,
                              "metrics": record, "recovered": True})

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        for trial in trials:  # trials the searcher created but Ray has not started yet
            if trial.trial_id not in self.tables.trials and trial.status == Trial.PENDING:
                self._trial_event(trial, K.STATUS_PENDING)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trial_event(trial, K.STATUS_RUNNING)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trial_event(trial, K.STATUS_RUNNING, f"restarting from the last checkpoint after: {_error_line(trial)}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        metrics = {k: plain_value(v) for k, v in result.items()
                   if k not in RAY_KEYS and not k.startswith("__") and not isinstance(v, (dict, list))}
        if isinstance(metrics.get(K.SAMPLE_PATH), str):  # journal it relative, so the study dir can move
            metrics[K.SAMPLE_PATH] = self.tables.relative(metrics[K.SAMPLE_PATH])
        self._append({"event": "report", "trial_id": trial.trial_id, "timestamp": time.time(), "metrics": metrics})
        self._write(force=metrics.get(K.STATUS) in (K.STATUS_FINISHED, K.STATUS_DIVERGED))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        status = last.get(K.STATUS)
        if status in (K.STATUS_FINISHED, K.STATUS_DIVERGED):
            self._trial_event(trial, status, last.get(K.REASON) or "")
        else:  # the function did not end the run itself: the scheduler (or a stopper) stopped it
            self._trial_event(trial, K.STATUS_STOPPED, f"stopped early by the {self.scheduler} scheduler at "
                                                       f"iteration {last.get(K.ITERATION, 0)}")
        self._write(force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._trial_event(trial, K.STATUS_ERRORED, _error_line(trial))
        self._write(force=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # Trials still open here were interrupted (Ctrl-C): `gan-study resume` continues them.
        for tid, state in self.tables.trials.items():
            if state["status"] not in TERMINAL:
                self._append({"event": "trial", "trial_id": tid, "timestamp": time.time(), "status": K.STATUS_PENDING,
                              "reason": "interrupted; continue with gan-study resume", "config": state["config"]})
        self._write(force=True)
        self._mirror(force=True)

    def drop(self, trial_ids: list[str], reason: str) -> None:
        """Journal that these unfinished trials are gone (their Ray state was lost): they run again anew."""
        for tid in trial_ids:
            self._append({"event": "drop", "trial_id": tid, "timestamp": time.time(), "reason": reason})
        self._write(force=True)

    # ------------------------------------------------------------------ internals
    @property
    def journal_path(self) -> Path:
        return Path(self.study_dir) / JOURNAL_FILE

    def _trial_event(self, trial: Any, status: str, reason: str = "") -> None:
        try:
            config = self.space.resolve(trial.config).to_dict()
        except Exception as exc:  # noqa: BLE001 - never let bookkeeping kill the study
            logger.warning("trial %s: config not resolvable (%s)", trial.trial_id, exc)
            config = {}
        record = {"event": "trial", "trial_id": trial.trial_id, "timestamp": time.time(),
                  "status": status, "reason": reason, "config": config}
        point = flat_point(trial.config)
        if DESIGN_ID in point:  # which drawn configuration and design cell this trial repeats
            cell = self.space.cell_of(point)
            record["design"] = {DESIGN_ID: point[DESIGN_ID], "cell": {k: str(v) for k, v in cell.items()}}
        self._append(record)

    def _append(self, record: dict[str, Any]) -> None:
        self.load()
        line = json.dumps(record, default=plain_value, allow_nan=True)
        with open(self.journal_path, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.tables.apply(record)

    def _write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.min_write_interval_s:
            return
        try:
            write_tables(self.tables, self.study_dir)
        except Exception:
            logger.exception("could not rewrite the Parquet tables; %s is intact", self.journal_path)
        self._last_write = time.monotonic()
        self._mirror(force=False)

    def _mirror(self, force: bool) -> None:
        """Copy the small study files next to Ray's experiment in cloud storage (every 30 s and at the end)."""
        if not self.mirror_uri or (not force and time.monotonic() - self._last_mirror < 30):
            return
        self._last_mirror = time.monotonic()
        try:
            import pyarrow.fs

            fs, base = pyarrow.fs.FileSystem.from_uri(self.mirror_uri.rstrip("/"))
            fs.create_dir(base, recursive=True)
            for name in (STUDY_FILE, JOURNAL_FILE, HISTORY_FILE, TRIALS_FILE):
                src = Path(self.study_dir) / name
                if src.is_file():
                    with fs.open_output_stream(f"{base}/{name}") as out:
                        out.write(src.read_bytes())
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not mirror study files to %s: %s", self.mirror_uri, exc)


def _error_line(trial: Any) -> str:
    """The exception line of a failed trial (`ValueError: ...`), not Ray's whole traceback."""
    try:
        err = trial.get_pickled_error() or trial.get_error()
    except Exception:  # noqa: BLE001
        err = None
    cause = getattr(err, "cause", None) or err
    if cause is not None and not isinstance(cause, str):
        text = f"{type(cause).__name__}: {cause}".strip()
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if lines and "Traceback" not in lines[0]:
            return lines[0][:500]
    path = getattr(trial, "error_file", None)
    if path and os.path.isfile(path):
        lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
        if lines:
            return lines[-1][:500]
    return "trial failed (no error message recorded)"


def plain_value(value: Any) -> Any:
    """A JSON- and Parquet-able scalar: numpy numbers and 0-d tensors unwrapped, paths and others as str."""
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, Path):
        return str(value)
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
