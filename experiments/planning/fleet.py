"""Traces recorded on a fleet: how many engines a trace needs.

A production trace (Mooncake's) is the traffic of many serving engines. Replayed into one engine, its
arrival rate can exceed what that engine serves, and the queue grows without bound: the plan would
measure the backlog, not the cache. Two ways out, both stated in the report:

- **Split** the trace across ``N`` engines and plan one of them (``workload.engines=N``,
  ``workload.engine=k``; the routing is :mod:`exo_sim.workloads.share`'s): a session's requests, or
  a conversation's turns, land on one engine, whose cache sees its own sessions, as a cache-aware
  router would arrange.
- **Scale time** (``workload.time_scale``, Mooncake's reader): stretch the arrivals by the same factor.

How many engines: by the utilisation law, an engine of ``c`` compute units whose requests each hold a
unit ``S`` seconds on average serves at most ``c / S`` requests a second, so a trace arriving at ``λ``
requests a second needs ``ceil(λ * S / c)`` engines (:func:`engines_needed`). ``S`` is the timed
model's: its engines' busy seconds over the requests it served (:func:`mean_service_s`; a request
refused for want of room in the top tier never reaches an engine and is not counted).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exo_sim.workloads.base import Workload


def arrival_rate_per_s(workload: Workload) -> tuple[int, float]:
    """``(requests, rate)``: the workload's request count and mean arrival rate over its span (0 if none).

    The rate is ``(n - 1) / (last - first arrival)``: ``n - 1`` gaps over the span.
    """
    n = 0
    first = last = 0.0
    for chunk in workload.chunks():
        if chunk.n_requests == 0:
            continue
        if n == 0:
            first = float(chunk.arrival_s[0])
        last = float(chunk.arrival_s[-1])
        n += chunk.n_requests
    span = last - first
    return n, ((n - 1) / span if n > 1 and span > 0 else 0.0)


def served_requests(summary: Mapping[str, Any]) -> int:
    """Requests a timed-model summary's engines served: all but those refused (too big for the top tier)."""
    return int(summary["requests"]) - int(summary.get("requests_refused") or 0)


def mean_service_s(summary: Mapping[str, Any]) -> float:
    """Seconds a served request holds a compute unit on average, in a timed-model summary (``exo-sim``).

    Raises:
        ValueError: the summary served no request.
    """
    served = served_requests(summary)
    if served <= 0:
        raise ValueError("the timed model served no request: no service time to read")
    return float(summary["compute"]["busy_s"]) / served


def engines_needed(rate_per_s: float, service_s: float, units_per_engine: int = 1) -> int:
    """Engines of ``units_per_engine`` compute units that serve ``rate_per_s`` requests of ``service_s`` s each.

    ``ceil(rate * service / units)``, at least 1: each engine busy at most all of the time.
    """
    if rate_per_s < 0 or service_s < 0 or units_per_engine < 1:
        raise ValueError("rate and service time must be >= 0 and units_per_engine >= 1")
    return max(1, math.ceil(rate_per_s * service_s / units_per_engine - 1e-12))


@dataclass(frozen=True)
class FleetVerdict:
    """Whether a trace fits one engine, and how many it needs (for the report).

    ``split_engines``: the ``workload.engines`` the run already had (1: the whole trace was run); the
    verdict is then about that one engine's share, and the whole trace needs about
    ``split_engines * engines`` engines.
    """

    requests: int
    rate_per_s: float
    service_s: float
    units_per_engine: int
    engines: int
    split_engines: int = 1

    @property
    def load(self) -> float:
        """Offered load per engine of the planned size: ``rate * service / units`` (over 1: a backlog)."""
        return self.rate_per_s * self.service_s / self.units_per_engine

    @property
    def fleet_engines(self) -> int:
        """Engines the whole trace needs: ``engines`` for each of the ``split_engines`` shares."""
        return self.split_engines * self.engines

    def sentence(self) -> str:
        """One sentence for the report; it names the setting that splits the trace."""
        head = (
            f"The served requests arrive at {self.rate_per_s:,.3g}/s and the timed model holds a compute unit "
            f"{self.service_s:.3g} s per request ({self.units_per_engine} unit(s) an engine): an offered load of "
            f"{self.load:.3g}"
        )
        if self.engines <= 1:
            return head + ", which one engine serves."
        split = (
            f"Plan one engine's share (`workload.engines={self.fleet_engines}`: about 1/{self.fleet_engines} of its "
            "requests, each session or conversation on one engine, as a cache-aware router sends them)"
        )
        if self.split_engines > 1:
            return (
                head + f", more than one engine serves: this share (one engine of {self.split_engines}) needs "
                f"{self.engines} engines, the whole trace about {self.fleet_engines}. {split} or stretch time "
                f"(a Mooncake trace: `workload.time_scale={self.engines:g}` or more)."
            )
        return (
            head + f", more than one engine serves: it needs {self.engines} engines. {split} or stretch time "
            f"(a Mooncake trace: `workload.time_scale={self.engines:g}` or more)."
        )


def verdict_of_run(span_s: float, summary: Mapping[str, Any], split_engines: int = 1) -> FleetVerdict | None:
    """The verdict for a timed run whose requests arrived over ``span_s`` seconds (``None``: none served).

    The rate is the served requests over ``span_s``, so that ``rate * service`` is the engines' demand
    the bottleneck table shows (busy seconds over the span of arrivals). ``split_engines``: the run's
    ``workload.engines`` (it ran one engine's share).
    """
    requests = served_requests(summary)
    if requests <= 0 or span_s <= 0:
        return None
    rate = requests / span_s
    service = mean_service_s(summary)
    units = int(summary["compute"]["engines"])
    return FleetVerdict(requests, rate, service, units, engines_needed(rate, service, units), split_engines)


def fleet_verdict(workload: Workload, summary: Mapping[str, Any]) -> FleetVerdict:
    """The verdict for ``workload`` from a timed-model ``summary`` of it (its service time and units)."""
    n, rate = arrival_rate_per_s(workload)
    service = mean_service_s(summary)
    units = int(summary["compute"]["engines"])
    return FleetVerdict(n, rate, service, units, engines_needed(rate, service, units))
