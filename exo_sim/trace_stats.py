"""The facts a planner looks at first, from one streamed pass over a workload.

Requests, block references (reads and writes), distinct blocks, reuse, the footprint of the distinct
blocks in bytes for the configured payload and codecs (exact block bytes from :mod:`exo_sim.spec`),
request sizes and the arrival rate.

Definitions:

* ``reuse_fraction``: references whose block was referenced before (by a read or a write) over all
  references; ``infinite_cache_hit_ratio``: reads whose block was referenced before over all reads —
  the hit ratio of a cache that never evicts, the ceiling of every policy.
* ``footprint_bytes``: distinct blocks x one block's bytes (a partial block still fills a slot) in
  the default codec; ``footprint_bytes_by_tier`` in each tier's codec. ``distinct_tokens`` counts the
  tokens those blocks really carry.
* ``arrival_rate_per_s``: ``(requests - 1) / (last arrival - first arrival)``; ``None`` when every
  request arrives at once.

Memory grows with the number of *distinct* blocks (8 bytes each, a sorted id array), never with the
number of references.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from exo_sim.config import CodecMixConfig
from exo_sim.spec import Spec, block_bytes
from exo_sim.workloads.base import Workload


@dataclass
class TraceStats:
    """Statistics of one workload at one block size (see the module docstring for definitions)."""

    workload: dict[str, Any]
    block_tokens: int
    requests: int
    block_refs: int
    reads: int
    writes: int
    distinct_blocks: int
    reuse_refs: int
    reuse_fraction: float
    infinite_cache_hit_ratio: float
    tokens_referenced: int
    distinct_tokens: int
    default_codec: str
    block_bytes: int
    footprint_bytes: int
    footprint_bytes_by_tier: dict[str, int]
    blocks_per_request_mean: float
    blocks_per_request_max: int
    first_arrival_s: float | None
    last_arrival_s: float | None
    duration_s: float | None
    arrival_rate_per_s: float | None
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


def trace_stats(workload: Workload, spec: Spec, codec: CodecMixConfig) -> TraceStats:
    """Stream ``workload`` once and compute its :class:`TraceStats`.

    Args:
        workload: the validated workload.
        spec: the resolved hierarchy (block size, payload content, each tier's block bytes).
        codec: the codec mix; its ``default`` codec gives ``footprint_bytes``.

    Raises:
        ExoError: whatever the workload's stream raises on a malformed trace.
    """
    seen = np.zeros(0, dtype=np.int64)
    requests = refs = reads = reuse = compulsory_reads = 0
    tokens_total = distinct_tokens = 0
    max_per_request = 0
    first_t: float | None = None
    last_t: float | None = None
    for chunk in workload.chunks():
        n, m = chunk.n_requests, chunk.n_refs
        if n:
            if first_t is None:
                first_t = float(chunk.arrival_s[0])
            last_t = float(chunk.arrival_s[-1])
            max_per_request = max(max_per_request, int(np.diff(chunk.offsets).max()))
        requests += n
        refs += m
        n_writes = int(np.count_nonzero(chunk.writes))
        reads += m - n_writes
        tokens_total += int(chunk.tokens.sum())
        if not m:
            continue
        uniq, first_idx = np.unique(chunk.blocks, return_index=True)
        at = np.searchsorted(seen, uniq)
        known = np.zeros(uniq.shape[0], dtype=bool)
        inside = at < seen.shape[0]
        known[inside] = seen[at[inside]] == uniq[inside]
        new, new_first = uniq[~known], first_idx[~known]
        reuse += m - new.shape[0]
        compulsory_reads += int(np.count_nonzero(~chunk.writes[new_first]))
        distinct_tokens += int(chunk.tokens[new_first].sum())
        if new.shape[0]:
            seen = np.insert(seen, np.searchsorted(seen, new), new)
    distinct = int(seen.shape[0])
    bb = block_bytes(spec.content, str(codec.default), codec)
    duration = (last_t - first_t) if (first_t is not None and last_t is not None) else None
    return TraceStats(
        workload=workload.describe(),
        block_tokens=spec.block_tokens,
        requests=requests,
        block_refs=refs,
        reads=reads,
        writes=refs - reads,
        distinct_blocks=distinct,
        reuse_refs=reuse,
        reuse_fraction=reuse / refs if refs else 0.0,
        infinite_cache_hit_ratio=(reads - compulsory_reads) / reads if reads else 0.0,
        tokens_referenced=tokens_total,
        distinct_tokens=distinct_tokens,
        default_codec=str(codec.default),
        block_bytes=bb,
        footprint_bytes=distinct * bb,
        footprint_bytes_by_tier={t.name: distinct * t.block_bytes for t in spec.tiers},
        blocks_per_request_mean=refs / requests if requests else 0.0,
        blocks_per_request_max=max_per_request,
        first_arrival_s=first_t,
        last_arrival_s=last_t,
        duration_s=duration,
        arrival_rate_per_s=(requests - 1) / duration if duration else None,
        notes=workload.notes(),
    )

