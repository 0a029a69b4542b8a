"""Plotly figures of an `Analysis`. Each builder returns figures (possibly none) and never raises on
missing data: a figure whose data is absent is simply not made, and the report says why.

Only SVG trace types are used (no WebGL), so the dashboard renders in any browser, GPU or not.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from analysis import columns as C
from analysis.groups import is_pooled, loss_groups, measurement_groups, varied
from analysis.memory_cost import FEATURES, MEM, NORM, SEED002_SAVING_PCT, WITH_BN, series_keys
from analysis.pipeline import Analysis
from analysis.reference import FAILED
from trainers import metric_keys as mk

PALETTE = qualitative.Plotly + qualitative.D3
MAX_CURVE_TRIALS = 30
MAX_SCATTER_GROUPS = 6


def fmt_corr(row: pd.Series | dict | None) -> str:
    """'r = -0.52 [95% CI -0.71, -0.27], p_perm = 0.001, n = 40' (or why there is no r)."""
    if row is None:
        return "no correlation computed"
    r = row.get("r", np.nan)
    if not np.isfinite(r):
        return f"r undefined ({row.get('note') or 'no data'}), n = {row.get('n', 0)}"
    ci = f" [95% CI {row['ci_low']:.2f}, {row['ci_high']:.2f}]" if np.isfinite(row.get("ci_low", np.nan)) else ""
    q = row.get("q", np.nan)
    q = f", q = {q:.3g}" if np.isfinite(q) else ""
    return f"r = {r:.2f}{ci}, p_perm = {row.get('p_perm', np.nan):.3g}{q}, n = {int(row['n'])}"


def find_corr(a: Analysis, *, target: str, predictor: str, group: str, level: str = "trial",
              method: str = "pearson") -> pd.Series | None:
    """The plain test's row; the configuration level stands in when the trial level was not run (one seed each)."""
    c = a.correlations
    if c.empty:
        return None
    hit = c.loc[(c.group == group) & (c.target == target) & (c.predictor == predictor) & (c.method == method)
                & (c.controls == "")]
    for wanted in (level, "config"):
        rows = hit.loc[hit.level == wanted]
        if not rows.empty:
            return rows.iloc[0]
    return None


def color_factor(a: Analysis, requested: str | None = None) -> str | None:
    """The factor that colours scatter plots: the requested one, else the first the study varied."""
    if requested:
        col = requested if requested.startswith(C.CONFIG_PREFIX) else C.cfg(requested)
        if col in a.analysed.columns:
            return col
    options = varied(a.analysed, [f for f in a.data.factors if f != C.LOSS])
    return options[0] if options else None


def scatter_signal(a: Analysis, predictor: str = mk.D_LOSS_MEAN, target: str = mk.FID,
                   color_by: str | None = None) -> list[go.Figure]:
    """Target vs predictor per loss group, coloured by a factor, with OLS line and r/CI in the title."""
    if not (a.has(predictor) and a.has(target)):
        return []
    factor = color_factor(a, color_by)
    figs = []
    for group, sub in loss_groups(a.analysed, [predictor, target]):
        sub = sub.loc[sub[predictor].notna() & sub[target].notna()]
        if len(sub) < 2:
            continue
        fig = go.Figure()
        levels = sub.groupby(factor, sort=True) if factor else [("all", sub)]
        for i, (level, part) in enumerate(levels):
            fig.add_trace(go.Scatter(
                x=part[predictor], y=part[target], mode="markers", name=f"{C.label(factor)}={level}" if factor
                else "trials", marker={"size": 9, "color": PALETTE[i % len(PALETTE)], "line": {"width": 0.5}},
                text=part[C.TRIAL_KEY], hovertemplate="%{text}<br>x=%{x:.3f}<br>y=%{y:.3f}<extra></extra>"))
        slope, icpt = np.polyfit(sub[predictor].astype(float), sub[target].astype(float), 1)
        xs = np.linspace(sub[predictor].min(), sub[predictor].max(), 20)
        fig.add_trace(go.Scatter(x=xs, y=slope * xs + icpt, mode="lines", name="OLS fit",
                                 line={"color": "black", "dash": "dash"}))
        stat = fmt_corr(find_corr(a, target=target, predictor=predictor, group=group))
        zs = " (z-scored)" if is_pooled(group) else ""
        fig.update_layout(title=f"{C.label(target)} vs {C.label(predictor)}, {group}<br><sub>Pearson {stat}</sub>",
                          xaxis_title=C.label(predictor) + zs, yaxis_title=C.label(target) + zs, height=480)
        figs.append(fig)
    return figs[:MAX_SCATTER_GROUPS]


def heatmaps(a: Analysis) -> list[go.Figure]:
    """Seed 002 Fig. 5: Pearson matrix of quality metrics and training signals, per loss group."""
    figs = []
    for group, mat in a.matrices.items():
        fig = go.Figure(go.Heatmap(z=mat.to_numpy(), x=list(mat.columns), y=list(mat.index), zmin=-1, zmax=1,
                                   colorscale="RdBu", texttemplate="%{z:.2f}", colorbar={"title": "r"}))
        fig.update_layout(title=f"Pearson correlation matrix, {group} (trial level)", height=520,
                          yaxis={"autorange": "reversed"})
        figs.append(fig)
    return figs


def learning_curves(a: Analysis, max_trials: int = MAX_CURVE_TRIALS) -> go.Figure | None:
    """D/G loss, D(x), D(G(z)), FID against iteration per trial; a dropdown picks trials."""
    hist = a.data.history
    if hist.empty or mk.ITERATION not in hist.columns:
        return None
    metrics = [m for m in C.CURVES if m in hist.columns and hist[m].notna().any()]
    if not metrics:
        return None
    keys = _curve_order(a, hist)[:max_trials]
    status = a.data.trials.set_index(C.TRIAL_KEY)[mk.STATUS].astype(str).to_dict() if not a.data.trials.empty else {}
    fig = make_subplots(rows=len(metrics), cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        subplot_titles=[C.label(m) for m in metrics])
    owner = []
    for i, key in enumerate(keys):
        part = hist.loc[hist[C.TRIAL_KEY] == key].sort_values(mk.ITERATION)
        for row, m in enumerate(metrics, start=1):
            vals = part[[mk.ITERATION, m]].dropna()
            fig.add_trace(go.Scatter(
                x=vals[mk.ITERATION], y=vals[m], mode="lines+markers" if m == mk.FID else "lines",
                name=f"{key} ({status.get(key, '?')})", legendgroup=key, showlegend=row == 1,
                line={"color": PALETTE[i % len(PALETTE)], "width": 1.5}), row=row, col=1)
            owner.append(key)
    best = set(keys[:5])
    buttons = [{"label": "all trials", "method": "update", "args": [{"visible": [True] * len(owner)}]}]
    if a.has(mk.FID):
        buttons.append({"label": "best 5 by FID", "method": "update",
                        "args": [{"visible": [o in best for o in owner]}]})
    buttons += [{"label": k, "method": "update", "args": [{"visible": [o == k for o in owner]}]} for k in keys]
    fig.update_layout(title=f"Learning curves ({len(keys)} trials; pick one in the menu or click the legend)",
                      height=230 * len(metrics) + 120, updatemenus=[{"buttons": buttons, "x": 1.0, "y": 1.08,
                                                                         "xanchor": "right", "yanchor": "bottom"}])
    fig.update_xaxes(title_text=C.label(mk.ITERATION), row=len(metrics), col=1)
    return fig


def budget_figure(a: Analysis) -> go.Figure | None:
    """Best score found vs number of trials, mean with a 95% band over resampled trial orders."""
    b = a.budget
    if b.empty:
        return None
    metrics = list(dict.fromkeys(b["metric"]))
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[
        f"best {C.label(m)} ({'lower' if b.loc[b.metric == m, 'mode'].iloc[0] == 'min' else 'higher'} is better)"
        for m in metrics])
    for col, metric in enumerate(metrics, start=1):
        for i, (group, g) in enumerate(b.loc[b.metric == metric].groupby("group", sort=False)):
            color = PALETTE[i % len(PALETTE)]
            fig.add_trace(go.Scatter(x=list(g.k) + list(g.k)[::-1], y=list(g.high) + list(g.low)[::-1],
                                     fill="toself", fillcolor=_rgba(color, 0.15), line={"width": 0},
                                     hoverinfo="skip", showlegend=False, legendgroup=group), row=1, col=col)
            fig.add_trace(go.Scatter(x=g.k, y=g["mean"], mode="lines", name=group, legendgroup=group,
                                     line={"color": color}, showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text="number of trials", row=1, col=col)
    fig.update_layout(title="Budget curves (compare_gan): best score vs trials run, 95% band over bootstrap orders",
                      height=460)
    return fig


def factor_figures(a: Analysis) -> list[go.Figure]:
    """Per metric: mean and 95% bootstrap CI at each level of each varied factor."""
    f = a.factors
    figs = []
    if f.empty:
        return figs
    keys = ["metric", "measurement"] if "measurement" in f.columns else ["metric"]
    for key, fm in f.groupby(keys, sort=False):
        metric, measured = (key[0], f", {key[1]}") if len(keys) == 2 else (key[0], "")
        factors = list(dict.fromkeys(fm["factor"]))
        cols = min(3, len(factors))
        rows = math.ceil(len(factors) / cols)
        titles = [f"{C.label(x)} (KW p={fm.loc[fm.factor == x, 'kruskal_p'].iloc[0]:.2g})" for x in factors]
        fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles)
        for i, factor in enumerate(factors):
            g = fm.loc[fm.factor == factor]
            fig.add_trace(go.Scatter(
                x=g["level"].astype(str), y=g["mean"], mode="markers", showlegend=False,
                marker={"size": 10, "color": PALETTE[i % len(PALETTE)]}, text=g["n"].map(lambda n: f"n={n}"),
                error_y={"type": "data", "array": (g.ci_high - g["mean"]).fillna(0),
                             "arrayminus": (g["mean"] - g.ci_low).fillna(0)}), row=i // cols + 1, col=i % cols + 1)
        fig.update_layout(title=f"{C.label(metric)}{measured} by factor level (mean, 95% bootstrap CI over "
                          "configurations; Kruskal-Wallis p over configuration means)",
                          height=300 * rows + 100)
        figs.append(fig)
    return figs


def tstr_figure(a: Analysis) -> go.Figure | None:
    """TSTR accuracy against FID, with the train-on-real baseline as a horizontal line."""
    if not (a.has(mk.FID) and a.has(C.TSTR_ACCURACY)):
        return None
    df = a.analysed.dropna(subset=[mk.FID, C.TSTR_ACCURACY])
    fig = go.Figure()
    groups = [(f"{m}; loss={loss}" if m else f"loss={loss}", g) for m, part in measurement_groups(df)
              for loss, g in (part.groupby(C.LOSS, sort=True) if C.LOSS in part.columns else [("all", part)])]
    for i, (name, part) in enumerate(groups):
        fig.add_trace(go.Scatter(x=part[mk.FID], y=part[C.TSTR_ACCURACY], mode="markers", name=name,
                                 text=part[C.TRIAL_KEY], marker={"size": 9, "color": PALETTE[i % len(PALETTE)]}))
    if a.trtr:
        fig.add_hline(y=a.trtr["mean"], line_dash="dot", annotation_text=f"TRTR baseline {a.trtr['mean']:.3f}")
    row = a.tstr_fid.loc[a.tstr_fid.method == "spearman"].iloc[0] if not a.tstr_fid.empty else None
    fig.update_layout(title=f"TSTR accuracy vs FID<br><sub>Spearman {fmt_corr(row)}</sub>", xaxis_title="FID",
                      yaxis_title="TSTR accuracy", height=460)
    return fig


def within_figure(a: Analysis) -> go.Figure | None:
    """Histogram of per-trial correlations between D loss and FID across a trial's reports."""
    if a.within.empty:
        return None
    fig = go.Figure()
    for x, g in a.within.groupby("x", sort=True):
        fig.add_trace(go.Histogram(x=g["r"], name=C.label(x), opacity=0.6, xbins={"start": -1, "end": 1, "size": 0.1}))
    fig.update_layout(barmode="overlay", title="Within-trial Spearman r (D loss vs FID over a trial's reports)",
                      xaxis_title="r", yaxis_title="trials", height=400)
    return fig


def memory_figures(a: Analysis) -> list[go.Figure]:
    """Seed 002 Fig. 7 (memory per image vs feature maps) and Fig. 8 (saving from removing BN)."""
    figs = []
    m = a.memory_curves
    if not m.empty:
        if NORM in m.columns and (m[NORM] == WITH_BN).any():
            m = m.loc[m[NORM] == WITH_BN]
        fig = go.Figure()
        for i, (key, g) in enumerate(m.groupby(series_keys(m), sort=True)):
            fig.add_trace(go.Scatter(x=g[FEATURES], y=g[MEM], mode="lines+markers", name=_series_name(key),
                                     line={"color": PALETTE[i % len(PALETTE)]}))
        fig.update_layout(title="Memory per image vs feature-map size (seed 002 Fig. 7)", xaxis_title="feature maps",
                          yaxis_title="MB per image", height=440)
        figs.append(fig)
    s = a.bn_saving
    if not s.empty:
        fig = go.Figure()
        for i, (key, g) in enumerate(s.groupby(series_keys(s), sort=True)):
            fig.add_trace(go.Scatter(x=g[FEATURES], y=g["saving_pct"], mode="lines+markers", name=_series_name(key),
                                     line={"color": PALETTE[i % len(PALETTE)]}))
        fig.add_hrect(y0=SEED002_SAVING_PCT[0], y1=SEED002_SAVING_PCT[1], fillcolor="grey", opacity=0.15,
                      line_width=0, annotation_text="seed 002: 1.2-7%")
        fig.update_layout(title="Memory saved by removing BatchNorm (seed 002 Fig. 8)", xaxis_title="feature maps",
                          yaxis_title="saving (% of the BN model)", height=440)
        figs.append(fig)
    return figs


def reference_figure(a: Analysis) -> go.Figure | None:
    """Seed 002's four Table I points: the r = -0.90 rests on the one failed run."""
    if not a.reference:
        return None
    t, c = a.reference["table"], a.reference["correlations"]
    fig = go.Figure()
    for failed, part in t.groupby(FAILED):
        fig.add_trace(go.Scatter(x=part[mk.D_LOSS_MEAN], y=part[mk.FID], mode="markers+text", text=part["paper_row"],
                                 textposition="top center", name="failed run" if failed else "other runs",
                                 marker={"size": 12, "color": "crimson" if failed else "steelblue"}))
    rows = c.loc[c.predictor == mk.D_LOSS_MEAN].set_index("subset")
    sub = "; ".join(f"{s}: r = {r.r:+.3f} (p = {r.p_param:.2f}, n = {r.n})" for s, r in rows.iterrows())
    fig.update_layout(title=f"Seed 002 Table I: FID vs D-loss mean<br><sub>{sub}</sub>", xaxis_title="D-loss mean",
                      yaxis_title="FID", height=440)
    return fig


def extractor_figures(a: Analysis) -> list[go.Figure]:
    """Configuration-mean FID under one extractor against another (log axes), per agreement pair, with Spearman's
    rho and its CI in the title (analysis.extractors)."""
    from analysis.extractors import extractor_fids
    from analysis.groups import at_level

    figs = []
    for group, part in measurement_groups(a.analysed):
        fids = extractor_fids(part)
        rows = a.extractor_agreement.loc[a.extractor_agreement.group == (group or "all")] \
            if not a.extractor_agreement.empty else pd.DataFrame()
        conf = at_level(part, "config", fids.values()) if len(fids) > 1 else pd.DataFrame()
        for r in rows.itertuples():
            x, y = conf[fids[r.extractor_a]], conf[fids[r.extractor_b]]
            ok = x.notna() & y.notna() & (x > 0) & (y > 0)
            if ok.sum() < 2:
                continue
            ci = f" [95% CI {r.ci_low:+.2f}, {r.ci_high:+.2f}]" if np.isfinite(r.ci_low) else ""
            fig = go.Figure(go.Scatter(x=x[ok], y=y[ok], mode="markers", marker={"size": 9, "color": PALETTE[0]},
                                       hovertemplate="x=%{x:.3f}<br>y=%{y:.3f}<extra></extra>", name="configurations"))
            fig.update_layout(title=f"FID per configuration: {r.extractor_b} vs {r.extractor_a}"
                                    f"{', ' + group if group else ''}<br><sub>Spearman rho = {r.rho:+.2f}{ci}, "
                                    f"{r.n_configs} configurations</sub>",
                              xaxis={"title": f"FID, {r.extractor_a}", "type": "log"},
                              yaxis={"title": f"FID, {r.extractor_b}", "type": "log"}, height=440)
            figs.append(fig)
    return figs[:MAX_SCATTER_GROUPS]


def _curve_order(a: Analysis, hist: pd.DataFrame) -> list[str]:
    """Analysed trials best FID first, then every other trial that reported (running, errored, ...)."""
    done = a.analysed
    if mk.FID in done.columns:
        done = done.sort_values(mk.FID, na_position="last", kind="stable")
    reported = set(hist[C.TRIAL_KEY])
    first = [k for k in done.get(C.TRIAL_KEY, pd.Series(dtype=str)) if k in reported]
    seen = set(first)
    return first + [k for k in dict.fromkeys(hist[C.TRIAL_KEY]) if k not in seen]


def _series_name(key: tuple) -> str:
    """('G', 64) -> 'G 64px'; a leading method name is kept."""
    *head, res = key
    return " ".join(map(str, head)) + f" {res}px"


def _rgba(color: str, alpha: float) -> str:
    color = color.lstrip("#")
    r, g, b = (int(color[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
