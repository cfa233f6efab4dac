"""The inverse queries' figure: the exact prefix hit-ratio curve with each target's capacity, and the
hierarchies priced and timed against the TTFT p99 target."""

from __future__ import annotations

from pathlib import Path

import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from experiments.planning.inverse import InverseReport

NAME = "inverse.png"


def _tokens(x: float, _pos: object = None) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if x >= div:
            return f"{x / div:g}{unit}"
    return f"{x:g}"


def inverse_figure(inv: InverseReport, block_tokens: int, out: Path) -> str:
    """Draw :data:`NAME` into ``out`` and return its file name."""
    sns.set_theme(style="whitegrid")
    h = inv.hierarchy
    fig = Figure(figsize=(12 if h is not None else 7, 4.6))
    axes = fig.subplots(1, 2 if h is not None else 1, squeeze=False)[0]
    ax = axes[0]
    how = "LRU, exact (one pass)" if inv.exact else "LRU, exact (one pass, then the decision core)"
    ax.plot(inv.curve_blocks * block_tokens, inv.curve_ratio, marker=".", lw=1, label=how)
    ax.axhline(inv.ceiling, color="grey", ls="--", lw=1, label=f"infinite-cache ceiling {inv.ceiling:.3f}")
    for target, blocks in inv.totals.items():
        if blocks is None:
            ax.axhline(target, color="crimson", ls=":", lw=1)
            ax.annotate(f"{target:.0%}: unreachable", (inv.curve_blocks.min() * block_tokens, target),
                        fontsize=7, color="crimson", va="bottom")
        else:
            x = blocks * inv.scale * block_tokens
            ax.plot([x], [target], marker="o", color="crimson", ls="none")
            ax.annotate(f"{target:.0%}: {_tokens(x)} tokens", (x, target), fontsize=7, xytext=(4, -10),
                        textcoords="offset points")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_tokens))
    ax.set_xlabel("capacity of the hierarchy, tiers together (tokens, log)")
    ax.set_ylabel("prefix hit ratio (hit / read blocks)")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("capacity for each prefix hit-ratio target")
    if h is not None:
        bx = axes[1]
        timed = [c for c in h.candidates if c.ttft_p99_s is not None]
        untimed = [c for c in h.candidates if c.ttft_p99_s is None]
        bx.plot([c.cost for c in timed], [c.ttft_p99_s for c in timed], marker="o", ls="none", label="timed")
        for c in timed:
            bx.annotate(c.label, (c.cost, c.ttft_p99_s or 0.0), fontsize=7, xytext=(4, 2), textcoords="offset points")
        if untimed:
            bx.plot([c.cost for c in untimed], [h.target_s] * len(untimed), marker="x", ls="none", color="grey",
                    label="not timed (drawn at the target)")
        if h.chosen is not None and h.chosen.ttft_p99_s is not None:
            bx.plot([h.chosen.cost], [h.chosen.ttft_p99_s], marker="o", ms=14, mfc="none", color="green",
                    ls="none", label=f"chosen: {h.chosen.label}")
        bx.axhline(h.target_s, color="crimson", ls="--", lw=1, label=f"target {h.target_s:g} s")
        if timed and all((c.ttft_p99_s or 0) > 0 for c in timed):
            bx.set_yscale("log")
        bx.set_xlabel("cost of the hierarchy (plan.cost_per_gb x GB)")
        bx.set_ylabel("TTFT p99 (s)")
        bx.legend(loc="best", fontsize=8)
        bx.set_title("hierarchies against the TTFT p99 target")
    fig.tight_layout()
    fig.savefig(out / NAME, dpi=110, bbox_inches="tight", metadata={"Title": "inverse queries"})
    return NAME
