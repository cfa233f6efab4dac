"""Next-access times for policies that read the future (Belady).

A workload that does not carry its own future is read once to learn every reference's next access,
then replayed. This is the one place exo holds a whole trace: 8 bytes per block reference (block id)
plus 8 for the answer, and only when a policy asks for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from exo_sim.policies import NEVER
from exo_sim.workloads.base import RequestChunk


def next_access_indices(blocks: np.ndarray) -> np.ndarray:
    """For each position ``i``, the next position ``j > i`` with ``blocks[j] == blocks[i]``, else NEVER."""
    m = blocks.shape[0]
    order = np.argsort(blocks, kind="stable")
    sorted_blocks = blocks[order]
    nxt = np.full(m, NEVER, dtype=np.int64)
    same = sorted_blocks[1:] == sorted_blocks[:-1]
    nxt[order[:-1][same]] = order[1:][same]
    return nxt


def with_next_access(chunks: Iterable[RequestChunk]) -> Iterator[RequestChunk]:
    """Yield ``chunks`` again with ``next_access`` filled in (indices over all references)."""
    held = list(chunks)
    if not held:
        return
    nxt = next_access_indices(np.concatenate([c.blocks for c in held]))
    start = 0
    for c in held:
        c.next_access = nxt[start : start + c.n_refs]
        start += c.n_refs
        yield c
