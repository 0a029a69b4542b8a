"""One self-contained HTML dashboard: plotly.js embedded once in <head>, figures as inline divs,
sample grids as base64 <img>. It opens offline (no CDN) and from a file:// URL.

The page records its figure count in <meta name="gan-study-figures">, which the browser test
compares with the number of plots that actually rendered.
"""
from __future__ import annotations

import html
import math

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from analysis import columns as C
from analysis import figures as F
from analysis.pipeline import Analysis
from analysis.samples import embed_png, pick_samples
from trainers import metric_keys as mk

FIGURE_COUNT_META = "gan-study-figures"
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:1200px;color:#222}
h1{font-size:1.6rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
nav a{margin-right:1rem} .note{color:#555;font-size:.9rem} .skipped{color:#a33}
.samples{display:flex;flex-wrap:wrap;gap:1rem} figure{margin:0;text-align:center}
figure img{width:256px;image-rendering:pixelated;border:1px solid #ccc}
figure.pairs{margin:.8rem 0;text-align:left} figure.pairs img{width:auto;max-width:100%}
"""


def sections(a: Analysis, color_by: str | None = None) -> list[tuple[str, str, list[go.Figure]]]:
    """(section id, title, figures) in page order; sections without figures are listed as skipped."""
    one = lambda fig: [fig] if fig is not None else []
    return [
        ("dloss-fid", "log FID vs D-loss mean (seed 002's claim)",
         F.scatter_signal(a, target=C.LOG_FID if a.has(C.LOG_FID) else mk.FID, color_by=color_by)),
        ("matrix", "Correlation matrix (seed 002 Fig. 5)", F.heatmaps(a)),
        ("curves", "Learning curves", one(F.learning_curves(a))),
        ("within", "Within-trial correlation", one(F.within_figure(a))),
        ("budget", "Budget curves", one(F.budget_figure(a))),
        ("factors", "Factor effects", F.factor_figures(a)),
        ("tstr", "Downstream: TSTR vs FID", one(F.tstr_figure(a))),
        ("memory", "Memory (seed 002 Figs. 7-8)", F.memory_figures(a)),
        ("reference", "Seed 002 reference rows", one(F.reference_figure(a))),
    ] + ([("extractors", "FID under several extractors", F.extractor_figures(a))]
         if not a.extractor_agreement.empty else [])  # only when a study was re-scored (gan-study rescore)


def render_dashboard(a: Analysis, *, color_by: str | None = None, title: str | None = None, head: str = "",
                     banner: str = "") -> tuple[str, int]:
    """The HTML page and the number of figures in it. `head` and `banner` are extra HTML for the end of <head>
    and the top of <body> (the live dashboard's progress header and reload script, study/live.py)."""
    parts, nav, n_fig = [], [], 0
    for sid, heading, figs in sections(a, color_by):
        nav.append(f'<a href="#{sid}">{html.escape(heading)}</a>')
        body = []
        for fig in figs:
            height = int(fig.layout.height or 450)
            body.append(pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"fig-{n_fig}",
                                    default_height=f"{height}px", config=PLOT_CONFIG))
            n_fig += 1
        if not body:
            body.append('<p class="skipped">Skipped: the analysed trials hold no data for this section '
                        "(see report.md, section Notes).</p>")
        parts.append(f'<section id="{sid}"><h2>{html.escape(heading)}</h2>{"".join(body)}</section>')
    parts.append(_samples_section(a))
    nav.append('<a href="#samples">Samples</a>')
    if not a.memorisation.empty:  # only studies whose evaluations measured memorisation (issue 23)
        parts.append(_pairs_section(a))
        nav.append('<a href="#nearest-pairs">Nearest training images</a>')
    title = title or "GAN study: " + ", ".join(a.data.names)
    counts = ", ".join(f"{k}: {v}" for k, v in a.data.status_counts().items()) or "no trials"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in a.notes)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="{FIGURE_COUNT_META}" content="{n_fig}">
<script type="text/javascript">{get_plotlyjs()}</script>
<style>{CSS}</style>{head}</head>
<body>{banner}<h1>{html.escape(title)}</h1>
<p>Trials by status: {html.escape(counts)}. Analysed ({html.escape(", ".join(a.statuses))}): {len(a.analysed)}.
Bootstrap: {a.n_resamples} resamples, permutation tests: {a.n_permutations}, seed {a.seed}.</p>
<p class="note">{html.escape(_plan_line(a))}</p>
<ul class="note">{notes}</ul>
<nav>{"".join(nav)}</nav>
{"".join(parts)}
</body></html>"""
    return page, n_fig


def _plan_line(a: Analysis) -> str:
    """The primary test's status and result in one line (report.md has the table)."""
    if a.plan is None:
        return ""
    head = {"pre-registered": "Primary test (pre-registered)", "post hoc": "The plan's test (post hoc)"}.get(
        a.plan.status, "No primary test")
    rows = "; ".join(f"{r.group}: r = {r.r:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}], q = {r.get('q', math.nan):.3g}, "
                     f"{r.get('verdict', '')}" for _, r in a.planned.iterrows()) if not a.planned.empty else ""
    return f"{head}: {a.plan.plan.describe() + '. ' if a.plan.plan else ''}{rows or a.plan.why}"


def _pairs_section(a: Analysis) -> str:
    """The closest synthetic/training pairs of the best trials by FID, as pictures (analysis.privacy)."""
    from analysis.privacy import pairs_caption, pairs_data_uri, summary_line

    items = []
    for rec in a.nearest_pairs:
        caption = html.escape(pairs_caption(rec))
        items.append(f'<figure class="pairs"><img alt="{caption}" src="{pairs_data_uri(rec.pairs)}">'
                     f"<figcaption>{caption}</figcaption></figure>")
    body = "".join(items) or ('<p class="skipped">No nearest pairs: the best trials\' generators were not kept '
                              "(see the notes).</p>")
    summary = html.escape(summary_line(a.analysed))
    return (f'<section id="nearest-pairs"><h2>Nearest training images: are there copies? (best trials by FID)</h2>'
            f'<p class="note">Each synthetic image of the {len(a.nearest_pairs)} best trials closest to a training '
            f"image (pixel distance), above that training image. {summary}.</p>"
            f'<div class="pairs-list">{body}</div></section>')


def _samples_section(a: Analysis) -> str:
    items = []
    for s in pick_samples(a):
        fid = "" if math.isnan(s.fid) else f", FID {s.fid:.1f}"
        caption = html.escape(f"{s.role}: {s.trial}{fid}" + ("" if math.isnan(s.iteration)
                                                             else f", iteration {int(s.iteration)}"))
        if s.path is None:
            items.append(f"<figure><figcaption>{caption}: no sample image found</figcaption></figure>")
        else:
            items.append(f'<figure><img alt="{caption}" src="{embed_png(s.path)}"><figcaption>{caption}'
                         "</figcaption></figure>")
    body = "".join(items) or '<p class="skipped">No finished trial with a sample grid.</p>'
    what = "best and worst trials by FID" if a.has(mk.FID) else "first finished trials (no FID measured)"
    return (f'<section id="samples"><h2>Samples: {what} (last grid per trial)</h2>'
            f'<div class="samples">{body}</div></section>')
