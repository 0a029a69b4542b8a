"""Tables in the seed papers' layouts: seed 002 Table I and seed 000's classification report.

Table I from any study groups trials by the three factors the paper varied (optimizer, activation,
TTUR) and, because D-loss values of different loss functions are not comparable, by loss type.
The classification report adapts to whichever `<prefix>precision_<class>`, `..._cm_<true>_<pred>`
columns exist (prefix tstr_, augment_ or trtr_) and returns None when there are none.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from analysis import columns as C
from trainers import metric_keys as mk

OPTIMIZER_NAMES = {"adam": "Adam", "adas": "AdaS", "sgd": "SGD", "rmsprop": "RMSprop"}
ACTIVATION_NAMES = {"elu": "ELU", "relu": "ReLU", "leaky_relu": "LReLU"}
TABLE1_STATS = (mk.D_LOSS_MEAN, mk.D_LOSS_VAR, mk.D_LOSS_STD, mk.FID)
_PER_CLASS = {"precision": "precision", "recall": "recall", "f1": "f1-score", "f1_score": "f1-score",
              "support": "support"}
_AVERAGES = {"macro", "micro", "weighted", "macro_avg", "weighted_avg", "avg"}  # not class names


def activation_text(g: str, d: str) -> str:
    """'ELU' when G and D share it, else 'ReLU, LReLU' (G first, as in seed 002)."""
    g_name, d_name = ACTIVATION_NAMES.get(str(g), str(g)), ACTIVATION_NAMES.get(str(d), str(d))
    return g_name if g_name == d_name else f"{g_name}, {d_name}"


def table1(trials: pd.DataFrame) -> pd.DataFrame:
    """Seed 002 Table I layout: Optimizer, Activation, TTUR (P/-), [Loss], n, D-loss mean/var/std, FID."""
    keys = [C.cfg(f) for f in ("optimizer", "g_activation", "d_activation", "ttur", "loss")]
    keys = [k for k in keys if k in trials.columns]
    stats = [s for s in TABLE1_STATS if s in trials.columns]
    if trials.empty or not keys or not stats:
        return pd.DataFrame()
    grouped = trials.groupby(keys, dropna=False, sort=True)
    out = grouped[stats].mean().reset_index()
    out["n"] = grouped.size().to_numpy()
    if mk.FID in stats:
        out["FID sd"] = grouped[mk.FID].std(ddof=1).to_numpy()
        out["FID n"] = grouped[mk.FID].count().to_numpy()
    table = format_table1(out)
    return table.sort_values("FID", na_position="last", kind="stable").reset_index(drop=True) \
        if "FID" in table.columns else table


def format_table1(df: pd.DataFrame) -> pd.DataFrame:
    """Rename config/metric columns of a Table I-shaped frame into the paper's headings."""
    out = pd.DataFrame(index=df.index)
    opt, g, d, ttur, loss = (C.cfg(f) for f in ("optimizer", "g_activation", "d_activation", "ttur", "loss"))
    if opt in df.columns:
        out["Optimizer"] = df[opt].map(lambda v: OPTIMIZER_NAMES.get(str(v), str(v)))
    if g in df.columns and d in df.columns:
        out["Activation"] = [activation_text(a, b) for a, b in zip(df[g], df[d])]
    if ttur in df.columns:
        out["TTUR"] = df[ttur].map(lambda v: "P" if bool(v) else "-")
    if loss in df.columns and df[loss].nunique(dropna=False) > 1:
        out["Loss"] = df[loss].astype(str)
    for col in ("n", "FID n"):
        if col in df.columns:
            out[col] = df[col]
    names = {mk.D_LOSS_MEAN: "Mean", mk.D_LOSS_VAR: "Variance", mk.D_LOSS_STD: "Standard Deviation", mk.FID: "FID"}
    for key, name in names.items():
        if key in df.columns:
            out[name] = df[key].astype(float)
    if "FID sd" in df.columns:
        out["FID sd"] = df["FID sd"]
    return out


def classes_in(row: pd.Series, prefix: str) -> list[str]:
    """Class names found in `<prefix><precision|recall|f1|support>_<class>` and `<prefix>cm_<t>_<p>` keys."""
    pattern = re.compile(rf"^{re.escape(prefix)}(?:{'|'.join(sorted(_PER_CLASS, key=len, reverse=True))})_(.+)$")
    found = dict.fromkeys(m.group(1) for k in row.index
                          if (m := pattern.match(str(k))) and pd.notna(row[k]) and m.group(1) not in _AVERAGES)
    for true, pred in _cm_keys(row, prefix, list(found)).values():
        found.setdefault(true, None)
        found.setdefault(pred, None)
    return list(found)


def confusion_matrix(row: pd.Series, prefix: str = mk.TSTR_PREFIX) -> pd.DataFrame | None:
    """Counts from `<prefix>cm_<true>_<pred>` keys: rows true class, columns predicted class."""
    keys = _cm_keys(row, prefix, classes_in(row, prefix))
    if not keys:
        return None
    names = list(dict.fromkeys([t for t, _ in keys.values()] + [p for _, p in keys.values()]))
    cm = pd.DataFrame(0.0, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted"))
    for key, (true, pred) in keys.items():
        cm.loc[true, pred] = float(row[key])
    return cm


def classification_report(row: pd.Series, prefix: str = mk.TSTR_PREFIX) -> pd.DataFrame | None:
    """Seed 000 layout: per-class precision, recall, f1-score, support; accuracy; macro and weighted avg."""
    classes = classes_in(row, prefix)
    acc_key = prefix + mk.ACCURACY
    accuracy = float(row[acc_key]) if acc_key in row.index and pd.notna(row[acc_key]) else np.nan
    if not classes:
        if np.isnan(accuracy):
            return None
        return pd.DataFrame({"precision": [np.nan], "recall": [np.nan], "f1-score": [accuracy],
                             "support": [np.nan]}, index=["accuracy"])
    cm = confusion_matrix(row, prefix)
    report = pd.DataFrame(index=classes, columns=["precision", "recall", "f1-score", "support"], dtype=float)
    for cls in classes:
        for short, col in _PER_CLASS.items():
            key = f"{prefix}{short}_{cls}"
            if key in row.index and pd.notna(row[key]):
                report.loc[cls, col] = float(row[key])
        if cm is not None and cls in cm.index:
            _fill_from_cm(report, cm, cls)
    total = report["support"].sum(min_count=1)
    if np.isnan(accuracy) and cm is not None and cm.to_numpy().sum() > 0:
        accuracy = float(np.trace(cm.reindex(index=cm.columns).fillna(0).to_numpy()) / cm.to_numpy().sum())
    rows = {"accuracy": [np.nan, np.nan, accuracy, total]}
    metrics = report[["precision", "recall", "f1-score"]]
    rows["macro avg"] = [*metrics.mean(skipna=True).to_list(), total]
    if report["support"].notna().all() and total > 0:
        w = report["support"] / total
        rows["weighted avg"] = [*(metrics.mul(w, axis=0).sum(min_count=1)).to_list(), total]
    extra = pd.DataFrame.from_dict(rows, orient="index", columns=report.columns)
    return pd.concat([report, extra])


def _cm_keys(row: pd.Series, prefix: str, known: list[str]) -> dict[str, tuple[str, str]]:
    """Map each cm key to (true, pred); class names with underscores are split using known classes."""
    head = f"{prefix}cm_"
    out = {}
    for key in row.index:
        key = str(key)
        if not key.startswith(head) or pd.isna(row[key]):
            continue
        rest = key[len(head):]
        split = next(((c, rest[len(c) + 1:]) for c in known if rest.startswith(c + "_") and rest[len(c) + 1:] in known),
                     None)
        if split is None and rest.count("_") == 1:
            split = tuple(rest.split("_"))
        if split is not None:
            out[key] = split
    return out


def _fill_from_cm(report: pd.DataFrame, cm: pd.DataFrame, cls: str) -> None:
    """Missing precision/recall/F1/support derived from the confusion matrix."""
    tp = cm.loc[cls, cls] if cls in cm.columns else 0.0
    support = cm.loc[cls].sum()
    predicted = cm[cls].sum() if cls in cm.columns else 0.0
    if np.isnan(report.loc[cls, "support"]):
        report.loc[cls, "support"] = support
    if np.isnan(report.loc[cls, "precision"]) and predicted > 0:
        report.loc[cls, "precision"] = tp / predicted
    if np.isnan(report.loc[cls, "recall"]) and support > 0:
        report.loc[cls, "recall"] = tp / support
    p, r = report.loc[cls, "precision"], report.loc[cls, "recall"]
    if np.isnan(report.loc[cls, "f1-score"]) and np.isfinite(p) and np.isfinite(r) and p + r > 0:
        report.loc[cls, "f1-score"] = 2 * p * r / (p + r)


def markdown_table(df: pd.DataFrame, *, digits: int = 3, index: bool = False) -> str:
    """GitHub-flavoured Markdown table; floats rounded, NaN shown as an empty cell."""
    if df is None or df.empty:
        return "_(no rows)_"
    frame = df.reset_index(names=[n or "" for n in df.index.names]) if index else df
    header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for values in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, digits) for v in values) + " |")
    return "\n".join(lines)


def _cell(v, digits: int) -> str:
    if v is None or isinstance(v, (bool, np.bool_, str)):
        return "" if v is None else str(v).replace("|", "\\|")
    if isinstance(v, (int, np.integer)):
        return str(v)
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "" if np.isnan(v) else str(v)
        if float(v).is_integer() and abs(v) < 1e6:
            return str(int(v))  # counts (support, n) averaged into floats
        small = v != 0 and abs(v) < 10 ** -digits
        return f"{v:.2e}" if small or abs(v) >= 1e6 else f"{v:.{digits}f}"
    return str(v).replace("|", "\\|")
