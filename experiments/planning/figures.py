"""The report's figures, drawn with seaborn on matplotlib ``Figure`` objects (no global pyplot state).

Each function draws one PNG into the report's folder and returns its file name; the figure's title is
also written into the PNG's ``Title`` text chunk (:func:`png_title` reads it back). Quantities spanning
decades are drawn as points on a log axis, never as log-scale bars (whose baseline is arbitrary).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from exo_sim.codecs import CODECS
from experiments.planning.audit import Audit
from experiments.planning.bottleneck import Resource
from experiments.planning.capacity import CapacityReport
from experiments.planning.operators import TierShare

DPI = 110


def _tokens(x: float, _pos: Any = None) -> str:
    """Axis labels in decimal units (1K = 1,000 tokens)."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if x >= div:
            return f"{x / div:g}{unit}"
    return f"{x:g}"


def _seconds(x: float, _pos: Any = None) -> str:
    if x == 0:
        return "0"
    return f"{x:g} s" if x >= 1 else (f"{1e3 * x:g} ms" if x >= 1e-3 else f"{1e6 * x:g} us")


def _save(fig: Figure, out: Path, name: str, title: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=DPI, bbox_inches="tight", metadata={"Title": title})
    return name


def png_title(path: Path) -> str:
    """The ``Title`` a figure of this module wrote into its PNG (``""`` when none)."""
    from PIL import Image

    with Image.open(path) as img:
        return str(getattr(img, "text", {}).get("Title", ""))


def _dodged_points(ax: Any, groups: list[str], series: dict[str, list[float]], marker_size: float = 7) -> None:
    """One marker per group and series, the series side by side within each group (x = group index)."""
    n = max(1, len(series))
    width = 0.7 / n
    for j, (label, values) in enumerate(series.items()):
        xs = [i - 0.35 + width * (j + 0.5) for i in range(len(groups))]
        ax.plot(xs, values, marker="o", ls="none", ms=marker_size, label=label)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)
    ax.set_xlim(-0.6, len(groups) - 0.4)


def capacity_figure(cap: CapacityReport, out: Path) -> str:
    """Tokens each tier (and the whole hierarchy) holds per codec, against the phase's target (points, log)."""
    sns.set_theme(style="whitegrid")
    groups = [t.name for t in cap.tiers] + ["hierarchy"]
    series = {
        c: [float(t.tokens[c]) if t.tokens[c] > 0 else np.nan for t in cap.tiers]
        + [float(cap.distinct_tokens(c)) or np.nan]
        for c in CODECS
    }
    fig = Figure(figsize=(9, 4.5))
    ax = fig.subplots()
    _dodged_points(ax, groups, series)
    ax.set_yscale("log")
    ax.axhline(cap.target_tokens, color="crimson", ls="--", lw=1.5, label=f"target\n{cap.target_tokens:,}")
    ax.yaxis.set_major_formatter(FuncFormatter(_tokens))
    ax.set_xlabel("")
    ax.set_ylabel("tokens held (log; none: no point)")
    title = f"{cap.payload} on {cap.hardware}: capacity per tier and codec ({cap.block_tokens}-token blocks)"
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _save(fig, out, "capacity.png", title)


def sweep_figure(table: pd.DataFrame, recommended_job: str, out: Path, note: str) -> str:
    """Prefix hit ratio and TTFT p99 of every swept configuration as points, the recommended one ringed."""
    table = table.replace([np.inf, -np.inf], np.nan)  # no TTFT (every request refused): no point
    sns.set_theme(style="whitegrid")
    fig = Figure(figsize=(11, 4.6))
    axes = fig.subplots(1, 2)
    order_p = list(dict.fromkeys(table["policy"]))
    order_c = list(dict.fromkeys(table.sort_values("codec")["codec"]))
    rec = table[table["job"] == recommended_job].iloc[0]
    n = max(1, len(order_c))
    for ax, col, label, log in (
        (axes[0], "hit_ratio_tokens", "prefix hit ratio (cached / prompt tokens)", False),
        (axes[1], "ttft_p99_s", "TTFT p99, time to first token (log)", True),
    ):
        series = {}
        for c in order_c:
            vals = []
            for p in order_p:
                cell = table[(table["policy"] == p) & (table["codec"] == c)][col]
                v = float(cell.iloc[0]) if len(cell) else np.nan
                vals.append(np.nan if (log and not v > 0) else v)
            series[c] = vals
        _dodged_points(ax, order_p, series, marker_size=8)
        pos = table[col][table[col] > 0]
        if log and len(pos) and pos.max() >= 10 * pos.min():  # spans a decade or more: log axis
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(_seconds))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda _x, _p: ""))
        elif log:  # a narrow range: linear from zero, so the log axis has no ticks to lose
            label = label.replace(" (log)", "")
            ax.set_ylim(0, 1.05 * float(pos.max()) if len(pos) else 1.0)
            ax.yaxis.set_major_formatter(FuncFormatter(_seconds))
        else:
            ax.set_ylim(0, 1.02)
        ax.set_ylabel(label)
        ax.set_xlabel("policy")
        i, j = order_p.index(rec["policy"]), order_c.index(rec["codec"])
        x = i - 0.35 + (0.7 / n) * (j + 0.5)
        y = float(rec[col])
        if np.isfinite(y) and (not log or y > 0):
            ax.plot([x], [y], marker="o", ms=16, mfc="none", mec="black", mew=2, ls="none", label="recommended")
    axes[1].legend(fontsize=8, title="codec mix", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    title = f"timed sweep: policy x codec mix (recommended ringed in black){note}"
    fig.suptitle(title, fontsize=11)
    return _save(fig, out, "sweep.png", title)


def mrc_figure(curves: dict[str, pd.DataFrame], marks: Sequence[tuple[str, float, float]], top_tokens: int,
               out: Path, title: str) -> str:
    """LRU hit ratio against top-tier capacity (tokens) for this phase and the next, with marks."""
    sns.set_theme(style="whitegrid")
    fig = Figure(figsize=(8, 4.6))
    ax = fig.subplots()
    for label, frame in curves.items():
        ax.plot(frame["capacity_tokens"], frame["hit_ratio"], label=label, lw=2)
    ax.axvline(top_tokens, color="gray", ls="--", lw=1.2, label=f"top tier now: {_tokens(top_tokens)} tokens")
    # marks often share a point (the LRU curve and the timed run at today's capacity): hollow markers of
    # decreasing size, so each stays visible when they coincide
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    for k, (label, x, y) in enumerate(marks):
        ax.plot([x], [y], marker=markers[k % len(markers)], ls="none", ms=max(5, 14 - 3 * k), mfc="none", mew=2,
                label=label)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_tokens))
    ax.set_xlabel("top-tier capacity (tokens, log)")
    ax.set_ylabel("top-tier hit ratio")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, out, "mrc.png", title)


def tiers_figure(shares: list[TierShare], out: Path) -> str:
    """Each tier's share of reads next to its capacity: what each lower tier buys."""
    sns.set_theme(style="whitegrid")
    fig = Figure(figsize=(9, 4.2))
    ax1, ax2 = fig.subplots(1, 2)
    names = [s.tier for s in shares]
    ax1.bar(names, [100 * s.share_of_reads for s in shares], color=sns.color_palette()[0])
    ax1.plot(names, [100 * s.cumulative_hit_ratio for s in shares], "o-", color="black", label="cumulative")
    ax1.set_ylabel("% of reads served")
    ax1.set_ylim(0, 105)
    ax1.legend(fontsize=8)
    ax1.set_title("reads served per tier", fontsize=10)
    ax2.plot(names, [s.capacity_tokens if s.capacity_tokens > 0 else np.nan for s in shares], "o", ms=9,
             color=sns.color_palette()[1])
    ax2.set_yscale("log")
    ax2.yaxis.set_major_formatter(FuncFormatter(_tokens))
    ax2.set_ylabel("capacity (tokens, log)")
    ax2.set_title("capacity per tier (recommended mix)", fontsize=10)
    return _save(fig, out, "tiers.png", "reads served per tier and capacity per tier (recommended mix)")


def occupancy_figure(ts: pd.DataFrame, out: Path, title: str) -> str:
    """Occupancy of every tier over simulated time in the recommended configuration's run."""
    sns.set_theme(style="whitegrid")
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    x = "time_s" if ts["time_s"].notna().all() else "access_index"
    sns.lineplot(data=ts, x=x, y="occupancy", hue="tier", ax=ax)
    ax.set_xlabel("simulated time (s)" if x == "time_s" else "access index")
    ax.set_ylabel("occupancy (fraction of capacity)")
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=10)
    return _save(fig, out, "occupancy.png", title)


def bottleneck_figure(res: list[Resource], out: Path) -> str:
    """Demand on every resource (work offered per second of arrivals), saturation at 1."""
    sns.set_theme(style="whitegrid")
    fig = Figure(figsize=(8, 0.45 * len(res) + 1.5))
    ax = fig.subplots()
    names = [r.name for r in res][::-1]
    vals = [r.demand for r in res][::-1]
    colors = ["crimson" if v > 1 else sns.color_palette()[0] for v in vals]
    ax.barh(names, vals, color=colors)
    ax.axvline(1.0, color="black", ls="--", lw=1)
    if max(vals) > 20:
        ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("demand (busy time / arrival span; > 1 saturated)")
    title = "load on each resource, recommended configuration"
    ax.set_title(title, fontsize=10)
    return _save(fig, out, "bottleneck.png", title)


def audit_figure(audit: Audit, out: Path) -> str:
    """Computed against claimed KV-cache tokens per tier of the seed workstation (points, log axis).

    Only rows with a claim are drawn: the claims count KV-cache tokens, so a payload whose tokens are
    not comparable (a RAG chunk's) carries no claim and is left out. No KV at all (weights do not fit)
    is drawn as a cross on the axis' floor.
    """
    sns.set_theme(style="whitegrid")
    rows = [r for r in audit.claims if r.claimed_tokens]
    tiers = list(dict.fromkeys(r.tier for r in rows))
    claimed = {r.tier: float(r.claimed_tokens or 0) for r in rows}
    series: dict[str, list[float]] = {"claimed": [claimed[t] for t in tiers]}
    for payload in dict.fromkeys(r.payload for r in rows):
        got = {r.tier: r.tokens for r in rows if r.payload == payload}
        series[payload] = [float(got[t]) if got.get(t) else np.nan for t in tiers]
    fig = Figure(figsize=(9, 4.4))
    ax = fig.subplots()
    _dodged_points(ax, tiers, series, marker_size=8)
    ax.set_yscale("log")
    lo = ax.get_ylim()[0]
    n = max(1, len(series))
    for j, (_label, values) in enumerate(series.items()):
        for i, v in enumerate(values):
            if not np.isfinite(v):
                ax.plot([i - 0.35 + (0.7 / n) * (j + 0.5)], [lo], marker="x", ms=9, mew=2, color="crimson", ls="none")
    ax.yaxis.set_major_formatter(FuncFormatter(_tokens))
    ax.set_ylabel("KV-cache tokens (log; x: none)")
    ax.set_xlabel("")
    title = f"{audit.hardware} under {audit.mix}: claimed vs computed KV-cache token capacity"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, out, "audit.png", title)
