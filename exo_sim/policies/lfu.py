"""LFU: evict the least frequently used block; among equals, the one that reached that count first.

Pseudocode::

    insert(x):  freq[x] = 1; append x to bucket[1]; min = 1
    hit(x):     move x from bucket[f] to the tail of bucket[f + 1]; freq[x] = f + 1
    victim():   pop the head (oldest arrival) of bucket[min]
    remove(x):  unlink x from bucket[freq[x]]

Under prefix reuse a release changes nothing: a chain's head is read by every request that shares
it, so it gathers the highest count and is evicted last; among blocks of equal count the one that
reached it first goes first (within a new chain, its head).

Reproduces libCacheSim's ``LFU.c`` (the O(1) frequency-list LFU, not ``LFUCpp``):

* a block's count starts at 1 on insertion and is forgotten when it leaves (no history);
* ties are broken FIFO *within a bucket*: a hit appends the block at the tail of its new bucket and
  eviction takes the head, so the victim is the block that reached the minimum count earliest;
* ``min`` is reset to 1 by every insertion.

Buckets are ``OrderedDict`` s (O(1) pop of the oldest key). Empty buckets other than bucket 1 are
dropped, and a block alone at its count carries its bucket along to the next count instead of
moving between two buckets (no allocation on the hottest blocks' hits). The minimum is kept
lazily: it is exact after every ``insert``/``access`` and is searched for only when ``victim`` finds
the bucket at ``min`` empty (after a ``remove`` or a run of victims).
"""

from __future__ import annotations

from collections import OrderedDict

from exo_sim.policies import register
from exo_sim.policies.base import NEVER, Policy, PolicyInvariantError


@register("lfu")
class LFUPolicy(Policy):
    """Least frequently used with FIFO tie-breaking per frequency, as libCacheSim's ``LFU``."""

    __slots__ = ("_freq", "_buckets", "_ones", "_min")

    def __init__(self, capacity_blocks: int) -> None:
        super().__init__(capacity_blocks)
        self._freq: dict[int, int] = {}
        self._ones: OrderedDict[int, None] = OrderedDict()
        self._buckets: dict[int, OrderedDict[int, None]] = {1: self._ones}
        self._min = 1

    def insert(self, key: int, next_access: int = NEVER) -> None:
        """Record ``key`` with count 1 at the tail of bucket 1."""
        self._freq[key] = 1
        self._ones[key] = None
        self._min = 1

    def access(self, key: int, next_access: int = NEVER) -> None:
        """Move the resident ``key`` from its bucket to the tail of the next one."""
        freq = self._freq
        buckets = self._buckets
        f = freq[key]
        nf = f + 1
        freq[key] = nf
        old = buckets[f]
        new = buckets.get(nf)
        if new is None:
            if f != 1 and len(old) == 1:
                # key is alone at its count (typical of the hottest blocks): relabel its bucket
                del buckets[f]
                buckets[nf] = old
                if f == self._min:
                    self._min = nf
                return
            new = buckets[nf] = OrderedDict()
        del old[key]
        new[key] = None
        if not old:
            if f == self._min:
                self._min = nf
            if f != 1:
                del buckets[f]

    def remove(self, key: int) -> None:
        """Forget the resident ``key`` (``KeyError`` if it is not resident)."""
        f = self._freq.pop(key)
        bucket = self._buckets[f]
        del bucket[key]
        if not bucket and f != 1:
            del self._buckets[f]

    def victim(self) -> int:
        """Pop and return the oldest key of the lowest non-empty frequency bucket."""
        buckets = self._buckets
        bucket = buckets.get(self._min)
        if not bucket:
            # the cached minimum went stale (a remove, or victims without inserts): search
            if not self._freq:
                raise KeyError("victim() of an empty lfu policy")
            self._min = min(f for f, b in buckets.items() if b)
            bucket = buckets[self._min]
        key = bucket.popitem(last=False)[0]
        del self._freq[key]
        if not bucket and self._min != 1:
            del buckets[self._min]
        return key

    def __len__(self) -> int:
        return len(self._freq)

    def __contains__(self, key: object) -> bool:
        return key in self._freq

    def verify(self) -> None:
        """Check that every key sits in exactly the bucket of its count and ``min`` is a lower bound."""
        super().verify()
        n = 0
        for f, bucket in self._buckets.items():
            if f != 1 and not bucket:
                raise PolicyInvariantError(f"lfu: empty bucket {f} kept")
            for key in bucket:
                if self._freq.get(key) != f:
                    raise PolicyInvariantError(f"lfu: key {key} in bucket {f} has count {self._freq.get(key)}")
            n += len(bucket)
            if bucket and f < self._min:
                raise PolicyInvariantError(f"lfu: min {self._min} above non-empty bucket {f}")
        if n != len(self._freq):
            raise PolicyInvariantError(f"lfu: buckets hold {n} keys, counts {len(self._freq)}")
        if self._buckets.get(1) is not self._ones:
            raise PolicyInvariantError("lfu: bucket 1 replaced")
