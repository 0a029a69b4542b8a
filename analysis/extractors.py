"""Several yardsticks and whether they agree (issue 23 section 3), from the re-scored columns of
`gan-study rescore` (`<metric>@<tag>`) beside each trial's own FID:

- **agreement**: Spearman's rho between the configurations' FID rankings under each pair of extractors, at
  configuration level (seeds averaged), with a bootstrap 95% CI and a permutation p over configurations
  (`analysis.stats.corr_test`); reported when a study has more than one extractor;
- **held-out FID**: FID against the test split beside FID against the training split at the same n
  (`fid_test`, `fid_train_at_test_n`), per extractor, and how their configuration rankings agree;
- **sample quality beside precision/recall**: density and coverage (Naeem et al. 2020).

Nothing here is computed when the columns are absent, so the report of a study without them is unchanged.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import columns as C
from analysis.groups import N_SEEDS, at_level, configuration_key, measurement_groups, varied
from analysis.stats import corr_test
from trainers import metric_keys as mk
from trainers.evaluation.outputs import RESCORE_FILE

MIN_CONFIGS = 3  # a ranking agreement needs at least three configurations
AGREEMENT_COLUMNS = ["group", "extractor_a", "extractor_b", "n_configs", "rho", "ci_low", "ci_high", "p_perm", "note"]


def rescored(column: str, tag: str) -> str:
    """The column `gan-study rescore` writes for a metric under an extractor tag: `fid@domain-seed1`."""
    return f"{column}{mk.RESCORE_SEP}{tag}"


def with_rescored(trials: pd.DataFrame) -> pd.DataFrame:
    """trials with the columns of each study dir's RESCORE_FILE that trials.parquet lacks (a results store that
    rebuilt trials.parquet from its journal after `gan-study rescore` dropped them; the file keeps them)."""
    if trials.empty or C.STUDY_DIR not in trials.columns or C.TRIAL_ID not in trials.columns:
        return trials
    out = trials
    for study_dir in trials[C.STUDY_DIR].dropna().unique():
        path = Path(study_dir) / RESCORE_FILE
        if not path.is_file():
            continue
        try:
            extra = pd.read_parquet(path)
        except Exception:  # noqa: BLE001 - an unreadable file must not stop the analysis
            continue
        new = [c for c in extra.columns if c != C.TRIAL_ID and c not in out.columns]
        if not new:
            continue
        extra = extra.assign(**{C.TRIAL_ID: extra[C.TRIAL_ID].astype(str)}).drop_duplicates(C.TRIAL_ID, keep="last")
        rows = out[C.STUDY_DIR] == study_dir
        lookup = extra.set_index(C.TRIAL_ID)[new]
        out = out.copy()
        for col in new:
            out[col] = np.nan if pd.api.types.is_numeric_dtype(lookup[col]) else None
            out.loc[rows, col] = out.loc[rows, C.TRIAL_ID].astype(str).map(lookup[col]).to_numpy()
    return out


def rescore_tags(df: pd.DataFrame) -> list[str]:
    """Extractor tags with at least one re-scored FID in df, sorted."""
    prefix = mk.FID + mk.RESCORE_SEP
    return sorted(c[len(prefix):] for c in df.columns if str(c).startswith(prefix) and df[c].notna().any())


def extractor_fids(df: pd.DataFrame) -> dict[str, str]:
    """{extractor label: FID column}: the trials' own extractor ("own: <eval_extractor>") and each re-scored tag."""
    out = {}
    if mk.FID in df.columns and df[mk.FID].notna().any():
        names = df[mk.EVAL_EXTRACTOR].dropna().astype(str).unique() if mk.EVAL_EXTRACTOR in df.columns else []
        out["own: " + (names[0] if len(names) == 1 else "as recorded")] = mk.FID
    for tag in rescore_tags(df):
        out[tag] = rescored(mk.FID, tag)
    return out


def agreement(df: pd.DataFrame, *, n_resamples: int = 2000, n_permutations: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Spearman rho of the configurations' mean FIDs under every pair of extractors (AGREEMENT_COLUMNS);
    empty with one extractor."""
    rows = []
    for group, part in measurement_groups(df):
        fids = extractor_fids(part)
        if len(fids) < 2:
            continue
        conf = at_level(part, "config", fids.values())
        for (a, ca), (b, cb) in itertools.combinations(fids.items(), 2):
            ok = conf[ca].notna() & conf[cb].notna()
            res = corr_test(conf.loc[ok, ca], conf.loc[ok, cb], method="spearman", n_resamples=n_resamples,
                            n_permutations=n_permutations, seed=seed)
            note = res.note or ("" if int(ok.sum()) >= MIN_CONFIGS else "fewer than 3 configurations")
            rows.append({"group": group or "all", "extractor_a": a, "extractor_b": b, "n_configs": int(ok.sum()),
                         "rho": res.r, "ci_low": res.ci_low, "ci_high": res.ci_high, "p_perm": res.p_perm,
                         "note": note})
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS) if rows else pd.DataFrame(columns=AGREEMENT_COLUMNS)


def heldout_agreement(df: pd.DataFrame, *, n_resamples: int = 2000, n_permutations: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """Per extractor: FID against the test split beside the training split at the same n, configuration means,
    and Spearman rho of the two rankings (CI over configurations)."""
    rows = []
    for group, part in measurement_groups(df):
        for label, fid_col in extractor_fids(part).items():
            suffix = fid_col[len(mk.FID):]
            test, train, n = mk.FID_TEST + suffix, mk.FID_TRAIN_AT_TEST_N + suffix, mk.EVAL_TEST_N + suffix
            if test not in part.columns or not part[test].notna().any():
                continue
            conf = at_level(part, "config", [test, train, n])
            ok = conf[test].notna() & conf[train].notna()
            res = corr_test(conf.loc[ok, train], conf.loc[ok, test], method="spearman", n_resamples=n_resamples,
                            n_permutations=n_permutations, seed=seed)
            rows.append({"group": group or "all", "extractor": label, "n_configs": int(ok.sum()),
                         "n_per_side": float(conf.loc[ok, n].median()) if n in conf.columns else math.nan,
                         "fid_train_at_test_n": float(conf.loc[ok, train].mean()),
                         "fid_test": float(conf.loc[ok, test].mean()), "rho": res.r, "ci_low": res.ci_low,
                         "ci_high": res.ci_high, "p_perm": res.p_perm, "note": res.note})
    return pd.DataFrame(rows)


def by_configuration(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """One row per configuration (seeds averaged): its label, trials, and the named columns' means."""
    present = {name: col for name, col in columns.items() if col in df.columns and df[col].notna().any()}
    if not present or df.empty:
        return pd.DataFrame()
    conf = at_level(df, "config", present.values())
    labels = _labels(conf)
    out = pd.DataFrame({"configuration": labels, "trials": conf[N_SEEDS].to_numpy()})
    for name, col in present.items():
        out[name] = conf[col].to_numpy()
    first = next(iter(present))
    return out.sort_values(first, kind="stable").reset_index(drop=True)


def quality_table(df: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall, density and coverage per configuration (own extractor), best FID first."""
    if mk.DENSITY not in df.columns or not df[mk.DENSITY].notna().any():
        return pd.DataFrame()
    cols = {"FID": mk.FID, "precision": mk.PRECISION, "recall": mk.RECALL, "density": mk.DENSITY,
            "coverage": mk.COVERAGE}
    return by_configuration(df, cols)


def _labels(conf: pd.DataFrame) -> list[str]:
    cols = varied(conf, configuration_key(conf))
    if not cols:
        return ["all"] * len(conf)
    return [", ".join(f"{C.label(c)}={v}" for c, v in zip(cols, vals))
            for vals in conf[cols].astype(str).itertuples(index=False)]


def render_markdown(agree: pd.DataFrame, heldout: pd.DataFrame, quality: pd.DataFrame,
                    heldout_configs: pd.DataFrame | None = None, *, heading: str = "## Extractors") -> str:
    """A report section from `agreement`, `heldout_agreement`, `quality_table` (and per-configuration held-out
    FIDs); "" when all are empty."""
    from analysis.tables import markdown_table

    if agree.empty and heldout.empty and quality.empty:
        return ""
    out = [heading]
    if not agree.empty:
        lines = [f"- {r.extractor_a} vs {r.extractor_b} ({r.group}): Spearman rho = {_rho(r.rho)}, 95% CI "
                 f"{_ci(r.ci_low, r.ci_high)}, p_perm = {_p(r.p_perm)}, {r.n_configs} configurations"
                 + (f" ({r.note})" if r.note else "") for r in agree.itertuples()]
        out.append("Do the extractors rank the configurations alike? Spearman rho of the configurations' FIDs (seeds "
                   "averaged) under each pair of extractors; 95% bootstrap CI and permutation p over configurations. "
                   "Re-scored columns come from `gan-study rescore` (`fid@<tag>`).\n\n" + "\n".join(lines))
    if not heldout.empty:
        out.append("FID against the held-out test split beside FID against the training split, both at the same n "
                   "per side (the test split's size when it is below N): means over configurations, and Spearman rho "
                   "of the two rankings.\n\n" + markdown_table(heldout))
        if heldout_configs is not None and not heldout_configs.empty:
            out.append(markdown_table(heldout_configs))
    if not quality.empty:
        out.append("Precision and recall (Kynkaanniemi et al. 2019, k = 3) beside density and coverage (Naeem et al. "
                   "2020, k = 5), on the same features and N, per configuration:\n\n" + markdown_table(quality))
    return "\n\n".join(out)


def _rho(v: float) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:+.3f}"


def _p(v: float) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.3g}"


def _ci(lo: float, hi: float) -> str:
    return "n/a" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:+.3f}, {hi:+.3f}]"


def render_study(dirs: list[str | Path], *, n_resamples: int = 2000, n_permutations: int = 2000, seed: int = 0,
                 heading: str = "## Do the extractors agree?") -> str:
    """The section for committed study dirs, from their files alone (trials.parquet and rescore.parquet; nothing
    is computed but the statistics, fixed seed): what docs/findings.md can state. "" without re-scored columns."""
    from analysis.load import load_studies

    data = load_studies(dirs)
    trials = with_rescored(data.analysed())
    kw = {"n_resamples": n_resamples, "n_permutations": n_permutations, "seed": seed}
    agree = agreement(trials, **kw)
    if agree.empty:
        return ""
    held = heldout_agreement(trials, **kw)
    return render_markdown(agree, held, pd.DataFrame(), heading=heading)
