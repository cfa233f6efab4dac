"""Next-access times for policies that read the future (Belady).

A workload that does not carry its own future is read once to learn every reference's next access,
then replayed. This is the one place exo holds a whole trace, and only when a policy asks for it:
every chunk's columns (17 B per block reference, 16 per request) and, while the next accesses are
found, the concatenated ids, their sort order, the sorted ids and the answer (8 B each) with the
sort's temporaries: about 66 B per reference plus 16 per request at the peak (tracemalloc, 10^6 Zipf
references: 67 B/reference at 16 blocks per request, 83 at one).
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
