"""Warnings about a plan's own results: an overloaded sweep says so, in the summary, on the console
and in ``plan.json``'s ``notes``.

A run is *overloaded* when some resource of the recommended configuration is offered more work than
it can do (demand above 1, see :mod:`experiments.planning.bottleneck`): requests queue for as long as
the run lasts, so its TTFTs grow with the run's length and are an order, not values. A TTFT p99 of a
minute or more is flagged on its own, whatever the demand says. When the engines are the overloaded
ones, a note says how many engines the load needs (:mod:`experiments.planning.fleet`).
"""

from __future__ import annotations

from typing import Any

from experiments.planning.fleet import verdict_of_run

SATURATED = 1.0
"""Demand above this: the resource cannot keep up with the offered load."""

LONG_P99_S = 60.0
"""A TTFT p99 at or above this many seconds is flagged as overload whatever the demand."""


def overload_notes(plan: Any) -> list[str]:
    """One sentence per overload sign in ``plan`` (a :class:`~experiments.planning.planner.Plan`); ``[]`` if none."""
    if plan.ranking is None:
        return []
    notes = []
    r = plan.ranking.recommended
    over = [x for x in plan.resources if x.demand > SATURATED]
    if over:
        worst = max(over, key=lambda x: x.demand)
        notes.append(
            f"Overloaded: in the recommended run, {worst.name}: offered {worst.demand:.2f}x the work it can do "
            f"(utilisation {100 * worst.utilisation:.0f} %)"
            + (f", and {len(over) - 1} other resource(s) over 1" if len(over) > 1 else "")
            + ": requests queue for as long as the run lasts, so its TTFTs grow with the run's length - read them "
            "as an order, not as values."
        )
    split = getattr(plan, "split", None)
    split_engines = split.engines if split is not None else 1
    fleet = verdict_of_run(plan.sweep_span_s, plan.rec_summary, split_engines) if plan.rec_summary else None
    if fleet is not None and fleet.engines > 1:
        notes.append(fleet.sentence())
    p99 = float(r.ttft_p99_s)
    if p99 >= LONG_P99_S:
        notes.append(
            f"Overloaded: the recommended configuration's TTFT p99 is {p99:,.0f} s (a minute or more): "
            "the load offered is more than this hierarchy and its engines serve."
        )
    table = plan.ranking.table
    if "max_demand" in table and len(table) and bool((table["max_demand"] > SATURATED).all()):
        notes.append(f"Every one of the {len(table)} swept configurations is saturated (some demand > 1).")
    return notes
