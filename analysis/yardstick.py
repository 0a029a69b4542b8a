"""Interpreting the FID yardstick of a study (`trainers.evaluation.yardstick` measures it):

- the **floor** table of a measurement setting (FID between two real samples), looked up in the committed
  results (`results/yardstick_*/yardstick.json`), else in the on-disk cache, else computed once and cached;
- **relative FID** = FID / the halves floor at the same N, beside FID;
- **extractor-seed robustness**: do the configurations rank the same when the domain extractor is
  retrained with another seed? Pass = Spearman >= SPEARMAN_PASS for every pair of seeds, a threshold
  fixed here before anything is computed; plus ICC(2,1) of FID across extractor seeds;
- the ranking against the held-out test split beside the training-split reference.

`render_yardstick_markdown` gives a report section; docs/STATISTICS.md ("Yardstick") defines every number.
"""
from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from analysis import columns as C
from trainers import metric_keys as mk
from trainers.atomic import atomic_path

# Fixed before any robustness result was computed (issue 16 section 6): the configurations' FID
# rankings from every pair of extractor seeds must agree with Spearman rho >= 0.9.
SPEARMAN_PASS = 0.9
PASS_TOLERANCE = 1e-9  # float round-off: rho = 0.9 exactly (one swap among 5) computes as 0.8999999999999998
ICC_KIND = "ICC(2,1)"  # two-way random effects, absolute agreement, single rater (Shrout & Fleiss 1979)
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
YARDSTICK_FILE = "yardstick.json"
SCHEMA = 1  # of YARDSTICK_FILE


@dataclass
class Robustness:
    """FID of each configuration (mean over its trials) under each extractor seed, and what it says."""

    seeds: list[int]
    configurations: list[str]  # labels, one per row of `fid`
    fid: list[list[float]]  # (configurations, seeds)
    trials: int
    spearman: dict[str, float] = field(default_factory=dict)  # "0-1" -> rho
    min_spearman: float = math.nan
    threshold: float = SPEARMAN_PASS
    passed: bool | None = None  # None: not decidable (fewer than 3 configurations)
    icc: float = math.nan  # ICC_KIND of FID across extractor seeds
    icc_log: float = math.nan  # the same on log FID (FIDs spanning decades are dominated by the worst)
    icc_kind: str = ICC_KIND
    fid_test: list[float] = field(default_factory=list)  # seed 0, against the test split at the test n
    fid_train_at_test_n: list[float] = field(default_factory=list)  # seed 0, training split at that n
    spearman_test_vs_train: float = math.nan
    rescore_max_rel_diff: float = math.nan  # seed 0 re-scored vs the FID the trials recorded
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return f"not decidable: {self.note or 'fewer than 3 configurations'}"
        word = "PASS" if self.passed else "FAIL"
        return (f"{word}: min Spearman {self.min_spearman:.3f} over {len(self.spearman)} seed pair(s) "
                f"{'>=' if self.passed else '<'} {self.threshold} (threshold fixed before computing)")


# ---------------------------------------------------------------------------------------------- statistics
def relative_fid(fid: float | np.ndarray, floor: float) -> float | np.ndarray:
    """FID / the real-vs-real floor at the same N and extractor: 1 = as close as two real samples."""
    if not (isinstance(floor, (int, float)) and math.isfinite(floor) and floor > 0):
        return np.full(np.shape(fid), math.nan) if np.ndim(fid) else math.nan
    return np.asarray(fid, dtype=np.float64) / floor if np.ndim(fid) else float(fid) / floor


def _mean_squares(x: np.ndarray) -> tuple[float, float, float, float]:
    """(MSR rows, MSC columns, MSE residual, MSW within rows) of a two-way table without replication."""
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_total = ((x - grand) ** 2).sum()
    ss_err = ss_total - ss_rows - ss_cols
    msr, msc = ss_rows / (n - 1), ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    msw = (ss_cols + ss_err) / (n * (k - 1))
    return msr, msc, mse, msw


def icc_2_1(x: np.ndarray) -> float:
    """ICC(2,1) of an (n targets, k raters) table: two-way random effects, absolute agreement, one rater.
    (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n)  (Shrout & Fleiss 1979; McGraw & Wong's ICC(A,1))."""
    x = np.asarray(x, dtype=np.float64)
    n, k = x.shape
    if n < 2 or k < 2 or not np.isfinite(x).all():
        return math.nan
    msr, msc, mse, _ = _mean_squares(x)
    den = msr + (k - 1) * mse + k * (msc - mse) / n
    return float((msr - mse) / den) if den > 0 else math.nan


def icc_1(x: np.ndarray) -> float:
    """ICC(1) = ICC(1,1): one-way random effects, (MSR - MSW) / (MSR + (k-1) MSW) (Shrout & Fleiss 1979)."""
    x = np.asarray(x, dtype=np.float64)
    n, k = x.shape
    if n < 2 or k < 2 or not np.isfinite(x).all():
        return math.nan
    msr, _, _, msw = _mean_squares(x)
    den = msr + (k - 1) * msw
    return float((msr - msw) / den) if den > 0 else math.nan


def robustness(scores: Mapping[str, Mapping[int, Mapping[str, float]]], configuration: Mapping[str, str], *,
               recorded_fid: Mapping[str, float] | None = None, threshold: float = SPEARMAN_PASS) -> Robustness:
    """The extractor-seed check from re-scored trials.

    scores: {trial: {extractor seed: {"fid", "fid_test", "fid_train_at_test_n"}}} (`rescore_images`);
    configuration: {trial: configuration label} (seeds of one configuration share a label; their FIDs are
    averaged, as at the analysis' configuration level); recorded_fid: {trial: FID the trial reported}
    (checks that seed 0 re-scores what the trial measured).
    """
    trials = sorted(scores)
    seeds = sorted({s for t in trials for s in scores[t]})
    labels = sorted({configuration[t] for t in trials})
    rows = {lab: [t for t in trials if configuration[t] == lab] for lab in labels}

    def table(metric: str, seed_list: Sequence[int]) -> np.ndarray:
        return np.array([[np.mean([scores[t][s][metric] for t in rows[lab]]) for s in seed_list] for lab in labels])

    fid = table("fid", seeds)
    out = Robustness(seeds=seeds, configurations=labels, fid=fid.tolist(), trials=len(trials), threshold=threshold)
    if recorded_fid:
        diffs = [abs(scores[t][0]["fid"] - recorded_fid[t]) / max(abs(recorded_fid[t]), 1e-12)
                 for t in trials if 0 in scores[t] and t in recorded_fid and math.isfinite(recorded_fid[t])]
        out.rescore_max_rel_diff = float(max(diffs)) if diffs else math.nan
    if 0 in seeds:
        out.fid_test = table("fid_test", [0])[:, 0].tolist()
        out.fid_train_at_test_n = table("fid_train_at_test_n", [0])[:, 0].tolist()
    if len(labels) < 3 or not np.isfinite(fid).all():
        out.note = (f"{len(labels)} configuration(s); a ranking needs >= 3" if len(labels) < 3
                    else "a re-scored FID is not finite")
        return out
    for (i, a), (j, b) in itertools.combinations(enumerate(seeds), 2):
        out.spearman[f"{a}-{b}"] = _spearman(fid[:, i], fid[:, j])
    out.min_spearman = min(out.spearman.values()) if out.spearman else math.nan
    out.passed = bool(out.spearman) and out.min_spearman >= threshold - PASS_TOLERANCE
    if not out.spearman:
        out.passed, out.note = None, "one extractor seed: nothing to compare"
    elif any(math.isnan(v) for v in out.spearman.values()):
        out.passed, out.note = None, "an extractor seed gives every configuration the same FID (no ranking)"
    out.icc = icc_2_1(fid)
    out.icc_log = icc_2_1(np.log(np.clip(fid, 1e-12, None)))
    if out.fid_test:
        out.spearman_test_vs_train = _spearman(out.fid_test, out.fid_train_at_test_n)
    return out


def _spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho; NaN (not scipy's warning) when either side is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.nan
    return float(spearmanr(a, b).statistic)


# ---------------------------------------------------------------------------------------------- settings
def resolve_data(data: str) -> str:
    """A data source as stored in results (paths relative to the repository root) usable from here."""
    if data in ("phantom", "pneumoniamnist"):
        return data
    p = Path(data).expanduser()
    if p.is_absolute():
        return str(p)
    for base in (Path.cwd(), REPO):
        if (base / p).exists():
            return str((base / p).resolve())
    return data


def settings_from_trials(trials: pd.DataFrame) -> list[tuple[Any, str]]:
    """[(trainers.evaluation.yardstick.Setting, the eval_extractor name the trials recorded)], one per
    measurement setting among trials with a FID."""
    from trainers.evaluation.yardstick import DATA_OPTIONS, Setting

    need = [mk.EVAL_EXTRACTOR, mk.EVAL_N, C.cfg("data"), C.cfg("resolution")]
    if trials.empty or any(c not in trials.columns for c in need):
        return []
    df = trials.dropna(subset=[mk.FID, mk.EVAL_EXTRACTOR, mk.EVAL_N]) if mk.FID in trials.columns else trials.iloc[:0]
    options = [C.cfg(k) for k in DATA_OPTIONS if C.cfg(k) in df.columns]
    cols = need + [c for c in (C.cfg("hist_eq"), C.cfg("class_subset"), C.cfg("extractor"), C.cfg("inception_dims"))
                   if c in df.columns] + options
    out = []
    for _, r in df[cols].drop_duplicates().iterrows():
        setting = Setting(data=resolve_data(str(r[C.cfg("data")])), resolution=int(r[C.cfg("resolution")]),
                          n=int(r[mk.EVAL_N]), extractor=str(r.get(C.cfg("extractor"), "domain")),
                          inception_dims=int(r.get(C.cfg("inception_dims"), 2048)),
                          hist_eq=bool(r.get(C.cfg("hist_eq"), False)),
                          class_subset=str(r.get(C.cfg("class_subset"), "") or ""),
                          data_options=tuple((c.removeprefix(C.CONFIG_PREFIX), _plain(r[c])) for c in options
                                             if not pd.isna(r[c])))
        out.append((setting, str(r[mk.EVAL_EXTRACTOR])))
    return out


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


# ---------------------------------------------------------------------------------------------- lookup/cache
def committed_floors(results: Path = RESULTS) -> list[tuple[Any, str]]:
    """[(Floor, the extractor name of the study it was computed for)] from results/*/yardstick.json (a
    floor of its own, results/yardstick_<data>_<R>/, or an exported study's)."""
    from trainers.evaluation.yardstick import Floor

    out = []
    for path in sorted(Path(results).glob(f"*/{YARDSTICK_FILE}")):
        doc = json.loads(path.read_text())
        for entry in doc.get("settings", []):
            out.append((Floor.from_dict(entry["floor"]), str(entry.get("study_extractor") or "")))
    return out


def study_robustness(study_dirs: Iterable[str | Path]) -> dict[str, Robustness]:
    """{eval_extractor: Robustness} from each study dir's yardstick.json (written by `gan-study yardstick
    --study DIR --out DIR/yardstick.json`, kept by `study.export_results`); {} where there is none."""
    out: dict[str, Robustness] = {}
    for d in study_dirs:
        path = Path(d) / YARDSTICK_FILE
        if not path.is_file():
            continue
        for entry in json.loads(path.read_text()).get("settings", []):
            if entry.get("robustness"):
                rob = {k: v for k, v in entry["robustness"].items() if k != "verdict"}
                rob["fid"] = [[math.nan if v is None else v for v in row] for row in rob["fid"]]
                out[str(entry.get("study_extractor") or entry["floor"]["extractor_name"])] = Robustness(**rob)
    return out


def find_floor(extractor_name: str, n: int, *, class_subset: str = "", data: str | None = None,
               results: Path | None = RESULTS, cache_dir: str | Path | None = None, cached: bool = True) -> Any:
    """The floor of a setting already computed (committed results first, then the cache unless
    cached=False), else None. Nothing is computed or trained. `data` is compared only for extractors whose
    name does not encode the data (pretrained ones: "inception-2048")."""
    from trainers.evaluation.yardstick import SEEDED_EXTRACTORS

    def matches(floor: Any, alias: str) -> bool:
        s = floor.setting
        same_data = s.extractor in SEEDED_EXTRACTORS or data is None or resolve_data(data) == resolve_data(s.data)
        return extractor_name in (floor.extractor_name, alias) and s.n == n and s.class_subset == class_subset \
            and same_data

    for floor, alias in committed_floors(results) if results is not None else []:
        if matches(floor, alias):
            return floor
    for path in sorted(_cache_root(cache_dir).glob("floor-*.json")) if cached else []:
        floor, alias = _read_cached(path)
        if floor is not None and matches(floor, alias):
            return floor
    return None


def yardstick_floor(setting: Any, *, study_extractor: str = "", cache_dir: str | Path | None = None,
                    device: str = "cpu", results: Path | None = RESULTS, refresh: bool = False) -> Any:
    """The Floor of a measurement setting: committed (in `results`) or cached if there, else computed (the
    extractor and the real features come from the evaluator's caches, trained/extracted only if absent)
    and cached. refresh=True recomputes it from those caches and skips the committed results."""
    if not refresh and study_extractor:
        found = find_floor(study_extractor, setting.n, class_subset=setting.class_subset, data=setting.data,
                           results=results, cache_dir=cache_dir)
        if found is not None:
            return found
    from trainers.evaluation.yardstick import Yardstick, setting_key

    path = _cache_root(cache_dir) / f"floor-{setting_key(setting)}.json"
    floor, _ = (None, "") if refresh else _read_cached(path)
    if floor is None:
        floor = Yardstick(setting, cache_dir=cache_dir, device=device).floor()
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"floor": floor.to_dict(), "study_extractor": study_extractor}, indent=1))
    return floor


class YardstickEntry(NamedTuple):
    """One measurement setting of a study: its floor (None when absent), the eval_extractor its trials
    recorded, and why the floor is absent ("" when it is there)."""

    floor: Any
    study_extractor: str
    reason: str = ""


def yardstick_for_trials(trials: pd.DataFrame, *, compute: bool = True, cached: bool = True,
                         cache_dir: str | Path | None = None, device: str = "cpu",
                         results: Path | None = RESULTS) -> list[YardstickEntry]:
    """A YardstickEntry for every measurement setting of `trials` (the rows with a FID).

    compute=True: committed, else cached, else computed and cached (the extractor and real features come
    from the evaluator's caches; a setting whose data is not on this machine gets floor None and the
    one-line reason). compute=False: only committed floors and (cached=True) cached ones; nothing is
    loaded or trained: what docs/findings.md needs to be the same on every machine (cached=False)."""
    from trainers.errors import UserError

    out = []
    for setting, name in settings_from_trials(trials):
        if not compute:
            floor = find_floor(name, setting.n, class_subset=setting.class_subset, data=setting.data,
                               results=results, cache_dir=cache_dir, cached=cached)
            out.append(YardstickEntry(floor, name, "" if floor else "no committed or cached yardstick"))
            continue
        try:
            out.append(YardstickEntry(yardstick_floor(setting, study_extractor=name, cache_dir=cache_dir,
                                                      device=device, results=results), name))
        except UserError as exc:
            out.append(YardstickEntry(None, name, str(exc)))
    return out


def _cache_root(cache_dir: str | Path | None) -> Path:
    from trainers.data.cache import default_cache_dir

    return (Path(cache_dir) if cache_dir else default_cache_dir()) / "yardstick"


def _read_cached(path: Path) -> tuple[Any, str]:
    from trainers.evaluation.yardstick import VERSION, Floor

    if not path.is_file():
        return None, ""
    doc = json.loads(path.read_text())
    if doc.get("floor", {}).get("version") != VERSION:
        return None, ""
    return Floor.from_dict(doc["floor"]), str(doc.get("study_extractor") or "")


# ---------------------------------------------------------------------------------------------- tables
def floor_table(floor: Any) -> pd.DataFrame:
    """One row per floor row: comparison, n, FID mean/sd/min/max over the draws, skipped reason, note."""
    rows = []
    for r in floor.rows:
        rows.append({"comparison": r.comparison, "n": r.n, "at": r.n_label, "fid_mean": r.fid_mean,
                     "fid_sd": r.fid_sd, "fid_min": r.fid_min, "fid_max": r.fid_max, "repeats": r.repeats,
                     "skipped": r.skipped, "note": r.note})
    return pd.DataFrame(rows)


def relative_fid_table(trials: pd.DataFrame, floor: Any, study_extractor: str = "") -> pd.DataFrame:
    """FID and relative FID per configuration (mean over its finished trials) of one measurement setting."""
    from analysis.groups import configuration_codes

    names = {floor.extractor_name, study_extractor} - {""}
    df = trials[trials[mk.EVAL_EXTRACTOR].astype(str).isin(names) & (trials[mk.EVAL_N] == floor.setting.n)]
    df = df.dropna(subset=[mk.FID])
    if df.empty:
        return pd.DataFrame(columns=["configuration", "trials", "fid", "relative_fid"])
    row = floor.at(floor.setting.n)
    base = row.fid_mean if row else math.nan
    codes = configuration_codes(df)
    labels = configuration_labels(df)
    out = (pd.DataFrame({"code": codes, "configuration": labels, "fid": df[mk.FID].to_numpy()})
           .groupby(["code", "configuration"], sort=False)["fid"].agg(["size", "mean"]).reset_index())
    out = out.rename(columns={"size": "trials", "mean": "fid"}).drop(columns="code")
    out["relative_fid"] = relative_fid(out["fid"].to_numpy(), base)
    return out.sort_values("fid").reset_index(drop=True)


def configuration_labels(trials: pd.DataFrame) -> list[str]:
    """'optimizer=adam, batch_size=64' per trial: the config columns that vary (all but seed and name)."""
    from analysis.groups import configuration_key

    cols = [c for c in configuration_key(trials) if trials[c].astype(str).nunique() > 1]
    if not cols:
        return ["all"] * len(trials)
    return [", ".join(f"{c.removeprefix(C.CONFIG_PREFIX)}={v}" for c, v in zip(cols, vals))
            for vals in trials[cols].astype(str).itertuples(index=False)]


# ---------------------------------------------------------------------------------------------- markdown
def _f(v: float, digits: int = 3) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def render_yardstick_markdown(floors: Iterable[YardstickEntry], trials: pd.DataFrame | None = None, *,
                              robustness: Mapping[str, Robustness] | None = None, heading: str = "## Yardstick") -> str:
    """A report section: per measurement setting, the floor table, relative FID of the best/median/worst
    configuration (every configuration with `trials`), and the extractor-seed check (or why it is absent).

    floors: `yardstick_for_trials(...)` output (or (Floor or None, eval_extractor) pairs);
    robustness: {eval_extractor or floor.extractor_name: Robustness} where a study was re-scored.
    """
    robustness = dict(robustness or {})
    lines = [heading, "",
             "FID between two samples of *real* images with the study's extractor (the floor: a perfect generator "
             "scores about this), relative FID = FID / the train-halves floor at the study's N; "
             "definitions in docs/STATISTICS.md (Yardstick).", ""]
    for entry in floors:
        floor, name = entry[0], entry[1]
        if floor is None:
            why = f" ({entry[2]})" if len(entry) > 2 and entry[2] else ""
            lines += [f"**{name}**: no yardstick for this setting{why}; `gan-study yardstick --study DIR` "
                      "computes it.", ""]
            continue
        s = floor.setting
        alias = f" (recorded by the study as `{name}`)" if name and name != floor.extractor_name else ""
        lines += [f"**extractor `{floor.extractor_name}`{alias}, N = {s.n}, {s.resolution} px, data `{s.data}`"
                  f"{', class ' + s.class_subset if s.class_subset else ''}** — reference split "
                  f"{floor.reference_size} images (fingerprint `{floor.reference_fingerprint}`), test split "
                  f"{floor.test_size}; {floor.rows[0].repeats if floor.rows else 0} random draws per row.", ""]
        lines += ["| comparison | n per side | FID mean | sd | min | max | note |", "|---|---|---|---|---|---|---|"]
        for r in floor.rows:
            note = r.skipped and f"skipped: {r.skipped}" or r.note
            lines.append(f"| {r.comparison} | {r.n} ({r.n_label}) | {_f(r.fid_mean)} | {_f(r.fid_sd)} | "
                         f"{_f(r.fid_min)} | {_f(r.fid_max)} | {note} |")
        lines.append("")
        if trials is not None and not trials.empty:
            table = relative_fid_table(trials, floor, name)
            if not table.empty:
                lines += ["| configuration | trials | FID | relative FID |", "|---|---|---|---|"]
                lines += [f"| {r.configuration} | {r.trials} | {_f(r.fid)} | {_f(r.relative_fid, 1)} |"
                          for r in table.itertuples()]
                lines.append("")
        rob = robustness.get(name) or robustness.get(floor.extractor_name)
        lines += render_robustness_lines(rob)
    return "\n".join(lines).rstrip() + "\n"


def render_robustness_lines(rob: Robustness | None) -> list[str]:
    if rob is None:
        return [f"Extractor-seed robustness: not computed (needs each trial's final generator; "
                f"`gan-study yardstick --study DIR` re-scores them). Pass threshold, fixed in advance: Spearman >= "
                f"{SPEARMAN_PASS} for every pair of extractor seeds.", ""]
    pairs = ", ".join(f"seeds {k}: {_f(v)}" for k, v in rob.spearman.items())
    lines = [f"Extractor-seed robustness ({len(rob.configurations)} configurations, {rob.trials} trials, extractor "
             f"seeds {', '.join(map(str, rob.seeds))}): **{rob.verdict}**. Spearman {pairs or '—'}; "
             f"{rob.icc_kind} of FID across seeds {_f(rob.icc)} (on log FID {_f(rob.icc_log)}). "
             f"Test-split reference vs training-split reference at the test n: Spearman "
             f"{_f(rob.spearman_test_vs_train)}."]
    if math.isfinite(rob.rescore_max_rel_diff):
        lines[0] += f" Seed 0 re-scores the recorded FIDs within {rob.rescore_max_rel_diff:.1e} (relative)."
    return lines + [""]


def robustness_to_dict(rob: Robustness) -> dict[str, Any]:
    return {**asdict(rob), "verdict": rob.verdict}
