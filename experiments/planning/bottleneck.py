"""The bottleneck: which resource limits the recommended configuration, with its utilisation.

Resources, from the timed model's summary of one run:

* each **link** direction: busy channel-seconds (latency included) over ``channels x makespan``;
* the **codec** engines (re-encoding blocks that change codec between tiers) and the **prefill**
  engines (the summary's ``compute``: prefilling what was not found cached): busy seconds over
  ``servers x makespan``;
* the hierarchy's **capacity**: the peak live context (whole blocks) over what the hierarchy holds
  at once in the configuration's codec mix.

*Utilisation* is over the makespan, so it cannot pass 1. *Demand* is the same busy time over the span
of arrivals — the work offered per second of requests: above 1 the resource cannot keep up, requests
queue for as long as the run lasts and the TTFT p99 grows with the run's length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Resource:
    """One resource's load in a timed run."""

    name: str
    kind: str  # link | codec | prefill | capacity
    utilisation: float
    demand: float
    detail: str


def resources(
    summary: dict[str, Any],
    arrival_span_s: float,
    live_peak_tokens: int,
    capacity_tokens: int,
    footprint: bool = False,
) -> list[Resource]:
    """Every resource of a timed run's ``summary`` (``source=sim``), most demanded first.

    Args:
        summary: the run's ``summary.json``.
        arrival_span_s: last arrival minus first arrival (s) of the run.
        live_peak_tokens: the peak live context in whole blocks (tokens), at the run's scale.
        capacity_tokens: what the hierarchy holds at once at the run's scale (tokens).
        footprint: ``live_peak_tokens`` is a trace's footprint (every distinct block, read once or not),
            not a live context: the capacity line is then ``kind="footprint"``, shown but never named
            the bottleneck by :func:`verdict` (blocks read once are recomputed whatever the capacity).
    """
    makespan = float(summary.get("makespan_s") or 0.0)
    span = arrival_span_s if arrival_span_s > 0 else makespan
    out = []
    for link in summary.get("link_usage") or []:
        busy, ch = float(link["busy_s"]), int(link["channels"])
        out.append(
            Resource(
                name=f"link {link['link']}",
                kind="link",
                utilisation=float(link["busy_fraction"]),
                demand=busy / (ch * span) if span > 0 else 0.0,
                detail=f"{link['bytes_moved'] / 1e9:,.1f} GB in {link['transfers']:,} transfers at "
                f"{link['bandwidth_gbps']:g} GB/s x {ch}",
            )
        )
    compute = summary.get("compute") or summary.get("prefill") or {}  # "prefill" {slots}: older summaries
    for key, part, servers, what in (
        ("codec", summary.get("codec") or {}, "workers", "codec engines"),
        ("prefill", compute, "engines" if "engines" in compute else "slots", "prefill engines"),
    ):
        busy, n = float(part.get("busy_s") or 0.0), int(part.get(servers) or 1)
        out.append(
            Resource(
                name=what,
                kind=key,
                utilisation=float(part.get("utilisation") or 0.0),
                demand=busy / (n * span) if span > 0 else 0.0,
                detail=f"{busy:,.1f} s busy on {n}",
            )
        )
    share = live_peak_tokens / capacity_tokens if capacity_tokens else float("inf")
    what = "footprint (every distinct block)" if footprint else "peak live context"
    out.append(
        Resource(
            name="hierarchy capacity",
            kind="footprint" if footprint else "capacity",
            utilisation=min(1.0, share),
            demand=share,
            detail=f"{what} {live_peak_tokens:,} tokens in whole blocks vs {capacity_tokens:,} held at once",
        )
    )
    return sorted(out, key=lambda r: r.demand, reverse=True)


def verdict(ranked: list[Resource]) -> str:
    """One sentence naming the bottleneck from :func:`resources`' list (a trace's footprint never is)."""
    top = next(r for r in ranked if r.kind != "footprint")
    if top.kind == "capacity" and top.demand > 1:
        return (
            f"The bottleneck is the hierarchy's capacity: the live context peaks at {top.demand:.2f}x what it holds "
            "at once, so blocks fall off the last tier and are recomputed."
        )
    if top.demand > 1:
        return (
            f"The bottleneck is the {top.name}: it is offered {top.demand:.2f}x the work it can do per second of "
            f"arrivals (utilisation {100 * top.utilisation:.0f} % over the run), so requests queue and the TTFT "
            "p99 grows with the length of the run."
        )
    if top.demand >= 0.5:
        return (
            f"The most loaded resource is the {top.name} at {100 * top.demand:.0f} % of what it can do "
            f"(utilisation {100 * top.utilisation:.0f} % over the run): the next to saturate as load grows."
        )
    return (
        f"No resource is near saturation; the busiest is the {top.name} at {100 * top.demand:.0f} % of what it can "
        "do: a request's time to first token is its own prefix's load and prefill (set by the prefix hit ratio, "
        "the links' bandwidth and the prefill cost), not waiting for others."
    )


def arrival_span_s(requests: pd.DataFrame) -> float:
    """Last arrival minus first arrival (s) in a run's ``requests.parquet``."""
    arrivals = requests["arrival_s"]
    return float(arrivals.max() - arrivals.min()) if len(arrivals) else 0.0


def busiest_resource(job_dir: Path) -> Resource:
    """The most demanded time resource (link, codec or prefill engines) of one timed run's folder."""
    summary = json.loads((job_dir / "summary.json").read_text())
    span = arrival_span_s(pd.read_parquet(job_dir / "requests.parquet", columns=["arrival_s"]))
    timed = [r for r in resources(summary, span, 0, 1) if r.kind != "capacity"]
    return timed[0]
