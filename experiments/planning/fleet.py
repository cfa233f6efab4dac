"""Traces recorded on a fleet: how many engines a trace needs, and one engine's share of it.

A production trace (Mooncake's) is the traffic of many serving engines. Replayed into one engine, its
arrival rate can exceed what that engine serves, and the queue grows without bound: the plan would
measure the backlog, not the cache. Two ways out, both stated in the report:

- **Split** the trace across ``N`` engines and plan one of them (:class:`EngineShare`): each request
  goes to engine ``mix(key) mod N``, where ``key`` is its session (where the workload knows it) or
  else the first block it reads — the root of its prefix, since in a chained workload equal first ids
  are equal prefix roots (Mooncake's first hash id). A session's or a prefix's requests therefore all
  land on one engine, whose cache sees its own sessions, as a prefix-aware router would arrange.
- **Scale time** (``workload.time_scale``, Mooncake's reader): stretch the arrivals by the same factor.

How many engines: by the utilisation law, an engine of ``c`` compute units whose requests each hold a
unit ``S`` seconds on average serves at most ``c / S`` requests a second, so a trace arriving at ``λ``
requests a second needs ``ceil(λ * S / c)`` engines (:func:`engines_needed`). ``S`` is the timed
model's: its engines' busy seconds over the requests it served (:func:`mean_service_s`; a request
refused for want of room in the top tier never reaches an engine and is not counted).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from exo_sim.errors import ConfigError
from exo_sim.workloads.base import RequestChunk, Workload

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(keys: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: consecutive keys (session 0, 1, 2 ...) spread evenly over engines."""
    z = keys.astype(np.int64).view(np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def request_keys(chunk: RequestChunk) -> np.ndarray:
    """Each request's routing key: its session where known, else the first block it reads (-1: none)."""
    if chunk.session_ids is not None:
        return np.asarray(chunk.session_ids, dtype=np.int64)
    keys = np.full(chunk.n_requests, -1, dtype=np.int64)
    starts, ends = chunk.offsets[:-1], chunk.offsets[1:]
    for i in range(chunk.n_requests):  # the first read of each request (a request may open with writes)
        reads = np.flatnonzero(~chunk.writes[starts[i] : ends[i]])
        if reads.size:
            keys[i] = chunk.blocks[starts[i] + reads[0]]
    return keys


def engine_of(keys: np.ndarray, engines: int) -> np.ndarray:
    """The engine (0..engines-1) each routing key goes to."""
    with np.errstate(over="ignore"):
        return (_mix(keys) % np.uint64(engines)).astype(np.int64)


def take_requests(chunk: RequestChunk, keep: np.ndarray) -> RequestChunk:
    """The requests of ``chunk`` where ``keep`` is true, in order (``next_access`` dropped: it indexed all)."""
    sizes = np.diff(chunk.offsets)
    refs = np.repeat(keep, sizes)
    offsets = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
    np.cumsum(sizes[keep], out=offsets[1:])
    return RequestChunk(
        arrival_s=chunk.arrival_s[keep],
        offsets=offsets,
        blocks=chunk.blocks[refs],
        writes=chunk.writes[refs],
        tokens=chunk.tokens[refs],
        next_access=None,
        session_ids=None if chunk.session_ids is None else chunk.session_ids[keep],
    )


class EngineShare(Workload):
    """Engine ``engine`` of ``engines``' share of ``inner``: the requests whose key routes to it.

    Arrival times are kept as recorded, so the share arrives at about ``1/engines`` of the rate.

    Raises:
        ConfigError: ``plan.engines`` below 1, or ``engine`` outside ``0..engines-1``.
    """

    def __init__(self, inner: Workload, engines: int, engine: int = 0) -> None:
        super().__init__(inner.cfg, inner.block_tokens)
        if engines < 1:
            raise ConfigError("plan.engines", f"must be >= 1, got {engines}")
        if not 0 <= engine < engines:
            raise ConfigError("plan.engine", f"must be in 0..{engines - 1}, got {engine}")
        self.inner = inner
        self.engines = engines
        self.engine = engine
        # kind and chained are class-level facts of a workload; a share has its inner workload's
        vars(self).update(kind=inner.kind, chained=inner.chained)

    def chunks(self) -> Iterator[RequestChunk]:
        """The inner workload's chunks, each cut to this engine's requests (empty cuts skipped)."""
        for chunk in self.inner.chunks():
            keep = engine_of(request_keys(chunk), self.engines) == self.engine
            if keep.any():
                yield take_requests(chunk, keep)

    def describe(self) -> dict[str, Any]:
        """The inner workload's facts and the split."""
        return {**self.inner.describe(), "engines": self.engines, "engine": self.engine}

    def notes(self) -> list[str]:
        """The inner workload's caveats and the split's own."""
        return [
            *self.inner.notes(),
            f"engine {self.engine} of {self.engines}: requests routed by session or prefix root",
        ]


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
    """Whether a trace fits one engine, and how many it needs (for the report)."""

    requests: int
    rate_per_s: float
    service_s: float
    units_per_engine: int
    engines: int

    @property
    def load(self) -> float:
        """Offered load per engine of the planned size: ``rate * service / units`` (over 1: a backlog)."""
        return self.rate_per_s * self.service_s / self.units_per_engine

    def sentence(self) -> str:
        """One sentence for the report."""
        head = (
            f"The served requests arrive at {self.rate_per_s:,.3g}/s and the timed model holds a compute unit "
            f"{self.service_s:.3g} s per request ({self.units_per_engine} unit(s) an engine): an offered load of "
            f"{self.load:.3g}"
        )
        if self.engines <= 1:
            return head + ", which one engine serves."
        return (
            head + f", more than one engine serves: it needs {self.engines} engines. Plan one engine's share "
            f"(1/{self.engines} of its sessions or prefix roots, as a prefix-aware router sends them) or stretch time "
            f"(a Mooncake trace: `workload.time_scale={self.engines:g}` or more)."
        )


def verdict_of_run(span_s: float, summary: Mapping[str, Any]) -> FleetVerdict | None:
    """The verdict for a timed run whose requests arrived over ``span_s`` seconds (``None``: none served).

    The rate is the served requests over ``span_s``, so that ``rate * service`` is the engines' demand
    the bottleneck table shows (busy seconds over the span of arrivals).
    """
    requests = served_requests(summary)
    if requests <= 0 or span_s <= 0:
        return None
    rate = requests / span_s
    service = mean_service_s(summary)
    units = int(summary["compute"]["engines"])
    return FleetVerdict(requests, rate, service, units, engines_needed(rate, service, units))


def fleet_verdict(workload: Workload, summary: Mapping[str, Any]) -> FleetVerdict:
    """The verdict for ``workload`` from a timed-model ``summary`` of it (its service time and units)."""
    n, rate = arrival_rate_per_s(workload)
    service = mean_service_s(summary)
    units = int(summary["compute"]["engines"])
    return FleetVerdict(n, rate, service, units, engines_needed(rate, service, units))
