"""``scan``: a loop over ``blocks`` blocks, ``loops`` times — the classic LRU killer.

Reference ``i`` reads block ``i mod blocks``; requests are ``blocks_per_request`` consecutive
references (the last one may be shorter) arriving as a Poisson process of ``request_rate_per_s``.
Under LRU a cache smaller than the loop never hits; one that holds it hits on every loop after the
first. Seeded (arrivals only) and deterministic; generated a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from exo_sim.config import WorkloadConfig
from exo_sim.workloads import register
from exo_sim.workloads.base import RequestChunk, Workload, require_positive

CHUNK_REFS = 1 << 16


@dataclass
class ScanWorkloadConfig(WorkloadConfig):
    """A sequential loop over ``blocks`` blocks, repeated ``loops`` times."""

    kind: str = "scan"
    blocks: int = 100_000
    loops: int = 10
    blocks_per_request: int = 16
    request_rate_per_s: float = 100.0
    seed: int = 0


@register
class ScanWorkload(Workload):
    """Looping scan (see the module docstring)."""

    kind = "scan"
    schema = ScanWorkloadConfig

    def validate(self) -> None:
        """Refuse non-positive sizes and rates."""
        require_positive(self.cfg, "blocks", "loops", "blocks_per_request", "request_rate_per_s")

    def estimated_refs(self) -> int:
        """Exact number of block references."""
        return int(self.cfg.blocks) * int(self.cfg.loops)

    def chunks(self) -> Iterator[RequestChunk]:
        """Yield requests of consecutive loop positions."""
        c = self.cfg
        n_blocks, per = int(c.blocks), int(c.blocks_per_request)
        total = self.estimated_refs()
        rng = np.random.default_rng(int(c.seed))
        step = max(per, (CHUNK_REFS // per) * per)
        t0 = 0.0
        for start in range(0, total, step):
            m = min(step, total - start)
            blocks = np.arange(start, start + m, dtype=np.int64) % n_blocks
            arrivals = t0 + np.cumsum(rng.exponential(1.0 / float(c.request_rate_per_s), -(-m // per)))
            t0 = float(arrivals[-1])
            yield RequestChunk.fixed_reads(arrivals, blocks, per, self.block_tokens)

    def describe(self) -> dict[str, Any]:
        """Kind and parameters."""
        c = self.cfg
        return {
            "kind": self.kind,
            "blocks": int(c.blocks),
            "loops": int(c.loops),
            "blocks_per_request": int(c.blocks_per_request),
            "seed": int(c.seed),
        }
