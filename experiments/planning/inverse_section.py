"""The report's section for the inverse queries (:mod:`experiments.planning.inverse`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from experiments.planning.document import Document
from experiments.planning.units import gib, pct, seconds, tokens

if TYPE_CHECKING:
    from experiments.planning.planner import Plan

HEADING = "Inverse queries: capacity for a hit ratio, the cheapest hierarchy for a TTFT target"


def inverse_section(doc: Document, plan: Plan) -> None:
    """Both inverse queries as tables, a figure and the sentences that say what binds."""
    inv = plan.inverse
    if inv is None:
        return
    doc.heading(HEADING)
    mini = f" (a 1:{inv.scale} miniature of the workload, capacities multiplied back)" if inv.scale > 1 else ""
    how = ("the exact one-pass prefix-hit LRU curve" if inv.reuse == "prefix"
           else "the exact one-pass LRU curve (block reuse)")
    doc.paragraph(
        f"From {how} of the workload{mini}: the capacity C of one LRU stack of blocks that reaches each prefix "
        f"hit ratio (hit blocks over read blocks), with C - 1 not reaching it. The search starts at "
        f"{inv.min_blocks:,} blocks, the largest request (a smaller tier refuses it). A tier that never evicts "
        f"reaches **{inv.ceiling:.3f}** (the infinite-cache ceiling); a target above it is unreachable at any size. "
        "Each tier below the top is given what the tiers above it do not hold (their usable blocks taken first, as "
        "an exclusive hierarchy's one LRU stack), in its own codec's bytes over its high watermark."
    )
    if not inv.exact:
        doc.paragraph(
            "This workload makes duplicate copies (a block computed while a copy of it is held), so the decision "
            "core finishes the curve, one replay per capacity: the search stopped after a fixed number of replays, "
            "and where it did not close its bracket the table gives the bracket, the answer reaching the target.")
    rows = []
    for t, blocks in inv.totals.items():
        if blocks is None:
            rows.append([pct(t), f"unreachable (ceiling {inv.ceiling:.3f})", "", ""])
        else:
            b = blocks * inv.scale
            lo, hi = inv.brackets.get(t, (blocks - 1, blocks))
            where = "" if hi - lo <= 1 else f" (the smallest lies in ({lo * inv.scale:,}, {b:,}])"
            if b == inv.min_blocks:
                where = " (already reached at the smallest capacity that refuses no request)"
            rows.append([pct(t), f"{b:,}{where}", tokens(b * plan.block_tokens), ""])
    doc.table(["prefix hit ratio", "capacity (blocks)", "capacity (tokens)", ""], [r[:3] for r in rows],
              ["r", "r", "r"])
    trows = []
    for a in inv.tiers:
        if a.blocks is None:
            trows.append([a.tier, pct(a.target), f"unreachable (ceiling {inv.ceiling:.3f})", "", "", "", ""])
            continue
        enough = "yes" if a.configured_blocks >= a.blocks else "no"
        need = "0 (reached above it)" if a.blocks == 0 else f"{a.blocks:,}"
        trows.append([a.tier, pct(a.target), need, tokens(a.tokens or 0),
                      gib(a.capacity_bytes or 0) + f" in {a.codec}", f"{a.configured_blocks:,}", enough])
    doc.table(["tier", "prefix hit ratio", "blocks it needs", "tokens", "its capacity", "configured (blocks)",
               "configured enough"], trows, ["l", "r", "r", "r", "r", "r", "l"])
    for note in inv.notes:
        doc.paragraph(note)
    h = inv.hierarchy
    if h is None:
        doc.paragraph("No TTFT p99 target is set (`plan.ttft_p99_target_s`): the cheapest hierarchy was not searched.")
    else:
        prices = ", ".join(f"{k} {v:g}" for k, v in inv.settings.price_per_gb.items())
        doc.paragraph(
            f"Hierarchies priced at `plan.cost_per_gb` ({prices} "
            f"per GB of 10^9 bytes): the configured one, and one per tier below the top and target resized to the "
            f"share above (the top tier and the other tiers as configured). Timed cheapest first by the timed model "
            f"on the sweep's workload and request rate"
            + (f" (its 1:{plan.k_sweep} miniature)" if plan.k_sweep > 1 else "")
            + f", with the recommended policy and codec mix, until one meets TTFT p99 <= {seconds(h.target_s)}; "
            "the configured hierarchy's p99 is the sweep's."
        )
        crows = []
        for c in h.candidates:
            mark = " (chosen)" if c is h.chosen else ""
            caps = ", ".join(f"{k} {gib(v)}" for k, v in c.capacity_bytes.items())
            crows.append([c.label + mark, f"{c.cost:,.2f}", caps,
                          seconds(c.ttft_p99_s) if c.ttft_p99_s is not None
                          else (f"refused by the timed model: {c.error}" if c.error else "not timed"),
                          "" if c.hit_ratio_tokens is None else f"{c.hit_ratio_tokens:.3f}",
                          "" if c.requests_refused is None else f"{c.requests_refused:,}"])
        doc.table(["hierarchy", "cost", "capacities", "TTFT p99", "prefix hit ratio (tokens)", "refused requests"],
                  crows, ["l", "r", "l", "r", "r", "r"])
        if h.chosen is not None:
            doc.paragraph(
                f"**Cheapest hierarchy meeting the target: {h.chosen.label}**, cost {h.chosen.cost:,.2f}, "
                f"TTFT p99 {seconds(h.chosen.ttft_p99_s)}.")
        else:
            doc.paragraph(f"**{h.binding}**")
    if "inverse" in plan.figures:
        doc.figure(plan.figures["inverse"], "Left: the exact prefix hit-ratio curve and each target's capacity. "
                   "Right: the hierarchies tried, cost against TTFT p99, with the target.")
