"""The top tier's miss-ratio curve, and the capacity the next phase needs for the same hit ratio.

The curve is LRU's, exact and in one pass (:func:`exo_sim.mrc.stack_distances`): a read hits an LRU
tier of ``C`` blocks iff its stack distance is at most ``C``. The same sorted distances answer the
inverse question exactly: the smallest ``C`` whose hit ratio reaches ``h`` is the ``ceil(h x reads)``-th
smallest distance of a reuse (none when ``h`` is beyond what an infinite tier reaches). The top tier of
the hierarchy sees every read of the workload and every write (which places a block, as in the core),
so this is the curve of a top tier run by LRU on its own; other policies' hit ratios at the tier's
size are marked beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from exo_sim.mrc import capacity_grid, references, stack_distances
from exo_sim.workloads.base import Workload


@dataclass
class LruCurve:
    """One workload's LRU curve: the sorted stack distances of its reads that reuse a block."""

    distances: np.ndarray
    reads: int
    distinct_blocks: int
    block_tokens: int
    scale: int = 1

    def hit_ratio(self, capacity_blocks: int | np.ndarray) -> np.ndarray:
        """Hit ratio of an LRU tier of ``capacity_blocks`` (at the curve's own scale)."""
        hits = np.searchsorted(self.distances, np.asarray(capacity_blocks, dtype=np.int64), side="right")
        return hits / self.reads if self.reads else np.zeros(np.shape(capacity_blocks))

    @property
    def max_hit_ratio(self) -> float:
        """The hit ratio of a tier that never evicts."""
        return self.distances.shape[0] / self.reads if self.reads else 0.0

    def capacity_for(self, hit_ratio: float) -> int | None:
        """The smallest capacity (blocks, at the curve's scale) reaching ``hit_ratio``; ``None`` if none does."""
        need = math.ceil(hit_ratio * self.reads - 1e-9)
        if need <= 0:
            return 0
        if need > self.distances.shape[0]:
            return None
        return int(self.distances[need - 1])

    def frame(self, points: int, extra_blocks: list[int] | None = None) -> pd.DataFrame:
        """The curve at ``points`` log-spaced capacities (plus ``extra_blocks``), in full-scale units."""
        hi = max(2, self.distinct_blocks, *(extra_blocks or [1]))
        caps = np.union1d(capacity_grid(1, hi, points, "log"), np.asarray(extra_blocks or [], dtype=np.int64))
        caps = caps[caps > 0]
        ratio = self.hit_ratio(caps)
        return pd.DataFrame(
            {
                "capacity_blocks": caps * self.scale,
                "capacity_tokens": caps * self.scale * self.block_tokens,
                "hit_ratio": ratio,
                "miss_ratio": 1.0 - ratio,
            }
        )


def lru_curve(workload: Workload, block_tokens: int, scale: int = 1) -> LruCurve:
    """The LRU curve of ``workload`` (streamed into memory once: 8 bytes per reference).

    ``scale`` records that the workload is a 1:``scale`` miniature, so capacities read off the curve are
    multiplied back to full size by :meth:`LruCurve.frame`.
    """
    blocks, reads = references(workload)
    dist = stack_distances(blocks)
    counted = (dist > 0) & reads
    return LruCurve(
        distances=np.sort(dist[counted]),
        reads=int(np.count_nonzero(reads)),
        distinct_blocks=int(np.unique(blocks).shape[0]) if blocks.shape[0] else 0,
        block_tokens=block_tokens,
        scale=scale,
    )
