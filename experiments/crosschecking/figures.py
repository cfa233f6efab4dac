"""The cross-check's seaborn figures, each saved as a PNG beside the report.

* predicted (model) against measured (runtime) request latency, p50 / p95 / p99 of every config, on
  log axes with the line of equality and the ±15 % band;
* the distribution of the model's relative errors, per metric, across configs;
* occupancy of every tier over time, model and runtime overlaid, one panel per config (each on its
  own clock: a config whose model is faster ends its line earlier).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _save(fig: Figure, out: Path, name: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / name, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return name


def latency_figure(latency: pd.DataFrame, out: Path, band: float = 0.15) -> str:
    """Scatter of model vs runtime latency (columns ``config``, ``percentile``, ``sim_s``, ``runtime_s``)."""
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(7.5, 6))
    data = latency.assign(sim_ms=latency["sim_s"] * 1e3, runtime_ms=latency["runtime_s"] * 1e3)
    positive = data[(data["sim_ms"] > 0) & (data["runtime_ms"] > 0)]
    sns.scatterplot(data=positive, x="runtime_ms", y="sim_ms", hue="config", style="percentile", s=70, ax=ax)
    if len(positive):
        lo = float(min(positive["sim_ms"].min(), positive["runtime_ms"].min())) * 0.7
        hi = float(max(positive["sim_ms"].max(), positive["runtime_ms"].max())) * 1.4
        xs = np.geomspace(lo, hi, 50)
        ax.plot(xs, xs, color="black", lw=1, label="model = runtime")
        ax.fill_between(xs, xs * (1 - band), xs * (1 + band), color="grey", alpha=0.15, label=f"±{band:.0%}")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("measured by the runtime (ms)")
    ax.set_ylabel("predicted by the timed model (ms)")
    ax.set_title("Request latency per config: p50, p95, p99")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, out, "latency_predicted_vs_measured.png")


def error_figure(errors: pd.DataFrame, out: Path) -> str:
    """Strip and box plot of relative errors (columns ``metric``, ``rel_error``, ``config``), in %."""
    sns.set_theme(style="whitegrid")
    data = errors.assign(error_pct=errors["rel_error"] * 100)
    data = data[np.isfinite(data["error_pct"])]
    order = list(dict.fromkeys(data["metric"]))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if len(data):
        sns.boxplot(data=data, x="metric", y="error_pct", order=order, color="#dde6f0", showfliers=False, ax=ax)
        sns.stripplot(data=data, x="metric", y="error_pct", order=order, hue="config", size=6, ax=ax,
                      jitter=0.15, legend=True)
    for y, style in ((0, "-"), (5, ":"), (-5, ":"), (15, "--"), (-15, "--")):
        ax.axhline(y, color="black" if y == 0 else "grey", lw=0.8, ls=style)
    ax.set_xlabel("")
    ax.set_ylabel("model error vs runtime (%)")
    ax.set_title("Distribution of the model's relative errors (dotted ±5 %, dashed ±15 %)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, out, "error_distribution.png")


def occupancy_figure(series: pd.DataFrame, out: Path) -> str:
    """Occupancy over time per tier, model and runtime overlaid, one panel per config.

    ``series``: columns ``config``, ``source`` (model | runtime), ``tier``, ``time_s``, ``occupancy``.
    """
    sns.set_theme(style="whitegrid")
    grid = sns.relplot(
        data=series,
        x="time_s",
        y="occupancy",
        hue="tier",
        style="source",
        style_order=["runtime", "model"],
        col="config",
        col_wrap=3,
        kind="line",
        height=2.6,
        aspect=1.35,
        facet_kws={"sharex": False, "sharey": True},
        errorbar=None,
    )
    grid.set_axis_labels("time (s)", "occupancy (of capacity)")
    grid.set_titles("{col_name}", size=8)
    grid.figure.suptitle("Occupancy over time: model (dashed) and runtime (solid)", y=1.02)
    return _save(grid.figure, out, "occupancy_over_time.png")
