"""Belady's MIN: evict the resident block whose next reference is furthest in the future.

Pseudocode::

    insert(x, t) / hit(x, t):  next[x] = t; push (t, x) on a max-heap
    victim():                  pop until the top (t, x) is current (next[x] == t); evict x
    remove(x):                 forget next[x] (its heap entries go stale)

``t`` is the access index (vtime) of x's next reference, or ``NEVER`` (``sys.maxsize``, which is
libCacheSim's ``INT64_MAX``) when x is not referenced again: infinitely far, so such blocks go first.
Only the *order* of these numbers matters, so any numbering works as long as the caller numbers every
access it replays the same way and ``t`` is the number of the *next* access to the same block. The
single-tier tests use the oracleGeneral traces' own field: there the i-th record (0-based) is vtime
i + 1 and ``next_access_vtime`` names the record of the next request (-1, none, becomes ``NEVER``),
which is exactly what libCacheSim's ``Belady`` reads. A replay that numbers accesses 0, 1, 2, ... and
passes the index of the next one is equally right.

Matches libCacheSim's ``Belady.c`` (a priority queue keyed on ``next_access_vtime``, updated on
every hit; ``EVICT_IMMEDIATELY_IF_NO_FUTURE_ACCESS`` off). Two resident blocks can only tie at
``NEVER``; libCacheSim breaks that tie by heap position, here by the smaller key, and the choice
cannot change a hit count (neither block is referenced again).

The heap is ``heapq`` with lazy deletion: an update pushes a new entry and leaves the old one to be
skipped; the heap is rebuilt from ``next`` when stale entries outnumber live ones (plus a margin),
so it stays O(capacity).

Under prefix reuse a release changes nothing: the order is the future, not the past; a chain's
head is read again no later than its tail, so MIN keeps heads at least as long.
"""

from __future__ import annotations

import heapq
from typing import ClassVar

from exo_sim.policies import register
from exo_sim.policies.base import NEVER, Policy, PolicyInvariantError

_heappush = heapq.heappush
_heappop = heapq.heappop


@register("belady")
class BeladyPolicy(Policy):
    """Offline optimal (MIN); needs each access's ``next_access`` from the replay."""

    needs_future: ClassVar[bool] = True

    __slots__ = ("_next", "_heap", "_heap_limit")

    def __init__(self, capacity_blocks: int) -> None:
        super().__init__(capacity_blocks)
        self._next: dict[int, int] = {}
        # entries are (-next_access, key): heapq is a min-heap and we want the furthest first
        self._heap: list[tuple[int, int]] = []
        self._heap_limit = 2 * capacity_blocks + 64

    def insert(self, key: int, next_access: int = NEVER) -> None:
        """Record ``key`` as resident, next referenced at access ``next_access``."""
        self._next[key] = next_access
        heap = self._heap
        _heappush(heap, (-next_access, key))
        if len(heap) > self._heap_limit:
            self._compact()

    def access(self, key: int, next_access: int = NEVER) -> None:
        """Update the resident ``key``'s next reference to ``next_access``."""
        self._next[key] = next_access
        heap = self._heap
        _heappush(heap, (-next_access, key))
        if len(heap) > self._heap_limit:
            self._compact()

    def remove(self, key: int) -> None:
        """Forget the resident ``key`` (``KeyError`` if it is not resident)."""
        del self._next[key]

    def victim(self) -> int:
        """Pop and return the resident key referenced furthest in the future."""
        heap = self._heap
        nxt = self._next
        if not nxt:
            raise KeyError("victim() of an empty belady policy")
        while True:
            neg, key = _heappop(heap)
            if nxt.get(key) == -neg:
                del nxt[key]
                return key

    def _compact(self) -> None:
        """Rebuild the heap from the live entries only."""
        self._heap = [(-t, k) for k, t in self._next.items()]
        heapq.heapify(self._heap)
        self._heap_limit = 2 * max(len(self._next), self.capacity_blocks) + 64

    def __len__(self) -> int:
        return len(self._next)

    def __contains__(self, key: object) -> bool:
        return key in self._next

    def verify(self) -> None:
        """Check that every resident key has a current entry in the heap and the heap is ordered."""
        super().verify()
        live = {(k, -neg) for neg, k in self._heap if self._next.get(k) == -neg}
        if {k for k, _ in live} != self._next.keys():
            raise PolicyInvariantError("belady: a resident key has no current heap entry")
        heap = self._heap
        for i in range(1, len(heap)):
            if heap[(i - 1) // 2] > heap[i]:
                raise PolicyInvariantError(f"belady: heap order broken at {i}")
