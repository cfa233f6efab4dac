"""The report's figures, drawn with seaborn on matplotlib ``Figure`` objects (no global pyplot state).

Each function draws one PNG into the report's folder and returns its file name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

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
    return f"{x:g} s" if x >= 1 else (f"{1e3 * x:g} ms" if x >= 1e-3 else f"{1e6 * x:g} us")


def _save(fig: Figure, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=DPI, bbox_inches="tight")
    return name


def capacity_figure(cap: CapacityReport, out: Path) -> str:
    """Tokens each tier (and the whole hierarchy) holds per codec, against the phase's target."""
    sns.set_theme(style="whitegrid")
    rows = []
    for t in cap.tiers:
        for c in CODECS:
            rows.append({"where": t.name, "codec": c, "tokens": max(1, t.tokens[c])})
    for c in CODECS:
        rows.append({"where": "hierarchy", "codec": c, "tokens": max(1, cap.distinct_tokens(c))})
    fig = Figure(figsize=(9, 4.5))
    ax = fig.subplots()
    sns.barplot(data=pd.DataFrame(rows), x="where", y="tokens", hue="codec", ax=ax, errorbar=None)
    ax.set_yscale("log")
    ax.axhline(cap.target_tokens, color="crimson", ls="--", lw=1.5, label=f"target\n{cap.target_tokens:,}")
    ax.yaxis.set_major_formatter(FuncFormatter(_tokens))
    ax.set_xlabel("")
    ax.set_ylabel("tokens held (log)")
    ax.set_title(f"{cap.payload} on {cap.hardware}: capacity per tier and codec ({cap.block_tokens}-token blocks)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _save(fig, out, "capacity.png")


def sweep_figure(table: pd.DataFrame, recommended_job: str, out: Path, note: str) -> str:
    """Prefix hit ratio and TTFT p99 of every swept configuration, the recommended one outlined."""
    table = table.replace([np.inf, -np.inf], np.nan)  # no TTFT (every request refused): no bar
    sns.set_theme(style="whitegrid")
    fig = Figure(figsize=(11, 4.6))
    axes = fig.subplots(1, 2)
    order_p = list(dict.fromkeys(table["policy"]))
    order_c = list(dict.fromkeys(table.sort_values("codec")["codec"]))
    for ax, col, label, log in (
        (axes[0], "hit_ratio_tokens", "prefix hit ratio (cached / prompt tokens)", False),
        (axes[1], "ttft_p99_s", "TTFT p99, time to first token (log)", True),
    ):
        sns.barplot(data=table, x="policy", y=col, hue="codec", order=order_p, hue_order=order_c, ax=ax,
                    errorbar=None, legend=ax is axes[1])
        if log and (table[col] > 0).all():
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(_seconds))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda _x, _p: ""))
        ax.set_ylabel(label)
        ax.set_xlabel("policy")
        rec = table[table["job"] == recommended_job].iloc[0]
        i, j = order_p.index(rec["policy"]), order_c.index(rec["codec"])
        for patch in ax.patches[j * len(order_p) + i : j * len(order_p) + i + 1]:
            patch.set_edgecolor("black")
            patch.set_linewidth(2.5)
    axes[1].legend(fontsize=8, title="codec mix", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"timed sweep: policy x codec mix (recommended outlined in black){note}", fontsize=11)
    return _save(fig, out, "sweep.png")


def mrc_figure(curves: dict[str, pd.DataFrame], marks: Sequence[tuple[str, float, float]], top_tokens: int,
               out: Path, title: str) -> str:
    """LRU hit ratio against top-tier capacity (tokens) for this phase and the next, with marks."""
    sns.set_theme(style="whitegrid")
    fig = Figure(figsize=(8, 4.6))
    ax = fig.subplots()
    for label, frame in curves.items():
        ax.plot(frame["capacity_tokens"], frame["hit_ratio"], label=label, lw=2)
    ax.axvline(top_tokens, color="gray", ls="--", lw=1.2, label=f"top tier now: {_tokens(top_tokens)} tokens")
    markers = iter(["o", "s", "^", "D", "v", "P", "X"])
    for label, x, y in marks:
        ax.plot([x], [y], marker=next(markers, "o"), ls="none", ms=8, label=label)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_tokens))
    ax.set_xlabel("top-tier capacity (tokens, log)")
    ax.set_ylabel("top-tier hit ratio")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, out, "mrc.png")


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
    ax2.bar(names, [max(1, s.capacity_tokens) for s in shares], color=sns.color_palette()[1])
    ax2.set_yscale("log")
    ax2.yaxis.set_major_formatter(FuncFormatter(_tokens))
    ax2.set_ylabel("capacity (tokens, log)")
    ax2.set_title("capacity per tier (recommended mix)", fontsize=10)
    return _save(fig, out, "tiers.png")


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
    return _save(fig, out, "occupancy.png")


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
    ax.set_title("load on each resource, recommended configuration", fontsize=10)
    return _save(fig, out, "bottleneck.png")


def audit_figure(audit: Audit, out: Path) -> str:
    """Computed against claimed tokens per tier of the seed workstation, per payload."""
    sns.set_theme(style="whitegrid")
    rows = [{"tier": r.tier, "what": r.payload, "tokens": r.tokens} for r in audit.claims]
    seen = set()
    for r in audit.claims:
        if r.claimed_tokens and r.tier not in seen:
            rows.append({"tier": r.tier, "what": "claimed", "tokens": r.claimed_tokens})
            seen.add(r.tier)
    frame = pd.DataFrame(rows)
    fig = Figure(figsize=(9, 4.4))
    ax = fig.subplots()
    hue_order = ["claimed"] + [w for w in dict.fromkeys(frame["what"]) if w != "claimed"]
    palette = ["#444444"] + list(sns.color_palette(n_colors=len(hue_order) - 1))
    sns.barplot(data=frame, x="tier", y="tokens", hue="what", hue_order=hue_order, palette=palette, ax=ax,
                errorbar=None)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(_tokens))
    ax.set_ylabel("tokens (log)")
    ax.set_xlabel("")
    ax.set_title(f"{audit.hardware} under {audit.mix}: claimed vs computed token capacity", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, out, "audit.png")
