# %% [markdown]
# # gan-study from a notebook
#
# The smoke study through the Python API (study/api.py): run it, load it, draw one figure.
# A notebook in percent format: open it in Jupyter (jupytext) or VS Code, or run it as a script from the
# repository root with `.venv/bin/python docs/api_example.py` (about a minute on 2 CPU cores; phantom data:
# a pipeline check, not medical findings). tests/test_api.py runs it on a toy study.

# %%
from pathlib import Path

import plotly.express as px

from study import load_study, run_study

out = Path("runs/smoke")
# Re-running the notebook loads the study instead of starting it again (`run_study` refuses a used --out).
study = load_study(out) if (out / "study.json").exists() else run_study("smoke", data="phantom", out=out)
study.status()

# %% [markdown]
# One row per trial in `study.trials` (one per report in `study.history`): config/<key> columns and metrics
# (docs/RESULTS_SCHEMA.md). The project's question: does a cheap training signal, the discriminator's mean
# loss over the run, predict the FID at the end?

# %%
trials = study.trials
fig = px.scatter(trials, x="d_loss_mean", y="fid", color="config/optimizer", symbol="config/ttur",
                 hover_data=["trial_id"], title=f"{study.name}: final FID vs D-loss mean, one point per trial")
fig.write_html(out / "fid_vs_d_loss_mean.html", include_plotlyjs=True)  # offline, like the dashboard
fig  # a notebook draws it here

# %% [markdown]
# Images from the best trial as a float tensor (N, 1, R, R) in [0, 1], and the full analysis
# (what `gan-study analyze` writes) when wanted:

# %%
best = study.best("fid")
images = study.generate(best["trial_id"], 16)
print(best["trial_id"], f"fid {best['fid']:.1f}", tuple(images.shape))
# study.analyze(out / "report")  # dashboard.html, report.md, csv/ (about a minute with 2,000 resamples)
