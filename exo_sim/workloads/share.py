"""One engine's share of a workload: the requests a cache-aware router sends to it.

A trace recorded on a fleet (Mooncake's) is the traffic of many serving engines. Replayed into one
engine its arrival rate can exceed what the engine serves; ``workload.engines = N`` splits it across
``N`` engines and ``workload.engine = k`` (``0..N-1``) keeps engine ``k``'s share. Every clock (the
replay, the timed model, the runtime, the miss-ratio curves) builds its workload through
:func:`exo_sim.workloads.make_workload`, which wraps it here, so all of them see the same share.

Routing (:class:`Router`), one pass over the whole workload in order, the same in every share::

    a workload that knows its sessions (agent_sessions):
        engine = splitmix64(session) mod N                     a session's requests on one engine
    a chained workload (block i names its whole prefix; Mooncake):  cache-aware, as SGLang's router
        match  = the request's deepest read block some engine has seen (a chain: its prefix with it)
        if match covers more than CACHE_THRESHOLD of its read blocks:
            engine = the least-loaded engine among those that have seen it   (continues a context)
        else:
            engine = the least-loaded engine                                  (a new context)
        load: requests routed so far (ties: the lowest index); the engine has now seen every block read
    any other workload (independent objects):
        engine = splitmix64(first block read) mod N

A chained trace's shared root (a system prompt every request opens with, Mooncake's hash id 0) is
therefore not a routing key — keyed by it, every request would land on one engine — while a
conversation's next turn, which re-reads the previous one, follows it. The router's memory of seen
blocks is never pruned (a real router's tree is). The share keeps the recorded arrival times (it
arrives at about ``1/N`` of the rate) and the requests' order; it drops ``next_access`` (it indexed
the whole trace), which the clocks recompute for the share when a policy needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from exo_sim.errors import ConfigError
from exo_sim.workloads.base import RequestChunk, Workload

CACHE_THRESHOLD = 0.5
"""A chained request follows the engines that have seen its prefix when that prefix is more than this
share of its read blocks; else it goes to the least-loaded engine (the rule of SGLang's cache-aware
router, whose ``cache_threshold`` is a setting; here it is fixed)."""

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
    reads = np.flatnonzero(~np.asarray(chunk.writes, dtype=bool))
    if reads.size == 0:
        return keys
    # the first read at or after each request's start (a request may open with writes), if inside it
    starts, ends = chunk.offsets[:-1], chunk.offsets[1:]
    at = np.searchsorted(reads, starts)
    first = reads[np.minimum(at, reads.size - 1)]
    inside = (at < reads.size) & (first < ends)
    keys[inside] = chunk.blocks[first[inside]]
    return keys


def engine_of(keys: np.ndarray, engines: int) -> np.ndarray:
    """The engine (``0..engines-1``) each routing key goes to."""
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


def routed_by(workload: Workload, chunk: RequestChunk | None = None) -> str:
    """What the split routes ``workload``'s requests by, in words (``chunk``: one of its chunks, if at hand)."""
    if chunk is not None and chunk.session_ids is not None:
        return "session"
    if workload.chained:
        share = f"{CACHE_THRESHOLD:.0%}"
        return f"cached prefix (to an engine that has seen over {share} of its blocks, else the least loaded)"
    return "first block read"


class Router:
    """Routes a workload's requests over ``engines`` engines, chunk after chunk (see the module docstring).

    Stateful for chained workloads: one router must see the whole workload, in order.
    """

    def __init__(self, engines: int, chained: bool) -> None:
        self.engines = engines
        self.chained = chained
        self.load = [0] * engines
        self._seen: dict[int, int] = {}  # block id -> bit mask of the engines that have seen it

    def route(self, chunk: RequestChunk) -> np.ndarray:
        """The engine (``0..engines-1``) of each request of ``chunk``."""
        if self.engines == 1:
            return np.zeros(chunk.n_requests, dtype=np.int64)
        if chunk.session_ids is not None or not self.chained:
            return engine_of(request_keys(chunk), self.engines)
        out = np.empty(chunk.n_requests, dtype=np.int64)
        writes = np.asarray(chunk.writes, dtype=bool)
        blocks = chunk.blocks.tolist()
        offsets = chunk.offsets.tolist()
        if writes.any():  # keep the reads only (a request's output blocks are not part of its prefix)
            reads = np.flatnonzero(~writes)
            blocks = chunk.blocks[reads].tolist()
            offsets = np.searchsorted(reads, chunk.offsets).tolist()
        for i in range(chunk.n_requests):
            out[i] = self._route_one(blocks[offsets[i] : offsets[i + 1]])
        return out

    def _route_one(self, blocks: list[int]) -> int:
        seen = self._seen
        mask = 0
        for depth in range(len(blocks) - 1, -1, -1):  # the deepest seen block: the longest cached prefix
            mask = seen.get(blocks[depth], 0)
            if mask:
                break
        if not (mask and depth + 1 > CACHE_THRESHOLD * len(blocks)):
            mask = (1 << self.engines) - 1
        engine = min((e for e in range(self.engines) if mask >> e & 1), key=lambda e: (self.load[e], e))
        self.load[engine] += 1
        bit = 1 << engine
        for b in blocks:
            seen[b] = seen.get(b, 0) | bit
        return engine


@dataclass(frozen=True)
class SplitSettings:
    """``workload.engines`` and ``workload.engine``: how many engines the trace is split across, which one is run."""

    engines: int = 1
    engine: int = 0

    @property
    def split(self) -> bool:
        """Whether there is a split at all (more than one engine)."""
        return self.engines > 1


def _int_setting(cfg: Any, key: str, default: int, locate: Callable[[str], str | None] | None) -> int:
    value = getattr(cfg, key, default)
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"workload.{key}", f"must be a whole number, got {value!r}", _where(key, locate))
    return int(value)


def _where(key: str, locate: Callable[[str], str | None] | None) -> str | None:
    return locate(f"workload.{key}") if locate else None


def split_settings(cfg: Any, locate: Callable[[str], str | None] | None = None) -> SplitSettings:
    """Read and check ``workload.engines`` (default 1: no split) and ``workload.engine`` (default 0).

    Raises:
        ConfigError: ``engines`` below 1, or ``engine`` outside ``0..engines-1``.
    """
    engines = _int_setting(cfg, "engines", 1, locate)
    engine = _int_setting(cfg, "engine", 0, locate)
    if engines < 1:
        raise ConfigError("workload.engines", f"must be >= 1, got {engines}", _where("engines", locate))
    if not 0 <= engine < engines:
        raise ConfigError(
            "workload.engine",
            f"must be in 0..{engines - 1} (workload.engines is {engines}), got {engine}",
            _where("engine", locate),
        )
    return SplitSettings(engines, engine)


class EngineShare(Workload):
    """Engine ``engine`` of ``engines``' share of ``inner``: the requests whose key routes to it.

    Raises:
        ConfigError: ``engines`` below 1, or ``engine`` outside ``0..engines-1``.
    """

    def __init__(self, inner: Workload, engines: int, engine: int = 0) -> None:
        super().__init__(inner.cfg, inner.block_tokens)
        split_settings(SplitSettings(engines, engine))
        self.inner = inner
        self.engines = engines
        self.engine = engine
        # kind and chained are class-level facts of a workload; a share has its inner workload's
        vars(self).update(kind=inner.kind, chained=inner.chained)

    def validate(self) -> None:
        """The inner workload's checks (the split's own were made on construction)."""
        self.inner.validate()

    def chunks(self) -> Iterator[RequestChunk]:
        """The inner workload's chunks, each cut to this engine's requests (empty cuts skipped)."""
        router = Router(self.engines, self.inner.chained)
        for chunk in self.inner.chunks():
            keep = router.route(chunk) == self.engine
            if keep.any():
                yield take_requests(chunk, keep)

    def describe(self) -> dict[str, Any]:
        """The inner workload's facts and the split."""
        return {**self.inner.describe(), "engines": self.engines, "engine": self.engine}

    def notes(self) -> list[str]:
        """The inner workload's caveats and the split's own."""
        return [
            *self.inner.notes(),
            f"engine {self.engine} of {self.engines}: only the requests routed to it (by session or cached prefix)",
        ]


@dataclass(frozen=True)
class ShareCount:
    """How many of a workload's requests one engine's share holds (for the report)."""

    engines: int
    engine: int
    routed_by: str
    requests: int
    total_requests: int

    def sentence(self) -> str:
        """One sentence for the report's summary."""
        return (
            f"One engine of {self.engines} (`workload.engines={self.engines}`, engine {self.engine}): requests "
            f"routed by {self.routed_by}; this engine got {self.requests:,} of {self.total_requests:,} requests."
        )

    def as_json(self) -> dict[str, Any]:
        """The split's facts, machine-readable."""
        return {
            "engines": self.engines,
            "engine": self.engine,
            "routed_by": self.routed_by,
            "requests": self.requests,
            "total_requests": self.total_requests,
        }


def count_share(share: EngineShare) -> ShareCount:
    """Count the share's requests and the whole workload's, in one pass over the inner workload."""
    total = kept = 0
    by = None
    router = Router(share.engines, share.inner.chained)
    for chunk in share.inner.chunks():
        if by is None:
            by = routed_by(share.inner, chunk)
        total += chunk.n_requests
        kept += int(np.count_nonzero(router.route(chunk) == share.engine))
    return ShareCount(share.engines, share.engine, by or routed_by(share.inner), kept, total)


def share_count(workload: Workload) -> ShareCount | None:
    """:func:`count_share` when ``workload`` is one engine's share, ``None`` when it is not split."""
    return count_share(workload) if isinstance(workload, EngineShare) else None
