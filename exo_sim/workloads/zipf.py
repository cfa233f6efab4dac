"""``zipf``: independent references to ``objects`` blocks with Zipf(alpha) popularity.

Block ``i`` has probability proportional to ``1 / (i + 1) ** alpha``; requests of
``blocks_per_request`` references arrive as a Poisson process of ``request_rate_per_s``. Seeded and
deterministic; generated a chunk at a time, so memory does not grow with ``accesses``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from exo_sim.config import WorkloadConfig
from exo_sim.errors import ConfigError
from exo_sim.workloads import register
from exo_sim.workloads.base import RequestChunk, Workload, require_positive


@dataclass
class ZipfWorkloadConfig(WorkloadConfig):
    """Independent Zipf(alpha) references to ``objects`` blocks (ids 0..objects-1 by popularity rank)."""

    kind: str = "zipf"
    objects: int = 100_000
    alpha: float = 1.0
    accesses: int = 1_000_000
    blocks_per_request: int = 1
    request_rate_per_s: float = 100.0
    seed: int = 0


CHUNK_REFS = 1 << 16


def zipf_cdf(objects: int, alpha: float) -> np.ndarray:
    """Cumulative probabilities of ranks ``0..objects-1`` under Zipf(alpha) (last entry exactly 1)."""
    weights = 1.0 / np.power(np.arange(1, objects + 1, dtype=np.float64), alpha)
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return cdf


@register
class ZipfWorkload(Workload):
    """Seeded Zipf references (see the module docstring)."""

    kind = "zipf"
    schema = ZipfWorkloadConfig

    def validate(self) -> None:
        """Refuse non-positive sizes, rates and a negative alpha."""
        c = self.cfg
        require_positive(c, "objects", "accesses", "blocks_per_request", "request_rate_per_s")
        if c.alpha < 0:
            raise ConfigError("workload.alpha", f"must be >= 0, got {c.alpha}")

    def estimated_refs(self) -> int:
        """Exact number of block references the workload yields."""
        return int(self.cfg.accesses)

    def chunks(self) -> Iterator[RequestChunk]:
        """Yield requests of ``blocks_per_request`` Zipf references each."""
        c = self.cfg
        cdf = zipf_cdf(int(c.objects), float(c.alpha))
        refs_rng, arrival_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(int(c.seed)).spawn(2))
        per = int(c.blocks_per_request)
        total = int(c.accesses)
        chunk_refs = max(per, (CHUNK_REFS // per) * per)
        t0 = 0.0
        done = 0
        while done < total:
            m = min(chunk_refs, total - done)
            u = refs_rng.random(m)
            blocks = np.searchsorted(cdf, u, side="right").astype(np.int64)
            np.minimum(blocks, int(c.objects) - 1, out=blocks)
            gaps = arrival_rng.exponential(1.0 / float(c.request_rate_per_s), -(-m // per))
            arrivals = t0 + np.cumsum(gaps)
            t0 = float(arrivals[-1])
            yield RequestChunk.fixed_reads(arrivals, blocks, per, self.block_tokens)
            done += m

    def describe(self) -> dict[str, Any]:
        """Kind and parameters."""
        c = self.cfg
        return {
            "kind": self.kind,
            "objects": int(c.objects),
            "alpha": float(c.alpha),
            "accesses": int(c.accesses),
            "blocks_per_request": int(c.blocks_per_request),
            "seed": int(c.seed),
        }
