"""The cross-check's figures, each saved as a PNG beside the report (matplotlib's Agg backend, seaborn).

* per config (:func:`config_figure`), three panels: predicted against measured TTFT per request with
  the identity line and the target band (log-log when the TTFTs span a wide range); the ECDF of the
  per-request error ``e_i``; the share of TTFT spent queueing, loading and computing, measured beside
  predicted, as stacked bars;
* over the suite (:func:`errors_figure`): the distribution of ``e_i`` per config, with the target band.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

WIDE_RANGE = 20.0
"""Largest over smallest TTFT above which the scatter is drawn on log-log axes."""

PART_COLOURS = {"queue": "#9aa5b1", "load": "#e39b3a", "compute": "#3a78b5"}
"""Colour of each part of TTFT in the stacked bars."""


def _save(fig: Figure, out: Path, name: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / name, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return name


def file_stem(config: str) -> str:
    """A file-name-safe form of a config's name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", config) or "config"


def _seconds(x: float) -> str:
    return f"{x * 1e3:.3g} ms" if abs(x) < 1 else f"{x:.3g} s"


def _scatter(ax: Axes, ttft: pd.DataFrame, band: float) -> None:
    x = ttft["runtime_ttft_s"].to_numpy(dtype=float) * 1e3
    y = ttft["model_ttft_s"].to_numpy(dtype=float) * 1e3
    positive = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    ax.set_xlabel("measured by the runtime (ms)")
    ax.set_ylabel("predicted by the timed model (ms)")
    ax.set_title("TTFT per request: predicted vs measured")
    if not positive.any():
        ax.text(0.5, 0.5, "no request served", ha="center", va="center", transform=ax.transAxes)
        return
    x, y = x[positive], y[positive]
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    log = hi / lo > WIDE_RANGE
    if log:
        lo, hi = lo / 1.3, hi * 1.3
    else:
        pad = 0.05 * (hi - lo) or 0.1 * hi
        lo, hi = max(0.0, lo - pad), hi + pad
    line = np.geomspace(lo, hi, 50) if log else np.linspace(lo, hi, 50)
    ax.fill_between(line, line * (1 - band), line * (1 + band), color="grey", alpha=0.15,
                    label=f"±{band:.0%}")
    ax.plot(line, line, color="black", lw=1, label="model = runtime")
    ax.scatter(x, y, s=22, alpha=0.7, color="#3a78b5", edgecolor="none", label=f"requests ({len(x)})")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.legend(fontsize=7, loc="upper left")


def _ecdf(ax: Axes, ttft: pd.DataFrame, band: float) -> None:
    errors = ttft["error"].to_numpy(dtype=float) * 100
    finite = errors[np.isfinite(errors)]
    ax.set_xlabel("per-request error (model − runtime) / runtime (%)")
    ax.set_ylabel("fraction of requests")
    dropped = len(errors) - len(finite)
    ax.set_title("Distribution of TTFT errors" + (f" ({dropped} infinite left out)" if dropped else ""))
    if not len(finite):
        ax.text(0.5, 0.5, "no request served", ha="center", va="center", transform=ax.transAxes)
        return
    sns.ecdfplot(x=finite, ax=ax, color="#3a78b5")
    ax.axvspan(-band * 100, band * 100, color="grey", alpha=0.15, label=f"±{band:.0%}")
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(float(np.median(finite)), color="#c0392b", lw=1, ls="--",
               label=f"median {float(np.median(finite)):+.1f}%")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="upper left")


def _shares(ax: Axes, shares: pd.DataFrame) -> None:
    """Stacked bars; ``shares``: index ``measured``/``predicted``, columns the parts, plus ``mean_ttft_s``."""
    labels = ["measured\n(runtime)", "predicted\n(model)"]
    bottom = np.zeros(2)
    rows = shares.loc[["measured", "predicted"]]
    for part, colour in PART_COLOURS.items():
        values = np.nan_to_num(rows[part].to_numpy(dtype=float))
        ax.bar(labels, values, bottom=bottom, color=colour, label=part, width=0.55)
        for i, v in enumerate(values):
            if v >= 0.06:
                ax.text(i, bottom[i] + v / 2, f"{v:.0%}", ha="center", va="center", fontsize=8, color="white")
        bottom += values
    for i, mean in enumerate(rows["mean_ttft_s"].to_numpy(dtype=float)):
        if math.isfinite(mean):
            ax.text(i, min(bottom[i], 1.0) + 0.02, f"mean TTFT {_seconds(mean)}", ha="center", fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share of TTFT")
    ax.set_title("Where TTFT goes: queue, load, compute")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def config_figure(config: str, ttft: pd.DataFrame, shares: pd.DataFrame, out: Path, band: float) -> str:
    """One config's figure: TTFT scatter, error ECDF, TTFT shares; return its file name.

    Args:
        config: the config's name (title and file name).
        ttft: per request ``model_ttft_s``, ``runtime_ttft_s`` (seconds) and ``error`` (a fraction).
        shares: rows ``measured`` and ``predicted``; columns ``queue``, ``load``, ``compute`` (fractions)
            and ``mean_ttft_s``.
        out: the folder the PNG goes into.
        band: the target band drawn around equality (a fraction).
    """
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [1, 1, 0.7]})
    _scatter(axes[0], ttft, band)
    _ecdf(axes[1], ttft, band)
    _shares(axes[2], shares)
    fig.suptitle(f"{config}: the timed model against the runtime", y=1.02)
    fig.tight_layout()
    return _save(fig, out, f"ttft_{file_stem(config)}.png")


def errors_figure(errors: pd.DataFrame, out: Path, band: float) -> str:
    """Box plot of per-request TTFT errors per config (columns ``config``, ``error``); return its file name."""
    sns.set_theme(style="whitegrid")
    data = errors.assign(error_pct=errors["error"].astype(float) * 100)
    data = data[np.isfinite(data["error_pct"])]
    order = list(dict.fromkeys(errors["config"]))
    fig, ax = plt.subplots(figsize=(max(7.5, 1.1 * len(order) + 2), 4.6))
    groups = [data.loc[data["config"] == name, "error_pct"].to_numpy() for name in order]
    ax.boxplot(groups, tick_labels=order, patch_artist=True, widths=0.55,
               boxprops={"facecolor": "#dde6f0"}, medianprops={"color": "#c0392b"}, flierprops={"markersize": 3})
    ax.axhspan(-band * 100, band * 100, color="grey", alpha=0.15, label=f"±{band:.0%}")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("")
    ax.set_ylabel("per-request TTFT error (%)")
    ax.set_title("TTFT error per request, (model − runtime) / runtime, per config")
    ax.tick_params(axis="x", labelrotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, out, "ttft_errors_by_config.png")
